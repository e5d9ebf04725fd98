"""S3 building blocks: candidates never positives, false negatives never chosen, seeded choices."""
import pytest
import torch

from recbole_llmhni.semantic.sampling import (
    TrainingPositives,
    candidate_scores,
    draw_candidates,
    per_user_quantile,
    select_negatives,
)

N_ITEMS = 20


def _positives():
    # user 1: a few items; user 2: every item but 17, 18, 19 (re-draws collide often);
    # user 3: every item but 19
    users = [1, 1, 1] + [2] * 16 + [3] * 18
    items = [2, 5, 9] + list(range(1, 17)) + list(range(1, 19))
    return TrainingPositives(torch.tensor(users), torch.tensor(items), N_ITEMS), set(zip(users, items))


def test_training_positives_membership():
    positives, pairs = _positives()
    users = torch.arange(0, 4).repeat_interleave(N_ITEMS)
    items = torch.arange(N_ITEMS).repeat(4)
    got = positives.contains(users, items)
    expected = torch.tensor([(u, i) in pairs for u, i in zip(users.tolist(), items.tolist())])
    assert torch.equal(got, expected)
    assert set(zip(positives.users.tolist(), positives.items.tolist())) == pairs


def test_candidates_are_never_training_positives_nor_padding():
    positives, pairs = _positives()
    users = torch.tensor([1, 2, 3, 2, 1, 3] * 50)
    fallback = torch.tensor([3, 17, 19, 18, 4, 19] * 50)  # valid negatives
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        cand = draw_candidates(users, N_ITEMS, 16, positives, fallback, generator)
        assert cand.shape == (300, 16)
        assert cand.min() >= 1 and cand.max() < N_ITEMS
        assert not positives.contains(users.unsqueeze(1), cand).any()
    # user 2 reaches items 17-19 through re-draws: all three occur
    assert set(cand[users == 2].unique().tolist()) == {17, 18, 19}


def test_candidates_fall_back_to_the_recbole_negative_when_redraws_run_out():
    positives, _ = _positives()
    users = torch.tensor([3] * 64)
    fallback = torch.full((64,), 19)
    cand = draw_candidates(users, N_ITEMS, 8, positives, fallback, torch.Generator().manual_seed(1), max_rounds=0)
    # with no re-draw, every collision (18 of 19 items are positives) becomes the fallback 19
    assert (cand == 19).all()


def test_candidate_draws_are_deterministic_for_a_seed():
    positives, _ = _positives()
    users = torch.tensor([1, 2, 3] * 30)
    fallback = torch.tensor([3, 17, 19] * 30)
    a = draw_candidates(users, N_ITEMS, 8, positives, fallback, torch.Generator().manual_seed(7))
    b = draw_candidates(users, N_ITEMS, 8, positives, fallback, torch.Generator().manual_seed(7))
    c = draw_candidates(users, N_ITEMS, 8, positives, fallback, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_candidate_scores_are_row_wise_inner_products():
    rows = torch.randn(3, 4)
    table = torch.randn(10, 4)
    cand = torch.randint(0, 10, (3, 5))
    expected = torch.stack([table[cand[b]] @ rows[b] for b in range(3)])
    assert torch.allclose(candidate_scores(rows, table, cand), expected, atol=1e-6)


def test_planted_false_negative_is_never_chosen():
    torch.manual_seed(0)
    batch, m = 256, 8
    scores = torch.randn(batch, m)
    relevance = torch.rand(batch, m) * 0.5  # all below the threshold ...
    threshold = torch.full((batch,), 0.6)
    planted = torch.randint(0, m, (batch,))
    rows = torch.arange(batch)
    scores[rows, planted] = 10.0  # ... but the planted one: top score, very high relevance
    relevance[rows, planted] = 0.99
    for k in (1, 2, 3):
        semantic = select_negatives("semantic", scores, relevance, threshold, topk=k)
        assert not (semantic == planted).any()
    assert (select_negatives("dns", scores) == planted).all()  # score alone falls for it


def test_semantic_choice_is_least_relevant_of_top_k_by_score():
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])
    relevance = torch.tensor([[0.30, 0.10, 0.05, 0.00, 0.20]])
    threshold = torch.tensor([0.5])
    # top-3 by score: columns 0, 1, 2 -> least relevant among them: column 2
    assert select_negatives("semantic", scores, relevance, threshold, topk=3).tolist() == [2]
    assert select_negatives("semantic", scores, relevance, threshold, topk=1).tolist() == [0]
    # column 0 over the threshold: top-2 of the rest are 1, 2 -> column 2
    assert select_negatives("semantic", scores, relevance, torch.tensor([0.25]), topk=2).tolist() == [2]
    assert select_negatives("semantic", scores, relevance, torch.tensor([0.25]), topk=1).tolist() == [1]
    # fewer survivors than k: only column 3 survives
    assert select_negatives("semantic", scores, relevance, torch.tensor([0.01]), topk=3).tolist() == [3]


def test_every_candidate_dropped_falls_back_to_the_least_relevant():
    scores = torch.tensor([[1.0, 2.0, 3.0]])
    relevance = torch.tensor([[0.9, 0.7, 0.8]])
    for k in (1, 2, 3):
        assert select_negatives("semantic", scores, relevance, torch.tensor([0.1]), topk=k).tolist() == [1]


def test_select_negatives_rejects_unknown_mode_and_missing_inputs():
    scores = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="mode"):
        select_negatives("uniform", scores)
    with pytest.raises(ValueError, match="relevance"):
        select_negatives("semantic", scores)


def test_per_user_quantile_matches_torch_quantile():
    torch.manual_seed(0)
    users = torch.randint(1, 6, (200,))
    values = torch.randn(200)
    for q in (0.0, 0.3, 0.5, 0.9, 1.0):
        got = per_user_quantile(users, values, q, n_users=8)
        for u in range(8):
            mine = values[users == u]
            if mine.numel():
                assert got[u].item() == pytest.approx(torch.quantile(mine, q).item(), abs=1e-6)
            else:
                assert got[u].item() == float("inf")


def test_selection_counts_on_a_hand_made_batch():
    from recbole_llmhni.semantic.sampling import SELECTION_COUNTERS, selection_counts

    scores = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    relevance = torch.tensor([[0.9, 0.1, 0.2], [0.1, 0.2, 0.3], [0.9, 0.1, 0.1], [0.9, 0.8, 0.7]])
    threshold = torch.tensor([0.5, 0.25, 0.5, 0.5])
    pick = select_negatives("semantic", scores, relevance, threshold, topk=1)
    # row 0: the best-scored (col 0) dropped -> col 1; row 1: best (col 2) dropped -> col 1;
    # row 2: col 0 dropped, the best (col 2) survives -> col 2; row 3: all dropped -> least relevant, col 2
    assert pick.tolist() == [1, 1, 2, 2]
    counts = dict(zip(SELECTION_COUNTERS, selection_counts(scores, relevance, threshold, pick).tolist()))
    assert counts == {"rows": 4, "dropped_candidates": 1 + 1 + 1 + 3, "fired_rows": 3, "all_dropped_rows": 1,
                      "changed_rows": 2}

"""S5-S7 and the report as pure functions, on hand-made graphs and scores."""
import numpy as np
import pytest
import torch

from recbole_llmhni.denoise.candidates import Candidates, cap_candidates, select_candidates
from recbole_llmhni.denoise.rating import (
    EmbeddingRelevance,
    RatedCandidates,
    _relevance_values,
    liked_lists,
    pair_label,
)
from recbole_llmhni.denoise.report import format_report, identification_report
from recbole_llmhni.denoise.rewrite import EdgeList, edge_changes, rewrite_edges
from recbole_llmhni.artifacts import edges_fingerprint, read_tsv, write_tsv

# 4 users (0 = padding), 7 items (0 = padding); scores[u, i] given exactly
SCORES = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0],
        [9, 5, 1, 7, 3, 8, 2],  # user 1: train {1, 2, 3, 4}
        [9, 1, 2, 3, 4, 5, 6],  # user 2: train {6}
        [9, 6, 5, 4, 3, 2, 1],  # user 3: train {1, 5}
    ],
    dtype=np.float32,
)
TRAIN_U = np.array([1, 1, 1, 1, 2, 3, 3, 1])  # (1, 2) duplicated
TRAIN_I = np.array([1, 2, 3, 4, 6, 1, 5, 2])


def _embeddings():
    """One-hot users and items = scores^T, so <e_u, e_i> = SCORES[u, i]."""
    return torch.eye(4), torch.from_numpy(SCORES.T.copy())


def _rows(c: Candidates):
    return sorted(zip(c.users.tolist(), c.items.tolist(), c.is_pos.tolist(), c.rank.tolist()))


@pytest.mark.parametrize("batch_size", [1, 2, 1024])
def test_candidates_are_extreme_scores_with_positives_masked(batch_size):
    user_e, item_e = _embeddings()
    c = select_candidates(user_e, item_e, TRAIN_U, TRAIN_I, kn=2, kp=2, liked=2, batch_size=batch_size)
    assert _rows(c) == sorted(
        [
            # user 1: negatives among {5, 6} (item 0 is padding), positives: lowest of {1,2,3,4}
            (1, 5, False, 0), (1, 6, False, 1), (1, 2, True, 0), (1, 4, True, 1),
            # user 2: one training item -> no positive candidate; negatives 5 and 4
            (2, 5, False, 0), (2, 4, False, 1),
            # user 3: negatives 2, 3; positives capped at degree - 1 = 1: the lower, item 5
            (3, 2, False, 0), (3, 3, False, 1), (3, 5, True, 0),
        ]
    )
    scores = dict(zip(zip(c.users.tolist(), c.items.tolist()), c.score.tolist()))
    assert scores[(1, 5)] == 8 and scores[(3, 5)] == 2
    liked = sorted(zip(c.liked_users.tolist(), c.liked_rank.tolist(), c.liked_items.tolist()))
    assert liked == [(1, 0, 3), (1, 1, 1), (1, 2, 4), (2, 0, 6), (3, 0, 1), (3, 1, 5)]


def test_liked_lists_exclude_the_candidate_item():
    user_e, item_e = _embeddings()
    c = select_candidates(user_e, item_e, TRAIN_U, TRAIN_I, kn=2, kp=2, liked=2)
    lists = {(u, i): row.tolist() for u, i, row in zip(c.users.tolist(), c.items.tolist(), liked_lists(c, 2))}
    assert lists[(1, 5)] == [3, 1]       # negative: the two best training items
    assert lists[(1, 4)] == [3, 1]       # positive item 4 is not its own liked item anyway
    assert lists[(3, 5)] == [1, -1]      # positive item 5 excluded, only item 1 left
    assert lists[(2, 5)] == [6, -1]
    assert liked_lists(c, 1)[:, 0].tolist() == [lists[k][0] for k in zip(c.users.tolist(), c.items.tolist())]


def test_cap_keeps_every_users_most_extreme_candidate_first():
    # 3 users x (2 neg + 2 pos); cap 6 -> 3 neg + 3 pos, the rank-0 of each user
    users = np.repeat([1, 2, 3], 4)
    is_pos = np.tile([False, False, True, True], 3)
    rank = np.tile([0, 1, 0, 1], 3)
    score = np.array([9, 8, 1, 2, 5, 4, 0, 3, 7, 6, -1, 0], dtype=np.float32)
    c = Candidates(users, np.arange(12), is_pos, rank, score, *(np.zeros(0, np.int64),) * 3, np.zeros(0, np.float32))
    kept = cap_candidates(c, 6, kn=1, kp=1)
    assert sorted(kept.items.tolist()) == [0, 2, 4, 6, 8, 10]
    # cap 4: shares 2 + 2; within rank 0, the most extreme scores win
    kept = cap_candidates(c, 4, kn=1, kp=1)
    assert sorted(kept.items.tolist()) == [0, 6, 8, 10]  # negs 9 and 7, positives -1 and 0
    # the share follows kn : kp, and an exhausted kind passes its quota on
    assert cap_candidates(c, 4, kn=3, kp=1).n_neg == 3
    only_neg = c.subset(~c.is_pos)
    assert len(cap_candidates(only_neg, 5, kn=1, kp=1)) == 5
    assert cap_candidates(c, 0, 1, 1) is c and cap_candidates(c, 100, 1, 1) is c


def test_pair_label_truth_table():
    views = ["High", "Medium", "Low", "unparsed"]
    uv, iv = np.meshgrid(views, views, indexing="ij")
    got = pair_label(uv.ravel(), iv.ravel()).reshape(4, 4)
    expected = np.array(
        [
            ["hard", "noisy", "noisy", "undetermined"],
            ["noisy", "noisy", "noisy", "noisy"],
            ["noisy", "noisy", "noisy", "noisy"],
            ["undetermined", "noisy", "noisy", "undetermined"],
        ]
    )
    assert (got == expected).all()


def test_relevance_values_average_over_the_shown_liked_items():
    rel = EmbeddingRelevance(np.eye(3, dtype=np.float32), np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.6, 0.8, 0]], np.float32))
    c = Candidates(np.array([1, 2]), np.array([3, 3]), np.array([False, False]), np.zeros(2, np.int64),
                   np.zeros(2, np.float32), *(np.zeros(0, np.int64),) * 3, np.zeros(0, np.float32))
    liked = np.array([[1, 2], [2, -1]])
    user_rel, item_rel = _relevance_values(rel, c, liked)
    np.testing.assert_allclose(user_rel, [0.8, 0.0], atol=1e-6)  # users 1, 2 are the rows [0,1,0], [0,0,1]
    np.testing.assert_allclose(item_rel, [(0.6 + 0.8) / 2, 0.8], atol=1e-6)


def _rated(rows, rater="test-rater"):
    """rows: (user, item, is_pos, user_view, item_view)."""
    users, items, is_pos, uv, iv = map(np.asarray, zip(*rows))
    n = len(rows)
    c = Candidates(users.astype(np.int64), items.astype(np.int64), is_pos.astype(bool), np.zeros(n, np.int64),
                   np.linspace(-1, 1, n).astype(np.float32), *(np.zeros(0, np.int64),) * 3, np.zeros(0, np.float32))
    return RatedCandidates(c, uv.astype(str), iv.astype(str), pair_label(uv, iv), rater, False)


HAND_GRAPH = EdgeList([1, 1, 1, 2, 2, 3, 3, 3], [1, 2, 3, 1, 4, 2, 3, 3])  # (3,3) duplicated
HAND_RATED = [
    (1, 3, True, "Low", "High"),          # noisy positive -> removed
    (1, 2, True, "High", "High"),         # hard positive -> kept
    (2, 4, True, "unparsed", "High"),     # undetermined positive -> kept
    (3, 3, True, "Medium", "Medium"),     # noisy positive (duplicated in G) -> removed
    (1, 4, False, "High", "High"),        # hard negative -> added
    (2, 2, False, "High", "Low"),         # noisy negative -> not added
    (3, 4, False, "unparsed", "unparsed"),  # undetermined negative -> not added
    (3, 1, False, "High", "High"),        # hard negative -> added
]


def test_g_prime_on_a_hand_made_graph():
    rated = _rated(HAND_RATED)
    to_add, to_remove = edge_changes(rated)
    c = rated.cands
    add, remove = EdgeList(c.users[to_add], c.items[to_add]), EdgeList(c.users[to_remove], c.items[to_remove])
    g_prime, added, removed = rewrite_edges(HAND_GRAPH, remove, add, n_items=5)
    pairs = lambda e: list(zip(e.users.tolist(), e.items.tolist()))  # noqa: E731
    assert pairs(added) == [(1, 4), (3, 1)]
    assert pairs(removed) == [(1, 3), (3, 3)]
    assert pairs(g_prime) == [(1, 1), (1, 2), (1, 4), (2, 1), (2, 4), (3, 1), (3, 2)]


def test_rewrite_ignores_changes_that_are_no_changes():
    g_prime, added, removed = rewrite_edges(
        HAND_GRAPH, remove=EdgeList([2], [3]), add=EdgeList([1, 1], [1, 1]), n_items=5  # absent / present
    )
    assert len(added) == 0 and len(removed) == 0 and len(g_prime) == 7  # the duplicate counts once


def test_identification_report_figures():
    rated = _rated(HAND_RATED)
    tokens_u, tokens_i = np.array(["[PAD]", "ua", "ub", "uc"]), np.array(["[PAD]", "i1", "i2", "i3", "i4"])
    injected = (["ua", "ub", "uc", "ua", "ub"], ["i3", "i4", "i2", "i1", "i1"])
    # injected & candidates: (ua,i3) noisy, (ub,i4) undetermined; (uc,i2), (ua,i1), (ub,i1) never reached
    report = identification_report(rated, tokens_u, tokens_i, n_train_pairs=7, n_added=2, n_removed=2,
                                   n_graph_prime=7, injected=injected)
    ident = report["identification"]
    assert ident["injected"] == 5 and ident["injected_in_candidates"] == 2
    assert ident["labelled_noisy"] == 2 and ident["true_positives"] == 1
    assert ident["precision"] == pytest.approx(0.5) and ident["recall"] == pytest.approx(0.2)
    assert ident["f1"] == pytest.approx(2 * 0.5 * 0.2 / 0.7)
    assert ident["recall_within_candidates"] == pytest.approx(0.5)
    assert ident["injected_undetermined"] == 1 and ident["injected_labelled_hard"] == 0
    assert ident["reference_precision_all_low_score_positives"] == pytest.approx(2 / 4)
    assert report["labels"] == {"hard": {"neg": 2, "pos": 1}, "noisy": {"neg": 1, "pos": 2},
                                "undetermined": {"neg": 1, "pos": 1}}
    text = format_report(report)
    assert "0.5000 / 0.2000 / 0.2857" in text and "+2 added, -2 removed" in text
    no_noise = identification_report(rated, tokens_u, tokens_i, 7, 2, 2, 7, injected=None)
    assert "identification" not in no_noise and "precision" not in format_report(no_noise)


def test_tsv_round_trip_and_fingerprint(tmp_path):
    path = write_tsv(tmp_path / "x.tsv", {"user": np.array(["u 1", "u2"]), "score": np.array([0.1, -2.5e-8], np.float32)})
    back = read_tsv(path, {"score": np.float32})
    assert back["user"].tolist() == ["u 1", "u2"] and back["score"].tolist() == [np.float32(0.1), np.float32(-2.5e-8)]
    with pytest.raises(ValueError, match="tab"):
        write_tsv(tmp_path / "y.tsv", {"user": np.array(["a\tb"])})
    assert not (tmp_path / "y.tsv").exists()
    fp = edges_fingerprint(np.array(["a", "b"]), np.array(["x", "y"]))
    assert fp == edges_fingerprint(np.array(["b", "a"]), np.array(["y", "x"]))  # order-free
    assert fp != edges_fingerprint(np.array(["a", "b"]), np.array(["y", "x"]))

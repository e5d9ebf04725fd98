"""``llmhni_neg_candidates: auto``: the false-negative rate of the hard pick, the rule, and the
pipeline stage (training + validation only, cached)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from recbole_llmhni.config import LLMHNIConfig
from recbole_llmhni.semantic.candidate_calibration import (
    calibrate_candidates,
    candidates_in_use,
    choose_candidates,
    false_negative_rates,
)
from test_semantic_calibration import _splits, replace_test_split
from test_pipeline import HashEncoder
from recbole_llmhni.pipeline import LLMHNIPipeline


def _enumerated_pick_rate(pool_scores, positive, m):
    """P(the best-scored of m uniform draws, with replacement, from the pool is ``positive``), by enumeration."""
    items = list(pool_scores)
    hits = 0
    for draw in itertools.product(items, repeat=m):
        hits += max(draw, key=lambda j: pool_scores[j]) == positive
    return hits / len(items) ** m


# One user (id 1) with 1-d embeddings: s(1, j) = item_e[j]. Items 1, 2 are training items; the pool is 3-6.
ITEM_E = np.array([[0.0], [0.7], [0.2], [0.9], [0.1], [0.5], [0.3]])
USER_E = np.array([[0.0], [1.0]])
POOL = {3: 0.9, 4: 0.1, 5: 0.5, 6: 0.3}


def test_one_user_rate_equals_enumerating_every_candidate_draw():
    found = false_negative_rates(USER_E, ITEM_E, np.array([1, 1]), np.array([1, 2]), np.array([1]), np.array([5]),
                                 grid=(1, 2, 3))
    expected = [_enumerated_pick_rate(POOL, 5, m) for m in (1, 2, 3)]  # 1/4, 5/16, 19/64
    assert expected == pytest.approx([1 / 4, 5 / 16, 19 / 64])
    assert [r["false_negative"] for r in found.rates] == pytest.approx(expected)
    assert (found.n_users, found.n_pairs) == (1, 1)


def test_two_validation_items_add_and_users_are_weighted_by_training_rows():
    # user 1: validation items 5 and 3 (the pool's best): M=2 -> 5/16 + 7/16 = 12/16
    # user 2 (same scores, one training item 1, pool 2-6, validation item 4, the pool's worst): M=2 -> 1/25
    user_e = np.array([[0.0], [1.0], [1.0]])
    train_u, train_i = np.array([1, 1, 2]), np.array([1, 2, 1])
    valid_u, valid_i = np.array([1, 1, 2]), np.array([5, 3, 4])
    found = false_negative_rates(user_e, ITEM_E, train_u, train_i, valid_u, valid_i, grid=(2,))
    user1 = _enumerated_pick_rate(POOL, 5, 2) + _enumerated_pick_rate(POOL, 3, 2)
    user2 = _enumerated_pick_rate({2: 0.2, **POOL}, 4, 2)
    assert (user1, user2) == pytest.approx((12 / 16, 1 / 25))
    # weights: user 1 has 2 training rows, user 2 has 1
    assert found.rates[0]["false_negative"] == pytest.approx((2 * user1 + user2) / 3)


def test_training_pairs_padding_and_users_without_training_rows_are_not_counted():
    # validation item 2 is also a training item, item 0 is padding, user 2 has no training rows: none counts
    user_e = np.array([[0.0], [1.0], [1.0]])
    found = false_negative_rates(user_e, ITEM_E, np.array([1, 1]), np.array([1, 2]), np.array([1, 1, 1, 2]),
                                 np.array([2, 0, 5, 5]), grid=(2,))
    assert (found.n_users, found.n_pairs) == (1, 1)
    assert found.rates[0]["false_negative"] == pytest.approx(5 / 16)


def test_the_rule_takes_the_largest_m_within_the_budget_else_the_smallest():
    rates = [{"M": 8, "false_negative": 0.01}, {"M": 16, "false_negative": 0.02}, {"M": 32, "false_negative": 0.04}]
    assert choose_candidates(rates, 0.03) == 16
    assert choose_candidates(rates, 0.05) == 32
    assert choose_candidates(rates, 0.001) == 8


def _random_case(seed=0):
    rng = np.random.default_rng(seed)
    user_e, item_e = rng.normal(size=(30, 4)), rng.normal(size=(50, 4))
    train_u = np.repeat(np.arange(1, 30), 6)
    train_i = np.concatenate([rng.choice(np.arange(1, 50), 6, replace=False) for _ in range(29)])
    valid_u = np.repeat(np.arange(1, 30), 2)
    valid_i = np.concatenate([rng.choice(np.setdiff1d(np.arange(1, 50), train_i[6 * k:6 * k + 6]), 2, replace=False)
                              for k in range(29)])
    return user_e, item_e, train_u, train_i, valid_u, valid_i


def test_chunks_order_and_seed():
    user_e, item_e, tu, ti, vu, vi = _random_case()
    first = calibrate_candidates(user_e, item_e, tu, ti, vu, vi, seed=3)
    assert first.neg_candidates in (8, 16, 32)
    rates = [r["false_negative"] for r in first.rates]
    assert rates == sorted(rates)  # a larger M is never safer
    order = np.random.default_rng(1).permutation(len(vu))
    again = calibrate_candidates(user_e, item_e, tu, ti, vu[order], vi[order], seed=3)
    assert again.as_dict() == first.as_dict()
    chunked = false_negative_rates(user_e, item_e, tu, ti, vu, vi, chunk=4)
    assert [r["false_negative"] for r in chunked.rates] == pytest.approx(rates)
    # more users than max_users: a seeded draw of them
    part = false_negative_rates(user_e, item_e, tu, ti, vu, vi, seed=5, max_users=10)
    assert part.n_users == 10 and part.as_dict() == false_negative_rates(user_e, item_e, tu, ti, vu, vi, seed=5,
                                                                          max_users=10).as_dict()
    assert part.as_dict() != false_negative_rates(user_e, item_e, tu, ti, vu, vi, seed=6, max_users=10).as_dict()


def test_candidates_in_use_errors_name_the_key_and_the_fix():
    assert candidates_in_use(16, None, 1, "m") == 16
    assert candidates_in_use("auto", 32, 3, "m") == 32
    with pytest.raises(ValueError, match="llmhni_neg_candidates=auto needs the pipeline"):
        candidates_in_use("auto", None, 1, "m")
    with pytest.raises(ValueError, match="llmhni_neg_topk=9 exceeds the M=8"):
        candidates_in_use("auto", 8, 9, "m")


def test_auto_is_a_valid_value_and_other_words_are_not(recbole_workdir):
    assert LLMHNIConfig(model="LLMHNI_LightGCN", dataset="ml-100k",
                        config_dict={"llmhni_neg_candidates": "Auto"})["llmhni_neg_candidates"] == "auto"
    with pytest.raises(Exception, match="llmhni_neg_candidates"):
        LLMHNIConfig(model="LLMHNI_LightGCN", dataset="ml-100k", config_dict={"llmhni_neg_candidates": "many"})


def _choose(tiny_dataset, workdir, art):
    config, train, valid, test = _splits(tiny_dataset["data_path"], workdir, art)
    assert config["llmhni_neg_candidates"] == "auto"  # the shipped default
    result = LLMHNIPipeline(config, encoder=HashEncoder()).run(train, valid)
    return result, test


def test_the_stage_reads_training_and_validation_only_and_is_cached(recbole_workdir, tiny_dataset):
    first, test = _choose(tiny_dataset, recbole_workdir, "a")
    report = first.report("S3 candidates")
    assert report.status == "computed" and first.neg_candidates in (8, 16, 32)
    assert first.model_inputs().neg_candidates == first.neg_candidates
    assert first.report("S4 pretrain").status == "computed"  # S4 runs for it, though denoising is off

    # another test split: the same choice, from the same figures
    test_file, old_test = replace_test_split(tiny_dataset, seed=2)
    try:
        again, test2 = _choose(tiny_dataset, recbole_workdir, "b")
    finally:
        test_file.write_text(old_test)
    assert not np.array_equal(test.inter_feat["item_id"].numpy(), test2.inter_feat["item_id"].numpy())
    assert again.report("S3 candidates").status == "computed"
    assert again.report("S3 candidates").details == report.details

    third, _ = _choose(tiny_dataset, recbole_workdir, "b")  # a second run: the artifact, not Rec_pre
    assert third.report("S3 candidates").status == "reused" and third.neg_candidates == first.neg_candidates
    assert not any(r.stage == "S4 pretrain" and r.status != "off" for r in third.reports)


def test_auto_without_the_validation_split_is_one_line(recbole_workdir, tiny_dataset):
    config, train, _, _ = _splits(tiny_dataset["data_path"], recbole_workdir, "a")
    config["llmhni_fn_quantile"] = 0.9
    with pytest.raises(ValueError, match="llmhni_neg_candidates=auto"):
        LLMHNIPipeline(config, encoder=HashEncoder()).run(train)

"""``llmhni_fn_quantile: auto``: the AUC, the rule, and the pipeline stage (train + valid only)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_llmhni.config import LLMHNIConfig
from recbole_llmhni.data.dataset import LLMHNIDataset
from recbole_llmhni.pipeline import LLMHNIPipeline
from recbole_llmhni.semantic.calibration import (
    calibrate_fn_quantile,
    choose_fn_quantile,
    expected_errors,
    heldout_auc,
    matched_auc,
)
from test_pipeline import HashEncoder


def test_matched_auc_by_hand():
    pos = torch.tensor([0.5, 0.2])
    neg = torch.tensor([[0.1, 0.5, 0.9], [0.2, 0.1, 0.0]])
    # row 0: win, tie, loss = 1.5; row 1: tie, win, win = 2.5
    assert matched_auc(pos, neg) == pytest.approx(4 / 6)
    valid = torch.tensor([[True, True, False], [True, True, True]])
    assert matched_auc(pos, neg, valid) == pytest.approx(4 / 5)


def test_heldout_auc_on_a_fixture_with_one_possible_negative():
    # s(u, i) = z_u * z_i (1-d); items 1..4, each user knows 1, 2, holds out 3: the only unobserved item is 4
    user_z = np.array([[0.0], [1.0], [1.0], [-1.0]])
    item_z = np.array([[0.0], [0.0], [0.0], [0.5], [0.2]])
    users = np.array([1, 2, 3])
    known_u, known_i = np.repeat(users, 2), np.tile([1, 2], 3)
    # users 1, 2: 0.5 > 0.2 (win); user 3: -0.5 < -0.2 (loss)
    assert heldout_auc(user_z, item_z, users, np.array([3, 3, 3]), known_u, known_i) == pytest.approx(2 / 3)


RATES = [{"q": 0.3, "tpr": 0.60, "fpr": 0.37}, {"q": 0.5, "tpr": 0.39, "fpr": 0.22},
         {"q": 0.7, "tpr": 0.20, "fpr": 0.10}, {"q": 0.9, "tpr": 0.04, "fpr": 0.02}]


def test_the_rule_minimises_expected_errors_at_the_base_rate():
    # pi = 0.01: R = 0.01 * (1 - TPR) + 0.99 * FPR = 0.3703, 0.2239, 0.107, 0.0294 -> 0.9
    assert expected_errors(RATES[3], 0.01) == pytest.approx(0.01 * 0.96 + 0.99 * 0.02)
    assert choose_fn_quantile(RATES, 0.01) == 0.9
    # pi = 0.5: R = 0.385, 0.415, 0.45, 0.49 -> 0.3
    assert choose_fn_quantile(RATES, 0.5) == 0.3
    tie = [{"q": 0.5, "tpr": 0.5, "fpr": 0.1}, {"q": 0.7, "tpr": 0.5, "fpr": 0.1}]
    assert choose_fn_quantile(tie, 0.2) == 0.7  # ties to the filter that drops less


def _one_user_case(seed=0):
    # user 1: training relevances 0.1, 0.3, 0.5, 0.7 -> theta(0.3, 0.5, 0.7, 0.9) = 0.28, 0.4, 0.52, 0.64;
    # validation positives 0.55 and 0.58; the other unobserved items have 0.25, 0.45, 0.62
    item_z = np.array([[0.0], [0.1], [0.3], [0.5], [0.7], [0.55], [0.25], [0.45], [0.62], [0.58]])
    user_z = np.array([[0.0], [1.0]])
    return calibrate_fn_quantile(user_z, item_z, np.ones(4, int), np.array([1, 2, 3, 4]), np.array([1, 1]),
                                 np.array([5, 9]), seed, per_positive=3000)


def test_calibration_on_a_hand_made_user():
    # TPR = 1, 1, 1, 0; FPR = 2/3, 2/3, 1/3, 0; pi = 2 positives / 5 unobserved items = 0.4
    # R = 0.6 * 2/3, 0.6 * 2/3, 0.6 * 1/3, 0.4 * 1 = 0.4, 0.4, 0.2, 0.4 -> q = 0.7
    found = _one_user_case()
    assert found.prior == pytest.approx(0.4)
    assert [r["tpr"] for r in found.rates] == [1.0, 1.0, 1.0, 0.0]
    assert [r["fpr"] for r in found.rates] == pytest.approx([2 / 3, 2 / 3, 1 / 3, 0.0], abs=0.03)
    assert [r["risk"] for r in found.rates] == pytest.approx([0.4, 0.4, 0.2, 0.4], abs=0.02)
    assert found.fn_quantile == 0.7
    # AUC: 0.55 and 0.58 beat 0.25 and 0.45, lose to 0.62: 2/3
    assert found.auc == pytest.approx(2 / 3, abs=0.03) and found.n_negatives == 6000
    assert _one_user_case().as_dict() == found.as_dict()  # deterministic for a seed


def _splits(data_path, workdir, art):
    config = LLMHNIConfig(model="LLMHNI_LightGCN", dataset="tiny", config_dict={
        "data_path": data_path, "show_progress": False, "llmhni_artifact_dir": str(workdir / art),
        "llmhni_align_epochs": 2, "llmhni_denoise": False, "llmhni_fn_quantile": "auto"})
    init_seed(config["seed"], config["reproducibility"])
    train, valid, test = data_preparation(config, LLMHNIDataset(config))
    return config, train._dataset, valid._dataset, test._dataset


def replace_test_split(tiny_dataset, seed):
    """Write another test split (each user's test item replaced by another item it has nowhere
    else); returns ``(test file, its old text)`` so the caller can put it back."""
    rng = np.random.default_rng(seed)
    splits = tiny_dataset["splits"]
    seen = {}
    for user, item in splits["train"] + splits["valid"]:
        seen.setdefault(user, set()).add(item)
    test_file = tiny_dataset["dir"] / "tiny.test.inter"
    old_test = test_file.read_text()
    lines = ["user_id:token\titem_id:token"]
    for user, item in splits["test"]:
        others = [i for i in tiny_dataset["items"] if i not in seen[user] and i != item]
        lines.append(f"{user}\t{others[rng.integers(len(others))]}")
    test_file.write_text("\n".join(lines) + "\n")
    return test_file, old_test


def _calibrate(tiny_dataset, workdir, art):
    config, train, valid, test = _splits(tiny_dataset["data_path"], workdir, art)
    result = LLMHNIPipeline(config, encoder=HashEncoder()).run(train, valid)
    return result, train, test


def test_auto_uses_training_and_validation_only_and_is_cached(recbole_workdir, tiny_dataset):
    first, train, test = _calibrate(tiny_dataset, recbole_workdir, "a")
    report = first.report("S3 calibrate")
    assert report.status == "computed" and first.fn_quantile in (0.3, 0.5, 0.7, 0.9)
    assert 0.0 <= report.details["auc"] <= 1.0

    test_file, old_test = replace_test_split(tiny_dataset, seed=1)
    again, train2, test2 = _calibrate(tiny_dataset, recbole_workdir, "b")  # fresh artifacts: computed again
    assert not np.array_equal(test.inter_feat["item_id"].numpy(), test2.inter_feat["item_id"].numpy())
    assert list(train2.field2id_token["item_id"]) == list(train.field2id_token["item_id"])
    assert again.report("S3 calibrate").status == "computed"
    assert again.fn_quantile == first.fn_quantile
    assert again.report("S3 calibrate").details == report.details

    # a second run reuses the artifact (and its cost is a file read)
    test_file.write_text(old_test)
    third, _, _ = _calibrate(tiny_dataset, recbole_workdir, "b")
    assert third.report("S3 calibrate").status == "reused" and third.fn_quantile == first.fn_quantile


def test_auto_without_the_validation_split_is_one_line(recbole_workdir, tiny_dataset):
    config, train, _, _ = _splits(tiny_dataset["data_path"], recbole_workdir, "a")
    with pytest.raises(ValueError, match="llmhni_fn_quantile=auto"):
        LLMHNIPipeline(config, encoder=HashEncoder()).run(train)


def test_auto_is_a_valid_value_and_other_words_are_not(recbole_workdir):
    assert LLMHNIConfig(model="LLMHNI_LightGCN", dataset="ml-100k",
                        config_dict={"llmhni_fn_quantile": "AUTO"})["llmhni_fn_quantile"] == "auto"
    with pytest.raises(Exception, match="llmhni_fn_quantile"):
        LLMHNIConfig(model="LLMHNI_LightGCN", dataset="ml-100k", config_dict={"llmhni_fn_quantile": "best"})


def test_the_choice_does_not_depend_on_the_order_of_the_validation_split():
    rng = np.random.default_rng(0)
    user_z, item_z = rng.normal(size=(6, 4)), rng.normal(size=(40, 4))
    train_u, train_i = np.repeat(np.arange(1, 6), 8), np.concatenate([rng.choice(np.arange(1, 20), 8, replace=False)
                                                                      for _ in range(5)])
    valid_u, valid_i = np.repeat(np.arange(1, 6), 3), np.tile([20, 25, 30], 5)
    first = calibrate_fn_quantile(user_z, item_z, train_u, train_i, valid_u, valid_i, seed=3)
    order = rng.permutation(len(valid_u))
    again = calibrate_fn_quantile(user_z, item_z, train_u, train_i, valid_u[order], valid_i[order], seed=3)
    assert again.as_dict() == first.as_dict()
    other_seed = calibrate_fn_quantile(user_z, item_z, train_u, train_i, valid_u, valid_i, seed=4)
    assert other_seed.auc != first.auc  # the seed does drive the draws

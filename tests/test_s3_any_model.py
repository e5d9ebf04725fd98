"""S3 for any RecBole general recommender: ``--model=BPR --llmhni_neg_mode=semantic``.

The negatives the plugin's train loader hands RecBole's BPR are checked against training
positives and against likely false negatives computed here from the vectors the test wrote
(cosine, per-user 0.9-quantile over the user's training items, numpy's own quantile).
Kept cheap: vectors written by the test (S1 reads them, S2 off or one epoch), three batches,
one epoch on the command line.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recbole_llmhni.config import ConfigError, LLMHNIConfig

REPO = Path(__file__).resolve().parents[1]
Q = 0.9


def _vectors(directory: Path, dim: int = 16):
    """Random 'profile embeddings' for ml-100k's raw user ids 1..943 and item ids 1..1682."""
    rng = np.random.default_rng(7)
    out = {}
    for kind, n in (("user", 943), ("item", 1682)):
        ids = np.array([str(i) for i in range(1, n + 1)])
        emb = rng.normal(size=(n, dim)).astype(np.float32)
        np.savez(directory / f"{kind}.npz", ids=ids, embeddings=emb)
        out[kind] = dict(zip(ids.tolist(), emb))
    return out


def _config(tmp_path: Path, **extra):
    return {
        "llmhni_neg_mode": "semantic", "llmhni_fn_quantile": Q, "llmhni_use_alignment": False,
        "llmhni_encoder": "precomputed", "llmhni_precomputed_user_emb": str(tmp_path / "user.npz"),
        "llmhni_precomputed_item_emb": str(tmp_path / "item.npz"),
        "llmhni_artifact_dir": str(tmp_path / "artifacts"), "train_batch_size": 4096, "epochs": 1,
        "show_progress": False, "checkpoint_dir": str(tmp_path / "saved"), **extra,
    }


def test_bpr_negatives_are_never_training_positives_nor_likely_false_negatives(tmp_path, monkeypatch):
    from recbole_llmhni.semantic.negative_loader import S3TrainDataLoader
    from recbole_llmhni.quick_start import prepare_run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    vectors = _vectors(tmp_path)
    # M = 32: a row whose every candidate is a likely false negative falls back to the least
    # relevant one (semantic/sampling.py); with 32 candidates that does not happen here (checked below)
    run = prepare_run("BPR", "ml-100k", config_dict=_config(tmp_path, llmhni_neg_candidates=32))
    loader = run.train_data
    assert isinstance(loader, S3TrainDataLoader) and loader.model is run.model

    train = loader._dataset
    uid, iid = train.uid_field, train.iid_field
    users = train.inter_feat[uid].numpy()
    items = train.inter_feat[iid].numpy()
    user_tok, item_tok = train.field2id_token[uid], train.field2id_token[iid]
    unit = {k: {t: v / np.linalg.norm(v) for t, v in vs.items()} for k, vs in vectors.items()}

    def cosine(u: int, i: int) -> float:
        return float(unit["user"][user_tok[u]] @ unit["item"][item_tok[i]])

    positives = set(zip(users.tolist(), items.tolist()))
    by_user: dict = {}
    for u, i in positives:
        by_user.setdefault(u, []).append(i)
    theta = {u: float(np.quantile([cosine(u, i) for i in its], Q)) for u, its in by_user.items()}

    rows = false_negatives = 0
    for n, batch in enumerate(loader):
        negs = batch[loader.neg_item_id].numpy()
        for u, j in zip(batch[uid].numpy().tolist(), negs.tolist()):
            assert (u, j) not in positives
            assert 1 <= j < train.item_num
            false_negatives += cosine(u, j) > theta[u] + 1e-5
        rows += len(negs)
        if n == 2:  # three batches of 4096 rows
            break
    assert rows == 3 * 4096
    assert false_negatives == 0
    stats = loader.negative_sampling_stats()
    assert stats["rows"] == rows and stats["all_dropped_row_share"] == 0.0
    # random vectors: about 1 - Q of the candidates lie above the user's 0.9-quantile, so the filter works
    assert 0.03 < stats["dropped_candidate_share"] < 0.3 and stats["fired_row_share"] > 0.0


def test_the_loader_and_the_llmhni_models_share_one_selection_function():
    from recbole_llmhni.semantic import negative_loader as negatives
    from recbole_llmhni.models import llmhni
    from recbole_llmhni.semantic import sampling

    assert negatives.sample_negatives is sampling.sample_negatives is llmhni.sample_negatives


@pytest.mark.parametrize("model, extra, reason", [
    ("NeuMF", {}, "its input is pointwise"),
    ("WBPR_LightGCN", {}, "it draws its own negatives"),
    ("MultiVAE", {}, "never reads the sampled negative"),  # pairwise, but trains on the user's whole row
    ("BPR", {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "dynamic": True, "candidate_num": 4}},
     "RecBole's dynamic sampling"),
])
def test_a_model_that_cannot_take_s3_is_a_one_line_error(model, extra, reason, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    with pytest.raises(ConfigError) as info:
        LLMHNIConfig(model=model, dataset="ml-100k", config_dict={"llmhni_neg_mode": "semantic", **extra})
    message = str(info.value)
    assert "\n" not in message and "llmhni_neg_mode=semantic" in message and model in message and reason in message
    assert "llmhni_neg_mode unset" in message


def test_by_default_baselines_keep_recbole_negatives_and_llmhni_keeps_s3(tmp_path, monkeypatch):
    from recbole_llmhni.config.defaults import neg_mode_of
    from recbole_llmhni.semantic.negative_loader import uses_s3_loader

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    bpr = LLMHNIConfig(model="BPR", dataset="ml-100k")
    assert bpr["llmhni_neg_mode"] is None and neg_mode_of(bpr) == "uniform" and not uses_s3_loader(bpr)
    llmhni = LLMHNIConfig(model="LLMHNI_LightGCN", dataset="ml-100k")
    assert neg_mode_of(llmhni) == "semantic" and not uses_s3_loader(llmhni)  # S3 in-batch, not in the loader


def test_cli_bpr_with_semantic_negatives_trains_one_epoch(tmp_path):
    _vectors(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, str(REPO / "run_recbole_llmhni.py"), "--model=BPR", "--dataset=ml-100k",
         "--llmhni_neg_mode=semantic", "--epochs=1", "--show_progress=False", "--train_batch_size=8192",
         "--llmhni_encoder=precomputed", f"--llmhni_precomputed_user_emb={tmp_path / 'user.npz'}",
         f"--llmhni_precomputed_item_emb={tmp_path / 'item.npz'}", "--llmhni_align_epochs=1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "S2 align: computed" in out and "S3 train loader: llmhni_neg_mode=semantic" in out
    assert "S3: filter fired on" in out
    assert any(line.strip().startswith("test:") for line in result.stdout.splitlines())

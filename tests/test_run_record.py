"""The run record: what a run returns and writes as JSON (benchmarks read it, never log text)."""
from __future__ import annotations

import json
import math

import pytest

from recbole_llmhni.quick_start import run_recbole_llmhni
from recbole_llmhni.training import embedding_norms


def test_record_holds_metrics_every_epoch_and_the_stage_reports(recbole_workdir, tiny_dataset):
    out = recbole_workdir / "record.json"
    result = run_recbole_llmhni(model="LLMHNI_LightGCN", dataset="tiny", config_dict={
        "data_path": tiny_dataset["data_path"], "epochs": 3, "show_progress": False, "llmhni_neg_mode": "dns",
        "llmhni_neg_candidates": 8, "llmhni_rater": "openai", "llmhni_denoise": False, "llmhni_result_file": str(out),
        "llmhni_artifact_dir": str(recbole_workdir / "art")})
    record = json.loads(out.read_text())
    assert record["test_result"] == pytest.approx(result["test_result"])
    assert record["model"] == "LLMHNI_LightGCN" and record["epochs_trained"] == 3 == len(record["epochs"])
    for k, epoch in enumerate(record["epochs"], start=1):
        assert epoch["epoch"] == k and epoch["train_seconds"] > 0
        assert math.isclose(epoch["loss"], sum(epoch["loss_terms"]))
        assert epoch["user_embedding_norm"] > 0 and epoch["item_embedding_norm"] > 0
        assert "valid_score" in epoch and epoch["valid_seconds"] > 0  # eval_step 1: every epoch validated
    stages = record["pipeline"]["stages"]
    assert [s["stage"] for s in stages] == ["S1 encode", "S2 align", "S4 pretrain", "S5 candidates", "S6 rate", "S7 rewrite"]
    assert {s["status"] for s in stages} == {"off"}  # dns negatives, no denoising: nothing to compute
    assert 1 <= record["best_epoch"] <= 3


def test_embedding_norms_are_the_mean_row_norms():
    import torch

    model = torch.nn.Module()
    model.user_embedding = torch.nn.Embedding(2, 2)
    model.item_embedding = torch.nn.Embedding(1, 2)
    with torch.no_grad():
        model.user_embedding.weight.copy_(torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
        model.item_embedding.weight.copy_(torch.tensor([[0.0, 2.0]]))
    assert embedding_norms(model) == {"user_embedding_norm": pytest.approx(3.0), "item_embedding_norm": pytest.approx(2.0)}

"""Seeded ml-100k runs give the test metrics recorded before the pipeline refactor (issue 11).

The expected figures were measured on commit 1eae40e (S1-S7 inside the model's constructor),
CPU, one thread, with the configuration below: moving the offline stages out of the model may
not change a single metric. The semantic vectors come from seeded vector files (the
``precomputed`` encoder), so the test needs no text encoder and runs in about a minute.
"""
from __future__ import annotations

import numpy as np
import pytest

from recbole_llmhni.quick_start import run_recbole_llmhni

#: name -> (model, extra config, test metrics at commit 1eae40e)
RUNS = {
    "BackboneLightGCN": ("BackboneLightGCN", {}, {"recall@10": 0.1361, "recall@20": 0.2108, "ndcg@10": 0.1521, "ndcg@20": 0.1699}),
    "LLMHNI_LightGCN": ("LLMHNI_LightGCN", {}, {"recall@10": 0.1871, "recall@20": 0.2842, "ndcg@10": 0.2186, "ndcg@20": 0.235}),
    "LLMHNI_NGCF": ("LLMHNI_NGCF", {}, {"recall@10": 0.1139, "recall@20": 0.2117, "ndcg@10": 0.1352, "ndcg@20": 0.1611}),
    "LLMHNI_LightGCN, S8 on, warm start": (
        "LLMHNI_LightGCN",
        # S8 as it was when these were recorded: tau 0.2, no gate, no subsample, every step
        {"llmhni_lambda1": 0.1, "llmhni_lambda2": 0.1, "llmhni_warm_start": True, "llmhni_cl_temperature": 0.2,
         "llmhni_cl_scale_ref": 0.0, "llmhni_cl_nodes": 0, "llmhni_cl_every": 1},
        {"recall@10": 0.1653, "recall@20": 0.2529, "ndcg@10": 0.189, "ndcg@20": 0.2071},
    ),
}


@pytest.fixture(scope="module")
def shared_config(tmp_path_factory):
    work = tmp_path_factory.mktemp("seeded")
    rng = np.random.default_rng(0)
    paths = {}
    for kind, n in (("user", 943), ("item", 1682)):  # ml-100k's raw ids are "1".."n"
        paths[kind] = work / f"{kind}.npz"
        np.savez(paths[kind], ids=np.asarray([str(i) for i in range(1, n + 1)]),
                 embeddings=rng.normal(size=(n, 32)).astype(np.float32))
    return {
        "epochs": 2, "show_progress": False, "llmhni_align_epochs": 2, "llmhni_pretrain_epochs": 2,
        "llmhni_artifact_dir": str(work / "art"), "llmhni_cache_dir": str(work / "cache"),
        "llmhni_encoder": "precomputed", "llmhni_precomputed_user_emb": str(paths["user"]),
        "llmhni_precomputed_item_emb": str(paths["item"]),
        # the stand-in's fixed thresholds of that commit (the default is now calibrated per dataset)
        "llmhni_semantic_thresholds": "absolute", "llmhni_semantic_high": 0.5, "llmhni_semantic_low": 0.2,
    }


@pytest.mark.parametrize("name", list(RUNS))
def test_seeded_test_metrics_are_those_recorded_before_the_refactor(recbole_workdir, shared_config, name):
    model, extra, expected = RUNS[name]
    result = run_recbole_llmhni(model=model, dataset="ml-100k", config_dict={**shared_config, **extra})
    assert result["test_result"] == pytest.approx(expected, abs=1e-9), name

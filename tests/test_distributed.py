"""Distributed training through the plugin (recbole_llmhni.distributed, compat's DDP shims).

One 2-process gloo run per model on ml-100k (1 epoch, large batches), the S1 encoder and
the S6 rater on the loopback OpenAI-compatible server, so every LLM call is counted.
"""
from __future__ import annotations

import socket

import torch
from torch.utils.data.distributed import DistributedSampler

from recbole_llmhni.artifacts import read_tsv
from recbole_llmhni.compat import load_trusted_checkpoint, merge_eval_rows
from recbole_llmhni.distributed import launch
from recbole_llmhni.quick_start import evaluate_checkpoint

from fake_openai_server import FakeOpenAIServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_merge_drops_the_padded_duplicates_and_restores_one_process_order():
    """5 samples on 2 ranks: DistributedSampler pads to 6 (sample 0 twice); by hand, rank 0
    gets samples 0, 2, 4 and rank 1 gets 1, 3, 0."""
    gathered = []
    for rank in range(2):
        order = list(DistributedSampler(list(range(5)), num_replicas=2, rank=rank, shuffle=False))
        gathered.append((order, {"rec.topk": torch.tensor([[10 * j, j] for j in order])}))
    assert [g[0] for g in gathered] == [[0, 2, 4], [1, 3, 0]]
    merged = merge_eval_rows(gathered, expected=5)
    assert merged["rec.topk"].tolist() == [[0, 0], [10, 1], [20, 2], [30, 3], [40, 4]]


def test_two_gloo_processes_train_evaluate_exactly_and_rate_each_pair_once(recbole_workdir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    with FakeOpenAIServer() as server:
        common = {
            "epochs": 1, "train_batch_size": 16384, "eval_batch_size": 200000, "show_progress": False,
            "llmhni_artifact_dir": str(recbole_workdir / "art"), "llmhni_cache_dir": str(recbole_workdir / "llm_cache"),
            "llmhni_api_base_url": server.base_url, "llmhni_max_retries": 0,
        }
        # a RecBole-protocol backbone: 2 processes train and test; the checkpoint loads in one
        record = launch("run", "BackboneLightGCN", "ml-100k", None, dict(common), nproc=2, port=_free_port())
        assert record["world_size"] == 2 and record["epochs_trained"] == 1
        assert 0.0 < record["test_result"]["recall@20"] < 1.0
        checkpoint = load_trusted_checkpoint(record["saved_model_file"])
        assert checkpoint["config"]["single_spec"] is True and checkpoint["config"]["world_size"] is None
        one = evaluate_checkpoint(record["saved_model_file"], "BackboneLightGCN", "ml-100k", None, dict(common))
        assert one["test_result"] == record["test_result"]  # 943 users on 2 ranks: one padded duplicate dropped
        assert one["valid_result"] == record["best_valid_result"]

        # LLMHNI: S1 (openai encoder) and S6 (openai rater) run once, in the launcher
        llm = {**common, "llmhni_encoder": "openai", "llmhni_rater": "openai", "llmhni_align_epochs": 1,
               "llmhni_pretrain_epochs": 1, "llmhni_cand_max_pairs": 40}
        record = launch("run", "LLMHNI_LightGCN", "ml-100k", None, llm, nproc=2, port=_free_port())
    assert record["world_size"] == 2 and 0.0 < record["test_result"]["recall@20"] < 1.0
    stages = {s["stage"]: s["status"] for s in record["pipeline"]["stages"]}
    assert stages["S6 rate"] == "reused" and "computed" not in stages.values()  # rank 0 read the launcher's artifacts
    pairs = len(read_tsv(next((recbole_workdir / "art" / "ml-100k" / "ratings").glob("*/ratings.tsv")))["user"])
    chat = [c for c in server.calls if c.path.endswith("/chat/completions")]
    assert pairs == 40
    assert all(c.status == 200 for c in chat)
    assert len({c.fingerprint for c in chat}) == len(chat)  # no view of any pair asked twice
    assert pairs < len(chat) <= 2 * pairs  # two views per pair, identical prompts shared

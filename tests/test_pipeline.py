"""LLMHNIPipeline: the offline stages before the model, the model built from their arrays alone."""
from __future__ import annotations

import hashlib
import json
from typing import Mapping, Optional

import numpy as np
import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_llmhni.__main__ import main
from recbole_llmhni.config import LLMHNIConfig
from recbole_llmhni.data.dataset import LLMHNIDataset
from recbole_llmhni.llm import Rating
from recbole_llmhni.pipeline import LLMHNIPipeline

STAGES = ["S1 encode", "S2 align", "S4 pretrain", "S5 candidates", "S6 rate", "S7 rewrite"]
#: a default LLMHNI run: S3's q chosen by "S3 calibrate" (``llmhni_fn_quantile: auto``) after S2,
#: and its M by "S3 candidates" (``llmhni_neg_candidates: auto``) from S4's Rec_pre
DEFAULT_STAGES = STAGES[:2] + ["S3 calibrate", "S4 pretrain", "S3 candidates"] + STAGES[3:]


class HashEncoder:
    """A deterministic 'text encoder': vectors from a hash of each text."""

    name = "test/hash-encoder"

    def encode(self, texts: Mapping[str, str], kind: Optional[str] = None) -> np.ndarray:
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest(), dtype=np.uint8)[:16] for t in texts.values()]
        return np.asarray(rows, dtype=np.float32) - 127.5


class Rater:
    name = "test/rater"
    is_stand_in = False

    def rate(self, requests):
        return [Rating(r.user_id, r.item_id, *(("High", "High"), ("Low", "High"))[len(r.item_id) % 2]) for r in requests]

    def close(self):
        pass


class FailingEncoder(HashEncoder):
    def encode(self, texts, kind=None):
        raise AssertionError("the encoder was called")


class FailingRater(Rater):
    def rate(self, requests):
        raise AssertionError("the rater was called")


def failing_trainer(*args, **kwargs):
    raise AssertionError("Rec_pre was trained")


def _splits(tiny_dataset, workdir, model="LLMHNI_LightGCN", **extra):
    config = LLMHNIConfig(model=model, dataset="tiny", config_dict={
        "data_path": tiny_dataset["data_path"], "show_progress": False,
        "llmhni_artifact_dir": str(workdir / "art"), "llmhni_align_epochs": 2, "llmhni_pretrain_epochs": 2,
        "llmhni_warm_start": True, **extra})
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = data_preparation(config, LLMHNIDataset(config))
    return config, train_data, valid_data._dataset  # the validation split: what "S3 calibrate" reads


@pytest.mark.parametrize("model", ["LLMHNI_LightGCN", "LLMHNI_NGCF"])
def test_model_is_built_from_prepared_artifacts_with_fakes_that_fail_when_called(recbole_workdir, tiny_dataset, model):
    config, train_data, valid = _splits(tiny_dataset, recbole_workdir, model)
    first = LLMHNIPipeline(config, encoder=HashEncoder(), rater=Rater()).run(train_data._dataset, valid)
    assert [r.stage for r in first.reports] == DEFAULT_STAGES
    assert {r.status for r in first.reports} == {"computed"}

    config, train_data, valid = _splits(tiny_dataset, recbole_workdir, model)
    again = LLMHNIPipeline(config, encoder=FailingEncoder(), rater=FailingRater(), rec_pre_trainer=failing_trainer)
    result = again.run(train_data._dataset, valid)
    assert [r.status for r in result.reports] == ["reused"] * 8  # S4 reused: the warm start loads Rec_pre
    train = train_data._dataset
    train.llmhni_inputs = result.model_inputs()
    init_seed(config["seed"], config["reproducibility"])
    net = config.model_class(config, train)
    for name, value in result.rec_pre_state.items():  # warm start from the stored Rec_pre
        assert torch.equal(dict(net.named_parameters())[name].detach().cpu(), value)
    assert torch.equal(net.semantic_user.cpu(), torch.as_tensor(first.semantic_user))
    assert net.norm_adj_prime._nnz() > 0 and len(result.graph.added) + len(result.graph.removed) > 0
    assert np.array_equal(result.graph.users, first.graph.users)


def test_stages_the_config_does_not_use_are_off_and_cost_nothing(recbole_workdir, tiny_dataset):
    config, train_data, valid = _splits(tiny_dataset, recbole_workdir, llmhni_neg_mode="dns", llmhni_denoise=False,
                                 llmhni_warm_start=False, llmhni_neg_candidates=8)
    result = LLMHNIPipeline(config, encoder=FailingEncoder(), rater=FailingRater(),
                            rec_pre_trainer=failing_trainer).run(train_data._dataset)
    assert [(r.stage, r.status) for r in result.reports] == [(s, "off") for s in STAGES]
    inputs = result.model_inputs()
    assert inputs.semantic_user is None and inputs.graph is None and inputs.rec_pre_state is None
    assert not (recbole_workdir / "art").exists()


def test_the_pipeline_command_prints_every_stage_and_writes_json(recbole_workdir, tiny_dataset, capsys):
    vectors = {}
    rng = np.random.default_rng(0)
    for kind, ids in (("user", tiny_dataset["users"]), ("item", tiny_dataset["items"])):
        vectors[kind] = recbole_workdir / f"{kind}.npz"
        np.savez(vectors[kind], ids=np.asarray(ids), embeddings=rng.normal(size=(len(ids), 8)).astype(np.float32))
    args = ["pipeline", "--model=LLMHNI_NGCF", "--dataset=tiny", "-q", f"--json={recbole_workdir / 'stages.json'}",
            f"--data_path={tiny_dataset['data_path']}", f"--llmhni_artifact_dir={recbole_workdir / 'art'}",
            "--llmhni_encoder=precomputed", f"--llmhni_precomputed_user_emb={vectors['user']}",
            f"--llmhni_precomputed_item_emb={vectors['item']}", "--llmhni_align_epochs=2", "--llmhni_pretrain_epochs=1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for stage in DEFAULT_STAGES:
        assert f"  {stage}: computed in" in out
    stages = json.loads((recbole_workdir / "stages.json").read_text())["stages"]
    assert [s["stage"] for s in stages] == DEFAULT_STAGES and all(s["path"] for s in stages)
    assert main(args) == 0
    assert capsys.readouterr().out.count(": reused ") == 7  # S1-S3 (both), S5-S7; S4 skipped: S3's and S5's cached
    assert main(args[:-1] + ["--llmhni_pretrain_epochs=-2"]) == 2
    assert "llmhni_pretrain_epochs=-2 is not allowed" in capsys.readouterr().err

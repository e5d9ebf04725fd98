"""S4-S7 end to end on the tiny dataset: artifacts, reuse, G', report, the dataset hook."""
import hashlib
import json
import logging
import random
from typing import List

import numpy as np
import pytest
import torch

from recbole_llmhni.config import LLMHNIConfig
from recbole_llmhni.data.dataset import LLMHNIDataset
from recbole_llmhni.data.noise import read_pairs
from recbole_llmhni.denoise import pipeline as pipeline_module
from recbole_llmhni.denoise import pretrain as s4
from recbole_llmhni.denoise.store import read_tsv
from recbole_llmhni.llm import Rating


class ScriptedRater:
    """A rater whose views are a fixed function of the raw pair; counts what it is asked."""

    name = "scripted-test-rater"
    is_stand_in = False

    def __init__(self) -> None:
        self.calls = 0
        self.requests: List = []

    @staticmethod
    def views(user: str, item: str):
        h = int(hashlib.sha256(f"{user}|{item}".encode()).hexdigest(), 16)
        return [("High", "High"), ("Low", "High"), ("High", "Medium"), ("unparsed", "High")][h % 4]

    def rate(self, requests):
        self.calls += 1
        self.requests.extend(requests)
        return [Rating(r.user_id, r.item_id, *self.views(r.user_id, r.item_id)) for r in requests]

    def close(self) -> None:
        pass


def _split(tiny_dataset, art, **extra):
    config = LLMHNIConfig(
        model="BackboneLightGCN",
        dataset="tiny",
        config_dict={
            "data_path": tiny_dataset["data_path"],
            "llmhni_artifact_dir": str(art),
            "llmhni_pretrain_epochs": 2,
            "llmhni_cand_kn": 2,
            "llmhni_cand_kp": 2,
            "llmhni_liked_items": 2,
            "show_progress": False,
            **extra,
        },
    )
    full = LLMHNIDataset(config)
    train, valid, _ = full.build()
    return train, valid


def _raw_pairs(train, users, items):
    return set(zip(train.id2token("user_id", users).tolist(), train.id2token("item_id", items).tolist()))


def _stage_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "recbole_llmhni.denoise" and r.getMessage()[:2] in ("S4", "S5", "S6", "S7")]


def _forbid_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Rec_pre was trained again")

    monkeypatch.setattr(s4, "train_rec_pre", refuse)


def test_g_prime_follows_the_ratings_and_a_second_run_reuses_everything(recbole_workdir, tiny_dataset, caplog, monkeypatch):
    art = recbole_workdir / "art"
    train, _ = _split(tiny_dataset, art)
    rater = ScriptedRater()
    with caplog.at_level(logging.INFO, logger="recbole_llmhni.denoise"):
        graph = train.denoised_graph(rater=rater)
    first = _stage_lines(caplog)
    assert [line.split(":")[0] for line in first if "computed in" in line] == ["S4 pretrain", "S5 candidates", "S6 rate", "S7 rewrite"]
    assert rater.calls == 1

    # G' = G - noisy low-score positives + hard high-score negatives, from the rater's own views
    g = _raw_pairs(train, *train.train_edges())
    cand = read_tsv(next((art / "tiny" / "candidates").glob("*/candidates.tsv")))
    kinds = dict(zip(zip(cand["user"].tolist(), cand["item"].tolist()), cand["kind"].tolist()))
    assert len(kinds) == len(rater.requests) == len(cand["user"]) > 0
    hard = {p for p in kinds if ScriptedRater.views(*p) == ("High", "High")}
    noisy = {p for p in kinds if "Low" in ScriptedRater.views(*p) or "Medium" in ScriptedRater.views(*p)}
    expected_added = {p for p in hard if kinds[p] == "neg"}
    expected_removed = {p for p in noisy if kinds[p] == "pos"}
    assert expected_added and expected_removed
    assert {p for p in kinds if kinds[p] == "pos"} <= g and not {p for p in kinds if kinds[p] == "neg"} & g
    assert _raw_pairs(train, graph.added.users, graph.added.items) == expected_added
    assert _raw_pairs(train, graph.removed.users, graph.removed.items) == expected_removed
    assert _raw_pairs(train, graph.users, graph.items) == (g - expected_removed) | expected_added
    assert graph.counts["denoised"] == len(graph.users) == len(g) - len(expected_removed) + len(expected_added)

    # provenance: raw pair, both views, Rec_pre score, rater
    added = read_tsv(graph.directory / "added.tsv")
    assert list(added) == ["user", "item", "user_view", "item_view", "score", "rank", "rater"]
    assert set(zip(added["user"].tolist(), added["item"].tolist())) == expected_added
    assert set(added["rater"].tolist()) == {"scripted-test-rater"}
    removed = read_tsv(graph.directory / "removed.tsv")
    for u, i, uv, iv in zip(removed["user"], removed["item"], removed["user_view"], removed["item_view"]):
        assert (uv, iv) == ScriptedRater.views(u, i)

    # second run, fresh objects: nothing trained, nothing rated, the same G'
    caplog.clear()
    _forbid_training(monkeypatch)
    train2, _ = _split(tiny_dataset, art)
    rater2 = ScriptedRater()
    with caplog.at_level(logging.INFO, logger="recbole_llmhni.denoise"):
        again = train2.denoised_graph(rater=rater2)
    second = _stage_lines(caplog)
    assert rater2.calls == 0
    assert not [line for line in second if "computed" in line]
    assert second[0].startswith("S4 pretrain: skipped, S5 candidates are cached")
    assert [line.split(":")[0] for line in second if "reused" in line] == ["S5 candidates", "S6 rate", "S7 rewrite"]
    assert _raw_pairs(train2, again.users, again.items) == _raw_pairs(train, graph.users, graph.items)


def test_changed_candidate_setting_reuses_rec_pre_and_a_killed_stage_is_redone(recbole_workdir, tiny_dataset, caplog, monkeypatch):
    art = recbole_workdir / "art"
    train, _ = _split(tiny_dataset, art)
    train.denoised_graph(rater=ScriptedRater())

    _forbid_training(monkeypatch)
    train, _ = _split(tiny_dataset, art, llmhni_cand_kn=1)
    rater = ScriptedRater()
    with caplog.at_level(logging.INFO, logger="recbole_llmhni.denoise"):
        graph = train.denoised_graph(rater=rater)
    lines = _stage_lines(caplog)
    assert lines[0].startswith("S4 pretrain: reused")
    assert rater.calls == 1
    assert len(rater.requests) == graph.counts["candidates_neg"] + graph.counts["candidates_pos"]
    assert graph.counts["candidates_neg"] == 30  # k_n = 1 per user (30 users)

    # a run killed while rating leaves no manifest: S6 (and only S6 onwards) is redone
    for manifest in (art / "tiny" / "ratings").glob("*/manifest.json"):
        manifest.unlink()
    caplog.clear()
    rater = ScriptedRater()
    with caplog.at_level(logging.INFO, logger="recbole_llmhni.denoise"):
        again = train.denoised_graph(rater=rater)
    lines = _stage_lines(caplog)
    assert rater.calls == 1
    assert [line.split(":")[0] for line in lines if "reused" in line] == ["S5 candidates", "S7 rewrite"]
    assert any(line.startswith("S6 rate: computed") for line in lines)
    assert np.array_equal(again.users, graph.users) and np.array_equal(again.items, graph.items)


def test_identification_report_against_injected_noise(recbole_workdir, tiny_dataset, caplog):
    art = recbole_workdir / "art"
    train, _ = _split(tiny_dataset, art, llmhni_noise_ratio=0.25, llmhni_cand_kp=3)
    with caplog.at_level(logging.INFO, logger="recbole_llmhni.denoise"):
        graph = train.denoised_graph(rater=ScriptedRater())
    report = json.loads((graph.directory / "identification.json").read_text())
    assert report == graph.report
    ident = report["identification"]

    injected = set(zip(*read_pairs(train.injected_pairs_file)))
    ratings = read_tsv(next((art / "tiny" / "ratings").glob("*/ratings.tsv")))
    pos = [(u, i, label) for u, i, k, label in zip(ratings["user"], ratings["item"], ratings["kind"], ratings["label"]) if k == "pos"]
    flagged = {(u, i) for u, i, label in pos if label == "noisy"}
    assert ident["injected"] == len(injected) == 30
    assert ident["injected_in_candidates"] == len({(u, i) for u, i, _ in pos} & injected) > 0
    assert ident["labelled_noisy"] == len(flagged) == len(graph.removed)
    assert ident["precision"] == pytest.approx(len(flagged & injected) / len(flagged))
    assert ident["recall"] == pytest.approx(len(flagged & injected) / len(injected))
    assert report["edges"]["added"] == len(graph.added) and report["edges"]["denoised"] == len(graph)
    assert "LLMHNI identification report -- rater: scripted-test-rater" in caplog.text
    assert "precision / recall / F1" in caplog.text


def test_semantic_rater_labels_follow_the_relevance(recbole_workdir, tiny_dataset, caplog):
    train, _ = _split(tiny_dataset, recbole_workdir / "art", llmhni_rater="semantic",
                      llmhni_semantic_high=0.3, llmhni_semantic_low=-0.3)
    with pytest.raises(ValueError, match="no relevance was given"):
        train.denoised_graph()
    rng = np.random.default_rng(0)
    user_z = rng.normal(size=(train.user_num, 8)).astype(np.float32)
    item_z = rng.normal(size=(train.item_num, 8)).astype(np.float32)
    user_z /= np.linalg.norm(user_z, axis=1, keepdims=True)
    item_z /= np.linalg.norm(item_z, axis=1, keepdims=True)
    graph = train.denoised_graph(relevance=(torch.from_numpy(user_z), item_z))
    ratings = read_tsv(next((recbole_workdir / "art" / "tiny" / "ratings").glob("*/ratings.tsv")),
                       {"user_relevance": float, "item_relevance": float})
    label = lambda s: "High" if s >= 0.3 else ("Low" if s < -0.3 else "Medium")  # noqa: E731
    u = train.token2id("user_id", ratings["user"].tolist())
    i = train.token2id("item_id", ratings["item"].tolist())
    np.testing.assert_allclose(ratings["user_relevance"], (user_z[u] * item_z[i]).sum(1), atol=1e-6)
    assert [label(s) for s in ratings["user_relevance"]] == ratings["user_view"].tolist()
    assert [label(s) for s in ratings["item_relevance"]] == ratings["item_view"].tolist()
    assert graph.counts["hard"] == int(((ratings["user_view"] == "High") & (ratings["item_view"] == "High")).sum())

    # other relevance values are other requests: S6 is redone (S5 reused), with the new values
    with caplog.at_level(logging.INFO, logger="recbole_llmhni.denoise"):
        flipped = train.denoised_graph(relevance=(user_z, -item_z))
    lines = _stage_lines(caplog)
    assert lines[1].startswith("S5 candidates: reused") and lines[2].startswith("S6 rate: ")
    assert any(line.startswith("S6 rate: computed") for line in lines)
    assert flipped.counts["hard"] != graph.counts["hard"] or flipped.counts["noisy"] != graph.counts["noisy"]


def test_denoise_off_is_g_and_other_splits_are_refused(recbole_workdir, tiny_dataset):
    art = recbole_workdir / "art"
    train, valid = _split(tiny_dataset, art, llmhni_denoise=False)
    graph = train.denoised_graph()
    assert not graph.enabled and len(graph.added) == len(graph.removed) == 0
    assert _raw_pairs(train, graph.users, graph.items) == set(tiny_dataset["splits"]["train"])
    assert not (art / "tiny" / "pretrain").exists()
    with pytest.raises(RuntimeError, match="training split"):
        valid.denoised_graph()


def test_random_streams_do_not_depend_on_reuse(recbole_workdir, tiny_dataset):
    """Computing S4 or reusing it leaves the caller's torch / numpy / random streams alike."""
    draws = []
    for _ in range(2):
        train, _ = _split(tiny_dataset, recbole_workdir / "art")
        torch.manual_seed(7), np.random.seed(7), random.seed(7)
        train.denoised_graph(rater=ScriptedRater())
        draws.append((torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()))
    assert draws[0] == draws[1]


def test_membership_helpers(recbole_workdir, tiny_dataset):
    train, _ = _split(tiny_dataset, recbole_workdir / "art")
    graph = train.denoised_graph(rater=ScriptedRater())
    u, i = torch.from_numpy(graph.removed.users), torch.from_numpy(graph.removed.items)
    assert graph.is_removed(u, i).all() and not graph.contains(u, i).any()
    assert graph.contains(graph.users, graph.items).all() and not graph.is_removed(graph.users, graph.items).any()
    assert graph.contains(graph.added.users, graph.added.items).all()
    assert isinstance(graph.contains(u, i), torch.Tensor) and graph.contains(u, i).dtype == torch.bool


@pytest.mark.parametrize("model", ["BackboneLightGCN", "BackboneNGCF"])
def test_rec_pre_checkpoint_round_trip(recbole_workdir, tiny_dataset, model):
    config = LLMHNIConfig(model=model, dataset="tiny", config_dict={
        "data_path": tiny_dataset["data_path"], "llmhni_artifact_dir": str(recbole_workdir / "art"),
        "llmhni_pretrain_epochs": 1, "show_progress": False})
    train, _, _ = LLMHNIDataset(config).build()
    assert s4.backbone_name(config) == model
    material = s4.pretrain_material(config, model, "edges")
    from recbole_llmhni.denoise.store import StageDir

    stage = StageDir(config, "pretrain", "k")
    trained = s4.train_rec_pre(config, train, material)
    s4.save_rec_pre(stage, trained, train, material)
    loaded = s4.load_rec_pre(stage, config, train, material)
    for a, b in zip(s4.propagated_embeddings(trained), s4.propagated_embeddings(loaded)):
        torch.testing.assert_close(a, b)
    assert config["epochs"] != 1 and config["model"] == model  # the run's config is untouched


def test_checkpoint_rows_are_mapped_by_raw_id():
    saved = torch.arange(8, dtype=torch.float32).reshape(4, 2)  # rows of tokens PAD, a, b, c
    fresh = torch.full((4, 2), -1.0)
    out = s4._remap_rows(fresh, saved, ["[PAD]", "a", "b", "c"], np.array(["[PAD]", "c", "x", "a"]))
    assert out.tolist() == [[0, 1], [6, 7], [-1, -1], [2, 3]]  # x is new: keeps its fresh row
    assert s4._remap_rows(fresh, saved, ["[PAD]", "a"], np.array(["[PAD]", "a"])) is saved


def test_defaults_are_documented():
    assert pipeline_module.DEFAULTS["llmhni_pretrain_epochs"] == s4.DEFAULT_PRETRAIN_EPOCHS

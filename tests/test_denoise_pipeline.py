"""S4-S7 through LLMHNIPipeline on the tiny dataset: artifacts, reuse, G', report, stage reports."""
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
from recbole_llmhni.denoise import pretrain as s4
from recbole_llmhni.artifacts import read_tsv
from recbole_llmhni.llm import Rating
from recbole_llmhni.pipeline import LLMHNIPipeline


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
            "llmhni_neg_mode": "uniform",  # S3 off: S1-S2 run only for the semantic rater
            **extra,
        },
    )
    full = LLMHNIDataset(config)
    train, valid, _ = full.build()
    return train, valid


def _raw_pairs(train, users, items):
    return set(zip(train.id2token("user_id", users).tolist(), train.id2token("item_id", items).tolist()))


def _refuse_training(*args, **kwargs):
    raise AssertionError("Rec_pre was trained again")


def _run(train, rater=None, trainer=None):
    """S4-S7 (S1-S2 too for the semantic rater) on ``train``: ``(G', {stage: status})``."""
    result = LLMHNIPipeline(train.config, rater=rater, rec_pre_trainer=trainer).run(train)
    return result.graph, {r.stage: r.status for r in result.reports}


def _vector_files(directory, train, user_z, item_z):
    """Precomputed-encoder files holding ``user_z`` / ``item_z`` (rows by internal id) under raw ids."""
    paths = {}
    for kind, field, z in (("user", "user_id", user_z), ("item", "item_id", item_z)):
        tokens = train.field2id_token[field][1:]
        paths[kind] = directory / f"{kind}_{abs(hash(z.tobytes())) % 10**8}.npz"
        np.savez(paths[kind], ids=np.asarray(tokens), embeddings=z[1:])
    return {"llmhni_encoder": "precomputed", "llmhni_use_alignment": False,
            "llmhni_precomputed_user_emb": str(paths["user"]), "llmhni_precomputed_item_emb": str(paths["item"])}


def test_g_prime_follows_the_ratings_and_a_second_run_reuses_everything(recbole_workdir, tiny_dataset, caplog, monkeypatch):
    art = recbole_workdir / "art"
    train, _ = _split(tiny_dataset, art)
    rater = ScriptedRater()
    with caplog.at_level(logging.INFO, logger="recbole_llmhni.pipeline"):
        graph, first = _run(train, rater)
    assert first == {"S1 encode": "off", "S2 align": "off", "S4 pretrain": "computed", "S5 candidates": "computed",
                     "S6 rate": "computed", "S7 rewrite": "computed"}
    assert "S4 pretrain: computed in" in caplog.text  # one line per stage
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
    train2, _ = _split(tiny_dataset, art)
    rater2 = ScriptedRater()
    again, second = _run(train2, rater2, _refuse_training)
    assert rater2.calls == 0
    assert second == {"S1 encode": "off", "S2 align": "off", "S4 pretrain": "skipped", "S5 candidates": "reused",
                      "S6 rate": "reused", "S7 rewrite": "reused"}
    assert _raw_pairs(train2, again.users, again.items) == _raw_pairs(train, graph.users, graph.items)


def test_changed_candidate_setting_reuses_rec_pre_and_a_killed_stage_is_redone(recbole_workdir, tiny_dataset, caplog, monkeypatch):
    art = recbole_workdir / "art"
    train, _ = _split(tiny_dataset, art)
    _run(train, ScriptedRater())

    train, _ = _split(tiny_dataset, art, llmhni_cand_kn=1)
    rater = ScriptedRater()
    graph, stages = _run(train, rater, _refuse_training)
    assert stages["S4 pretrain"] == "reused"
    assert rater.calls == 1
    assert len(rater.requests) == graph.counts["candidates_neg"] + graph.counts["candidates_pos"]
    assert graph.counts["candidates_neg"] == 30  # k_n = 1 per user (30 users)

    # a run killed while rating leaves no manifest: S6 (and only S6 onwards) is redone
    for manifest in (art / "tiny" / "ratings").glob("*/manifest.json"):
        manifest.unlink()
    rater = ScriptedRater()
    again, stages = _run(train, rater, _refuse_training)
    assert rater.calls == 1
    assert [stages[s] for s in ("S4 pretrain", "S5 candidates", "S6 rate", "S7 rewrite")] == ["skipped", "reused", "computed", "reused"]
    assert np.array_equal(again.users, graph.users) and np.array_equal(again.items, graph.items)


def test_identification_report_against_injected_noise(recbole_workdir, tiny_dataset, caplog):
    art = recbole_workdir / "art"
    train, _ = _split(tiny_dataset, art, llmhni_noise_ratio=0.25, llmhni_cand_kp=3)
    with caplog.at_level(logging.INFO, logger="recbole_llmhni.pipeline"):
        graph, _ = _run(train, ScriptedRater())
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
    semantic = {"llmhni_rater": "semantic", "llmhni_semantic_thresholds": "absolute", "llmhni_semantic_high": 0.3, "llmhni_semantic_low": -0.3}
    train, _ = _split(tiny_dataset, recbole_workdir / "art", **semantic)
    rng = np.random.default_rng(0)
    user_z = rng.normal(size=(train.user_num, 8)).astype(np.float32)
    item_z = rng.normal(size=(train.item_num, 8)).astype(np.float32)
    user_z /= np.linalg.norm(user_z, axis=1, keepdims=True)
    item_z /= np.linalg.norm(item_z, axis=1, keepdims=True)
    user_z[0] = item_z[0] = 0.0  # padding
    train, _ = _split(tiny_dataset, recbole_workdir / "art", **semantic, **_vector_files(recbole_workdir, train, user_z, item_z))
    graph, stages = _run(train)
    assert stages["S1 encode"] == "computed" and stages["S2 align"] == "off"  # s(u,i) = the files' cosine
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
    train, _ = _split(tiny_dataset, recbole_workdir / "art", **semantic, **_vector_files(recbole_workdir, train, user_z, -item_z))
    flipped, stages = _run(train, trainer=_refuse_training)
    assert stages["S5 candidates"] == "reused" and stages["S6 rate"] == "computed"
    assert flipped.counts["hard"] != graph.counts["hard"] or flipped.counts["noisy"] != graph.counts["noisy"]


def test_denoise_off_is_g_and_other_splits_are_refused(recbole_workdir, tiny_dataset):
    art = recbole_workdir / "art"
    train, valid = _split(tiny_dataset, art, llmhni_denoise=False)
    graph, stages = _run(train, ScriptedRater(), _refuse_training)
    assert graph is None and set(stages.values()) == {"off"}
    assert not (art / "tiny").exists() or not any((art / "tiny").iterdir())
    train, valid = _split(tiny_dataset, art)
    with pytest.raises(RuntimeError, match="training split"):
        _run(valid, ScriptedRater(), _refuse_training)


def test_random_streams_do_not_depend_on_reuse(recbole_workdir, tiny_dataset):
    """Computing S4 or reusing it leaves the caller's torch / numpy / random streams alike."""
    draws = []
    for _ in range(2):
        train, _ = _split(tiny_dataset, recbole_workdir / "art")
        torch.manual_seed(7), np.random.seed(7), random.seed(7)
        _run(train, ScriptedRater())
        draws.append((torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()))
    assert draws[0] == draws[1]


def test_membership_helpers(recbole_workdir, tiny_dataset):
    train, _ = _split(tiny_dataset, recbole_workdir / "art")
    graph, _ = _run(train, ScriptedRater())
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
    from recbole_llmhni.artifacts import StageDir

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

"""LLMHNI_LightGCN / LLMHNI_NGCF: registered, S3 inside calculate_loss, modes and switches."""
from pathlib import Path

import numpy as np
import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_llmhni import registry
from recbole_llmhni.config import ConfigError, LLMHNIConfig
from recbole_llmhni.config.defaults import neg_mode_of
from recbole_llmhni.models.inputs import MissingInputsError
from recbole_llmhni.pipeline import LLMHNIPipeline
from recbole_llmhni.data.dataset import LLMHNIDataset
from recbole_llmhni.models.backbones import BackboneLightGCN
from recbole_llmhni.models.llmhni import LLMHNI_LightGCN, LLMHNI_NGCF


def _vector_files(tiny_dataset, directory: Path):
    """Precomputed 'text' embeddings keyed by raw id (the encoder interface's offline backend)."""
    rng = np.random.default_rng(0)
    paths = {}
    for kind, ids in (("user", tiny_dataset["users"]), ("item", tiny_dataset["items"])):
        paths[kind] = directory / f"{kind}_emb.npz"
        np.savez(paths[kind], ids=np.asarray(ids), embeddings=rng.normal(size=(len(ids), 12)).astype(np.float32))
    return paths


def _build(workdir: Path, tiny_dataset, model: str = "LLMHNI_LightGCN", **config_dict):
    paths = _vector_files(tiny_dataset, workdir)
    base = {
        "data_path": tiny_dataset["data_path"],
        "show_progress": False,
        "llmhni_artifact_dir": str(workdir / "artifacts"),
        "llmhni_encoder": "precomputed",
        "llmhni_precomputed_user_emb": str(paths["user"]),
        "llmhni_precomputed_item_emb": str(paths["item"]),
        "llmhni_align_epochs": 3,
        "llmhni_denoise": False,  # S3 on its own; S4-S8 are tested in test_denoise_model.py
        "train_batch_size": 32,
    }
    config = LLMHNIConfig(model=model, dataset="tiny", config_dict={**base, **config_dict})
    init_seed(config["seed"], config["reproducibility"])
    dataset = LLMHNIDataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    if getattr(config.model_class, "needs_pipeline", False):
        pipeline = LLMHNIPipeline(config).run(train_data._dataset, valid_data._dataset)
        train_data._dataset.llmhni_inputs = pipeline.model_inputs()
    init_seed(config["seed"], config["reproducibility"])
    model_obj = config.model_class(config, train_data._dataset).to(config["device"])
    return config, train_data, model_obj


def _training_pairs(train_data):
    users, items = train_data._dataset.train_edges()
    return set(zip(users.tolist(), items.tolist()))


def test_models_are_registered_with_their_defaults():
    assert registry.get_model("LLMHNI_LightGCN") is LLMHNI_LightGCN
    assert registry.get_model("LLMHNI_NGCF") is LLMHNI_NGCF
    config = LLMHNIConfig(model="LLMHNI_NGCF", dataset="ml-100k", config_dict={})
    assert neg_mode_of(config) == "semantic" and config["llmhni_denoise"] is True  # llmhni_neg_mode: ~ = the model's own
    assert config["hidden_size_list"] == [64, 64, 64]  # the backbone's own defaults are layered too
    assert config["llmhni_align_top_n"] == 50


@pytest.mark.parametrize("model", ["LLMHNI_LightGCN", "LLMHNI_NGCF"])
@pytest.mark.parametrize("mode", ["dns", "semantic"])
def test_chosen_negatives_are_never_training_positives(recbole_workdir, tiny_dataset, model, mode):
    _, train_data, net = _build(recbole_workdir, tiny_dataset, model, llmhni_neg_mode=mode, llmhni_neg_candidates=16)
    positives = _training_pairs(train_data)
    net.train()
    chosen = 0
    for _ in range(3):
        for batch in train_data:
            batch = batch.to(net.device)
            user_e, item_e = net.forward()
            neg = net.negative_items(batch, user_e, item_e)
            users = batch[net.USER_ID].tolist()
            assert all((u, j) not in positives for u, j in zip(users, neg.tolist()))
            assert neg.min() >= 1
            chosen += len(users)
            loss = net.calculate_loss(batch)
            assert torch.isfinite(loss)
            loss.backward()
    assert chosen == 3 * len(train_data._dataset.inter_feat)


def test_model_never_picks_a_planted_false_negative(recbole_workdir, tiny_dataset):
    _, train_data, net = _build(recbole_workdir, tiny_dataset, llmhni_neg_candidates=24, llmhni_neg_topk=3)
    positives = _training_pairs(train_data)
    user = 5
    planted = next(j for j in range(1, net.n_items) if (user, j) not in positives)
    # very high semantic relevance: z'_j = z'_u, s(u, j) = 1 > theta_u
    net.semantic_item[planted] = net.semantic_user[user]
    net.relevance_table[user * net.n_items + planted] = net.semantic_relevance(torch.tensor([user]), torch.tensor([planted]))
    assert net.semantic_relevance(torch.tensor([user]), torch.tensor([planted])).item() > net.fn_threshold[user].item()
    # top model score: e_j points along e_u and is much longer than any other item
    user_e, item_e = net.forward()
    user_e, item_e = user_e.detach(), item_e.detach().clone()
    item_e[planted] = 100.0 * user_e[user]
    other_negative = next(j for j in range(1, net.n_items) if (user, j) not in positives and j != planted)
    batch = {
        net.USER_ID: torch.full((400,), user, device=net.device),
        net.NEG_ITEM_ID: torch.full((400,), other_negative, device=net.device),
    }

    neg = net.negative_items(batch, user_e, item_e)
    assert planted not in neg.tolist()
    net.neg_mode = "dns"  # the same candidates scored alone: DNS takes the planted item whenever drawn
    assert (net.negative_items(batch, user_e, item_e) == planted).sum() > 200  # P(drawn) = 1 - (20/21)^24


def test_seeded_choices_are_deterministic(recbole_workdir, tiny_dataset):
    def negatives(seed):
        _, train_data, net = _build(recbole_workdir, tiny_dataset, seed=seed)
        batch = next(iter(train_data)).to(net.device)
        user_e, item_e = net.forward()
        return [net.negative_items(batch, user_e, item_e) for _ in range(3)]

    first, again, other = negatives(2020), negatives(2020), negatives(7)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    assert not torch.equal(first[0], first[1])  # a fresh draw each step


def test_dense_lookups_give_the_reference_choices_and_loss(recbole_workdir, tiny_dataset):
    """The dense training-pair mask and relevance table (small catalogues) are a faster form of
    the binary search and the per-candidate dot product: same negatives, same loss."""
    _, train_data, net = _build(recbole_workdir, tiny_dataset, llmhni_neg_candidates=16)
    assert net.dense_lookups and net.positive_mask is not None and net.relevance_table is not None
    users = torch.arange(net.n_users).repeat_interleave(net.n_items)
    items = torch.arange(net.n_items).repeat(net.n_users)
    expected = net.semantic_relevance(users, items)  # elementwise, the reference form
    assert torch.allclose(net.relevance_table, expected, atol=1e-5)
    pairs = _training_pairs(train_data)
    assert net.positive_mask.sum().item() == len(pairs)
    assert all(net.positive_mask[u * net.n_items + i] for u, i in pairs)

    batches = [batch.to(net.device) for batch in train_data]

    def run(dense: bool):
        net._neg_generator = None  # reseeded on the next call
        mask, table = net.positive_mask, net.relevance_table
        if not dense:
            net.positive_mask = net.relevance_table = None
        try:
            out = []
            for batch in batches:
                user_e, item_e = net.forward()
                out.append((net.negative_items(batch, user_e, item_e), net.calculate_loss(batch).detach()))
            return out
        finally:
            net.positive_mask, net.relevance_table = mask, table

    fast, reference = run(True), run(False)
    assert len(fast) > 1
    for (neg_f, loss_f), (neg_r, loss_r) in zip(fast, reference):
        assert torch.equal(neg_f, neg_r)
        assert torch.allclose(loss_f, loss_r)


def test_uniform_mode_trains_exactly_like_the_backbone_and_skips_the_semantic_stage(recbole_workdir, tiny_dataset):
    # a missing vector file proves that uniform mode never encodes anything
    _, train_data, net = _build(
        recbole_workdir, tiny_dataset, llmhni_neg_mode="uniform", llmhni_precomputed_user_emb="/nonexistent.npz"
    )
    _, _, backbone = _build(recbole_workdir, tiny_dataset, "BackboneLightGCN")
    assert isinstance(backbone, BackboneLightGCN)
    assert not hasattr(net, "semantic_user")
    for name, value in backbone.state_dict().items():
        assert torch.equal(net.state_dict()[name], value), name
    batch = next(iter(train_data)).to(net.device)
    user_e, item_e = net.forward()
    assert torch.equal(net.negative_items(batch, user_e, item_e), batch[net.NEG_ITEM_ID])
    assert torch.equal(net.calculate_loss(batch), backbone.calculate_loss(batch))


def test_without_alignment_relevance_is_the_raw_cosine(recbole_workdir, tiny_dataset):
    _, train_data, net = _build(recbole_workdir, tiny_dataset, llmhni_use_alignment=False)
    train = train_data._dataset
    with np.load(recbole_workdir / "user_emb.npz") as stored:  # the vector file, rows by raw id
        row = {str(t): r for r, t in enumerate(stored["ids"].tolist())}
        expected = stored["embeddings"][[row[t] for t in train.field2id_token["user_id"][1:]]]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(net.semantic_user[1:].cpu().numpy(), expected, atol=1e-6)
    assert not net.semantic_user[0].any()  # padding
    assert net.semantic_user.shape[1] == 12  # the vector files' width, not the MLP's output
    _, _, aligned = _build(recbole_workdir, tiny_dataset)
    assert aligned.semantic_user.shape[1] == 64


def test_thresholds_are_quantiles_of_each_users_training_relevance(recbole_workdir, tiny_dataset):
    _, train_data, net = _build(recbole_workdir, tiny_dataset, llmhni_fn_quantile=0.75)
    users, items = train_data._dataset.train_edges()
    for user in (1, 7, 20):
        mine = torch.as_tensor(items[users == user], device=net.device)
        s = net.semantic_relevance(torch.full_like(mine, user), mine)
        assert net.fn_threshold[user].item() == pytest.approx(torch.quantile(s, 0.75).item(), abs=1e-6)
    # semantic mode counts what it drops
    batch = next(iter(train_data)).to(net.device)
    net.negative_items(batch, *net.forward())
    stats = net.negative_sampling_stats(reset=True)
    assert stats["rows"] == len(batch) and 0.0 <= stats["dropped_candidate_share"] <= 1.0
    assert net.negative_sampling_stats()["rows"] == 0


@pytest.mark.parametrize(
    "config, message",
    [
        ({"llmhni_neg_mode": "hard"}, "llmhni_neg_mode"),
        ({"llmhni_neg_topk": 0}, "llmhni_neg_topk"),
        ({"llmhni_fn_quantile": 1.5}, "llmhni_fn_quantile"),
        (
            {"llmhni_neg_mode": "dns", "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "dynamic": True, "candidate_num": 4}},
            "dynamic",
        ),
        ({"llmhni_neg_topk": 9, "llmhni_neg_candidates": 8}, "llmhni_neg_topk"),
    ],
)
def test_bad_switches_are_refused(recbole_workdir, tiny_dataset, config, message):
    with pytest.raises(ConfigError, match=message):
        _build(recbole_workdir, tiny_dataset, **config)
    assert not (recbole_workdir / "artifacts").exists()  # refused before any stage ran


def test_a_model_built_without_the_pipeline_says_how_to_build_it(recbole_workdir, tiny_dataset):
    config = LLMHNIConfig(model="LLMHNI_LightGCN", dataset="tiny", config_dict={"data_path": tiny_dataset["data_path"]})
    train_data, _, _ = data_preparation(config, LLMHNIDataset(config))
    with pytest.raises(MissingInputsError, match="run_recbole_llmhni"):
        config.model_class(config, train_data._dataset)

"""S8 inside LLMHNI_LightGCN / LLMHNI_NGCF: G', L_de, L_hal, redrawn views and the ablation switches."""
from pathlib import Path

import numpy as np
import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_llmhni.config import ConfigError, LLMHNIConfig
from recbole_llmhni.data.dataset import LLMHNIDataset
from recbole_llmhni.models.inputs import LLMHNIInputs
from recbole_llmhni.pipeline import LLMHNIPipeline

ALL_LOW = {"llmhni_semantic_thresholds": "absolute", "llmhni_semantic_high": 3.0, "llmhni_semantic_low": 2.0}  # every view Low: candidates noisy
ALL_HIGH = {"llmhni_semantic_thresholds": "absolute", "llmhni_semantic_high": -3.0, "llmhni_semantic_low": -3.5}  # every view High: candidates hard


def _build(workdir: Path, tiny_dataset, model: str = "LLMHNI_LightGCN", **config_dict):
    rng = np.random.default_rng(0)
    vectors = {}
    for kind, ids in (("user", tiny_dataset["users"]), ("item", tiny_dataset["items"])):
        vectors[kind] = workdir / f"{kind}_emb.npz"
        np.savez(vectors[kind], ids=np.asarray(ids), embeddings=rng.normal(size=(len(ids), 12)).astype(np.float32))
    base = {
        "data_path": tiny_dataset["data_path"],
        "show_progress": False,
        "llmhni_artifact_dir": str(workdir / "artifacts"),
        "llmhni_cache_dir": str(workdir / "llm_cache"),
        "llmhni_encoder": "precomputed",
        "llmhni_precomputed_user_emb": str(vectors["user"]),
        "llmhni_precomputed_item_emb": str(vectors["item"]),
        "llmhni_align_epochs": 2,
        "llmhni_pretrain_epochs": 2,
        "llmhni_lambda1": 0.1,  # the shipped defaults are 0 (README); these tests switch both terms on
        "llmhni_lambda2": 0.1,
        "train_batch_size": 64,
    }
    config = LLMHNIConfig(model=model, dataset="tiny", config_dict={**base, **config_dict})
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = data_preparation(config, LLMHNIDataset(config))
    result = LLMHNIPipeline(config).run(train_data._dataset, valid_data._dataset)
    train_data._dataset.llmhni_inputs = result.model_inputs()
    init_seed(config["seed"], config["reproducibility"])
    return train_data, config.model_class(config, train_data._dataset), result


def _edges(net, users_attr, items_attr):
    return set(zip(getattr(net, users_attr).tolist(), getattr(net, items_attr).tolist()))


@pytest.mark.parametrize("model", ["LLMHNI_LightGCN", "LLMHNI_NGCF"])
def test_full_objective_has_three_finite_differentiable_terms(recbole_workdir, tiny_dataset, model):
    train_data, net, result = _build(recbole_workdir, tiny_dataset, model, **ALL_LOW)
    net.train()
    batch = next(iter(train_data))
    terms = net.calculate_loss(batch)
    assert isinstance(terms, tuple) and len(terms) == 3  # L_rec, lambda1 * L_de, lambda2 * L_hal
    total = sum(t.sum() for t in terms)
    assert all(torch.isfinite(t).all() for t in terms)
    total.backward()
    assert net.user_embedding.weight.grad is not None and net.user_embedding.weight.grad.abs().sum() > 0
    assert net.rec_adjacency() is net.norm_adj_prime  # ranking and L_rec use G'


def test_noisy_positives_leave_g_prime_and_the_ranking_loss(recbole_workdir, tiny_dataset):
    # uniform negatives: the batch carries them, so the two losses below see the same negatives
    train_data, net, result = _build(
        recbole_workdir, tiny_dataset, llmhni_lambda1=0.0, llmhni_lambda2=0.0, llmhni_neg_mode="uniform", **ALL_LOW
    )
    graph = result.graph
    g, g_prime = _edges(net, "train_users", "train_items"), _edges(net, "prime_users", "prime_items")
    removed = set(zip(graph.removed.users.tolist(), graph.removed.items.tolist())) if hasattr(graph.removed, "users") else None
    assert len(graph.added) == 0 and len(graph.removed) > 0
    assert g_prime < g and len(g - g_prime) == len(graph.removed)
    if removed is not None:
        assert g - g_prime == removed
    # a batch with removed pairs gives the loss of the same batch without them
    batch = next(iter(train_data))
    is_removed = graph.is_removed(batch["user_id"], batch["item_id"])
    assert is_removed.any() and not is_removed.all()
    kept = batch[torch.nonzero(~is_removed).squeeze(1)]
    net.eval()  # no dropout, so the two losses are comparable
    assert torch.allclose(net.calculate_loss(batch), net.calculate_loss(kept))


def test_hard_negatives_join_g_prime(recbole_workdir, tiny_dataset):
    _, net, result = _build(recbole_workdir, tiny_dataset, **ALL_HIGH)
    graph = result.graph
    g, g_prime = _edges(net, "train_users", "train_items"), _edges(net, "prime_users", "prime_items")
    assert len(graph.removed) == 0 and len(graph.added) > 0
    assert g < g_prime and len(g_prime - g) == len(graph.added)


def test_edge_drop_views_are_redrawn_every_epoch(recbole_workdir, tiny_dataset):
    _, net, result = _build(recbole_workdir, tiny_dataset, llmhni_edge_drop_rate=0.3, **ALL_LOW)
    net.train()
    first = [v.to_dense() for v in net._views]
    net.train()
    second = [v.to_dense() for v in net._views]
    assert not torch.equal(first[0], second[0]) and not torch.equal(first[1], second[1])
    assert net._views[0]._nnz() < net.norm_adj._nnz()


@pytest.mark.parametrize(
    "switches, n_terms",
    [
        ({"llmhni_lambda1": 0.0}, 2),  # w/o L_de
        ({"llmhni_lambda2": 0.0}, 2),  # w/o L_hal
        ({"llmhni_lambda1": 0.0, "llmhni_lambda2": 0.0}, 1),
    ],
)
def test_each_ablation_removes_exactly_its_term(recbole_workdir, tiny_dataset, switches, n_terms):
    train_data, net, result = _build(recbole_workdir, tiny_dataset, **ALL_LOW, **switches)
    net.train()
    loss = net.calculate_loss(next(iter(train_data)))
    assert (len(loss) if isinstance(loss, tuple) else 1) == n_terms
    assert result.graph is not None


def test_without_denoising_nothing_is_built_and_g_is_used(recbole_workdir, tiny_dataset):
    # a fixed M: llmhni_neg_candidates=auto would train Rec_pre (S4) to choose it
    train_data, net, result = _build(recbole_workdir, tiny_dataset, llmhni_denoise=False, llmhni_neg_candidates=8,
                                     **ALL_LOW)
    assert result.graph is None and net.rec_adjacency() is net.norm_adj
    net.train()
    assert isinstance(net.calculate_loss(next(iter(train_data))), torch.Tensor)
    artifacts = recbole_workdir / "artifacts" / "tiny"
    assert not (artifacts / "pretrain").exists() and not (artifacts / "ratings").exists()


def test_llmhni_trains_with_the_openai_rater_against_a_loopback_server(recbole_workdir, tiny_dataset, monkeypatch):
    """The whole model, S1-S8, with S6 asked of an OpenAI-compatible server on 127.0.0.1:
    G' follows the server's answers, and a second construction asks the server nothing."""
    from fake_openai_server import FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-loopback")
    with FakeOpenAIServer() as server:
        config = {
            "llmhni_rater": "openai",
            "llmhni_api_base_url": server.base_url,
            "llmhni_max_retries": 0,
            "llmhni_cand_max_pairs": 30,
        }
        train_data, net, result = _build(recbole_workdir, tiny_dataset, **config)
        asked = server.count()
        assert asked > 0
        graph = result.graph
        assert len(graph.added) + len(graph.removed) > 0  # the server's labels changed the graph
        net.train()
        terms = net.calculate_loss(next(iter(train_data)))
        assert len(terms) == 3 and all(torch.isfinite(t).all() for t in terms)
        sum(t.sum() for t in terms).backward()

        _, again, _ = _build(recbole_workdir, tiny_dataset, **config)
        assert server.count() == asked  # ratings reused: nothing asked twice
        assert _edges(again, "prime_users", "prime_items") == _edges(net, "prime_users", "prime_items")


@pytest.mark.parametrize("model", ["LLMHNI_LightGCN", "LLMHNI_NGCF"])
def test_warm_start_copies_rec_pre_into_the_model(recbole_workdir, tiny_dataset, model):
    _, cold, _ = _build(recbole_workdir, tiny_dataset, model)
    _, warm, result = _build(recbole_workdir, tiny_dataset, model, llmhni_warm_start=True)
    assert result.report("S4").status == "reused"  # the artifact the first build wrote, reloaded
    assert set(result.rec_pre_state) == {name for name, _ in warm.named_parameters()}
    for name, p in result.rec_pre_state.items():
        assert torch.equal(dict(warm.named_parameters())[name].detach(), p), name
    assert not torch.equal(cold.user_embedding.weight, warm.user_embedding.weight)


def test_warm_start_from_another_backbone_is_refused(recbole_workdir, tiny_dataset):
    _, net, _ = _build(recbole_workdir, tiny_dataset, "LLMHNI_LightGCN")
    other = LLMHNIInputs(rec_pre_state={"user_embedding.weight": torch.zeros(3, 5)})  # not this model's shape
    before = net.user_embedding.weight.detach().clone()
    with pytest.raises(ValueError, match="llmhni_pretrain_backbone"):
        net._load_backbone_weights(other)
    assert torch.equal(net.user_embedding.weight, before)  # nothing copied
    with pytest.raises(ConfigError, match="llmhni_pretrain_backbone=BackboneNGCF"):  # refused before any stage runs
        LLMHNIConfig(model="LLMHNI_LightGCN", dataset="tiny", config_dict={
            "data_path": tiny_dataset["data_path"], "llmhni_warm_start": True, "llmhni_pretrain_backbone": "BackboneNGCF"})


def test_lazy_s8_computes_both_terms_every_kth_step_at_k_times_the_weight(recbole_workdir, tiny_dataset):
    train_data, lazy, _ = _build(recbole_workdir, tiny_dataset, llmhni_cl_every=3, llmhni_cl_nodes=0, **ALL_LOW)
    _, every, _ = _build(recbole_workdir, tiny_dataset, llmhni_cl_every=1, llmhni_cl_nodes=0, **ALL_LOW)
    lazy.train()
    every.train()
    batch = next(iter(train_data))
    seen = [lazy.calculate_loss(batch) for _ in range(4)]
    assert all(len(t) == 3 for t in seen)  # the same number of terms at every step
    assert [float(t[1]) == 0.0 for t in seen] == [False, True, True, False]
    assert float(seen[1][2]) == 0.0 and float(seen[0][2]) > 0.0
    ref = every.calculate_loss(batch)
    torch.testing.assert_close(seen[0][1], 3 * ref[1])  # L_de: deterministic given the weights

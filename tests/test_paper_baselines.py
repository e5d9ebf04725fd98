"""SimGCL, XSimGCL, RLMRec-Con, RLMRec-Gen on a tiny fixture: each loss finite and
differentiable, the switches that turn the method off give BackboneLightGCN's loss exactly,
hand-derived values for the pieces; and every paper baseline (with RecBole's SGL) for one
cheap epoch on ml-100k through the command-line entry point, in this one process."""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import recbole_llmhni  # noqa: F401  (compat shims first)
from recbole.data import data_preparation
from recbole.utils import init_seed
from recbole_llmhni.config import LLMHNIConfig
from recbole_llmhni.data.dataset import LLMHNIDataset
from recbole_llmhni.models.backbones import BackboneLightGCN
from recbole_llmhni.models.losses import perturb
from recbole_llmhni.models.rlmrec import anchored_nce
from recbole_llmhni.pipeline import LLMHNIPipeline

D_S = 12  # width of the fixture's precomputed profile embeddings


def _config(workdir: Path, tiny_dataset, model: str, **extra) -> LLMHNIConfig:
    rng = np.random.default_rng(0)
    vectors = {}
    for kind, ids in (("user", tiny_dataset["users"]), ("item", tiny_dataset["items"])):
        vectors[kind] = workdir / f"{kind}_emb.npz"
        np.savez(vectors[kind], ids=np.asarray(ids), embeddings=rng.normal(size=(len(ids), D_S)).astype(np.float32))
    base = {
        "data_path": tiny_dataset["data_path"], "show_progress": False, "train_batch_size": 64,
        "llmhni_artifact_dir": str(workdir / "artifacts"), "llmhni_cache_dir": str(workdir / "llm_cache"),
        "llmhni_encoder": "precomputed", "llmhni_precomputed_user_emb": str(vectors["user"]),
        "llmhni_precomputed_item_emb": str(vectors["item"]),
    }
    return LLMHNIConfig(model=model, dataset="tiny", config_dict={**base, **extra})


def _build(workdir: Path, tiny_dataset, model: str, **extra):
    """(model, batch, config, pipeline result or None), the model built after the same seed as a backbone would be."""
    config = _config(workdir, tiny_dataset, model, **extra)
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = data_preparation(config, LLMHNIDataset(config))
    result = None
    if getattr(config.model_class, "needs_pipeline", False):
        result = LLMHNIPipeline(config).run(train_data._dataset)
        train_data._dataset.llmhni_inputs = result.model_inputs()
    init_seed(config["seed"], config["reproducibility"])
    model_obj = config.model_class(config, train_data._dataset)
    init_seed(config["seed"], config["reproducibility"])
    batch = next(iter(train_data))
    return model_obj, batch, config, result, train_data


def _backbone_loss(workdir, tiny_dataset, batch, **extra) -> torch.Tensor:
    config = _config(workdir, tiny_dataset, "BackboneLightGCN", **extra)
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = data_preparation(config, LLMHNIDataset(config))
    init_seed(config["seed"], config["reproducibility"])
    return BackboneLightGCN(config, train_data._dataset).calculate_loss(batch)


def _total(loss) -> torch.Tensor:
    return sum(loss) if isinstance(loss, tuple) else loss


def _check_finite_and_differentiable(model, batch):
    terms = model.calculate_loss(batch)
    assert isinstance(terms, tuple) and len(terms) == 2
    for term in terms:
        assert torch.isfinite(term).all()
    extra = terms[1]
    assert extra.requires_grad and float(extra) > 0
    extra.backward()
    assert model.user_embedding.weight.grad.abs().sum() > 0
    assert model.item_embedding.weight.grad.abs().sum() > 0
    return terms


# ---------------------------------------------------------------------- SimGCL / XSimGCL
def test_perturbation_moves_each_row_by_eps_within_its_orthant():
    x = torch.tensor([[1.0, -2.0, 0.5], [-0.1, 0.2, -3.0]])
    y = perturb(x, 0.1, torch.Generator().manual_seed(0))
    torch.testing.assert_close((y - x).norm(dim=1), torch.full((2,), 0.1))
    assert torch.equal(torch.sign(y), torch.sign(x))


@pytest.mark.parametrize("model_name", ["SimGCL", "XSimGCL"])
def test_simgcl_losses_finite_differentiable_and_off_switch_is_lightgcn(recbole_workdir, tiny_dataset, model_name):
    model, batch, *_ = _build(recbole_workdir, tiny_dataset, model_name)
    assert model.include_ego_layer is False and model.eps > 0
    _check_finite_and_differentiable(model, batch)

    # eps = 0 and the ego layer in the mean: the ranking term is LightGCN's loss, bit for bit
    same = dict(reg_weight=1e-4, n_layers=2)
    model, batch, *_ = _build(recbole_workdir, tiny_dataset, model_name, eps=0.0, include_ego_layer=True, **same)
    expected = _backbone_loss(recbole_workdir, tiny_dataset, batch, **same)
    rec, cl = model.calculate_loss(batch)
    assert torch.equal(rec, expected)
    assert float(cl) > 0  # the contrast is still there (lambda > 0)
    # and lambda = 0 as well: the whole loss is LightGCN's
    model, batch, *_ = _build(recbole_workdir, tiny_dataset, model_name, eps=0.0, include_ego_layer=True,
                              **{"lambda": 0.0}, **same)
    assert torch.equal(_total(model.calculate_loss(batch)), expected)


def test_simgcl_without_ego_layer_ranks_with_the_mean_of_layers_1_to_K(recbole_workdir, tiny_dataset):
    model, *_ = _build(recbole_workdir, tiny_dataset, "SimGCL")
    ego = model.get_ego_embeddings().detach()
    adj = model.norm_adj.to_dense()
    e1 = adj @ ego
    e2 = adj @ e1
    user_e, item_e = model.propagate()
    torch.testing.assert_close(torch.cat([user_e, item_e]).detach(), (e1 + e2) / 2)


def test_xsimgcl_contrast_is_final_mean_against_layer_l_star(recbole_workdir, tiny_dataset):
    """With eps = 0, XSimGCL's contrast is lambda * (InfoNCE(mean, E^(1)) over users + items), by hand."""
    model, batch, *_ = _build(recbole_workdir, tiny_dataset, "XSimGCL", eps=0.0)
    ego = model.get_ego_embeddings().detach()
    adj = model.norm_adj.to_dense()
    e1 = adj @ ego
    final = (e1 + adj @ e1) / 2

    def nce(a, b, tau):
        a, b = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1)
        s = a @ b.T / tau
        return float(np.mean([-(s[k, k] - torch.logsumexp(s[k], 0)) for k in range(len(a))]))

    users = torch.unique(batch[model.USER_ID])
    items = torch.unique(batch[model.ITEM_ID]) + model.n_users
    expected = model.cl_weight * (nce(final[users], e1[users], 0.15) + nce(final[items], e1[items], 0.15))
    _, cl = model.calculate_loss(batch)
    assert math.isclose(float(cl), expected, rel_tol=1e-5)


def test_xsimgcl_layer_cl_out_of_range_is_a_one_line_error(recbole_workdir, tiny_dataset):
    with pytest.raises(ValueError, match=r"layer_cl=3 must name a propagated layer: use 1..n_layers"):
        _build(recbole_workdir, tiny_dataset, "XSimGCL", layer_cl=3)


# ---------------------------------------------------------------------- RLMRec
def test_anchored_nce_by_hand():
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[0.0, 2.0]])
    c = torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    # cos(a, p) = 0, cos(a, c) = (0, 1), tau = 0.5: -0 + log(e^0 + e^2)
    assert math.isclose(float(anchored_nce(a, p, c, 0.5)), math.log(1 + math.e ** 2), rel_tol=1e-6)


@pytest.mark.parametrize("model_name", ["RLMRec_Con", "RLMRec_Gen"])
def test_rlmrec_losses_finite_differentiable_and_off_switch_is_lightgcn(recbole_workdir, tiny_dataset, model_name):
    model, batch, _, result, _ = _build(recbole_workdir, tiny_dataset, model_name)
    # the pipeline ran S1 only, and the model holds S1's raw vectors
    status = {r.stage: r.status for r in result.reports}
    assert status["S1 encode"] == "computed"
    assert all(status[s] == "off" for s in ("S2 align", "S4 pretrain", "S5 candidates", "S6 rate", "S7 rewrite"))
    assert model.profile_user.shape == (model.n_users, D_S) and model.profile_item.shape == (model.n_items, D_S)
    np.testing.assert_array_equal(model.profile_item.numpy(), result.raw_item)
    _check_finite_and_differentiable(model, batch)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.mlp.parameters())

    off = {"kd_weight": 0.0} if model_name == "RLMRec_Con" else {"mask_ratio": 0.0, "recon_weight": 0.0}
    model, batch, *_ = _build(recbole_workdir, tiny_dataset, model_name, **off)
    expected = _backbone_loss(recbole_workdir, tiny_dataset, batch)
    rec, extra = model.calculate_loss(batch)
    assert torch.equal(rec, expected) and float(extra) == 0.0


def test_rlmrec_gen_masks_the_share_of_nodes_and_reconstructs_only_them(recbole_workdir, tiny_dataset):
    model, batch, *_ = _build(recbole_workdir, tiny_dataset, "RLMRec_Gen", mask_ratio=0.2)
    n = model.n_users + model.n_items
    seeds = model.masked_nodes()
    assert seeds.numel() == int(n * 0.2) and torch.unique(seeds).numel() == seeds.numel()
    # masking changes the ranking term (masked ego rows feed BPR), recon weight scales the other
    _, recon = model.calculate_loss(batch)
    assert float(recon) > 0
    model.recon_weight = 0.0
    assert float(model.calculate_loss(batch)[1]) == 0.0


# ---------------------------------------------------------------------- CLI, one epoch each
def test_paper_baselines_run_from_the_cli_for_one_epoch(recbole_workdir, monkeypatch, capsys):
    """SGL (RecBole's), SimGCL, XSimGCL, RLMRec_Con, RLMRec_Gen through ``run_recbole_llmhni.py``'s
    entry point on ml-100k: one epoch, large batches; the run records name the RLMRec runs' encoder."""
    from recbole_llmhni.cli.run import main

    common = ["--dataset=ml-100k", "--epochs=1", "--show_progress=False",
              "--eval_batch_size=65536", f"--llmhni_artifact_dir={recbole_workdir / 'artifacts'}"]
    sgl_yaml = Path(recbole_llmhni.__file__).parent / "properties" / "paper" / "SGL-amazon-book.yaml"
    # S1 from precomputed vectors keyed by ml-100k's raw ids (the sentence encoder takes minutes on CI's CPU)
    rng = np.random.default_rng(0)
    vectors = []
    for kind, n in (("user", 943), ("item", 1682)):
        path = recbole_workdir / f"{kind}_emb.npz"
        np.savez(path, ids=np.arange(1, n + 1).astype(str), embeddings=rng.normal(size=(n, D_S)).astype(np.float32))
        vectors.append(path)
    rlmrec = ["--llmhni_encoder=precomputed", f"--llmhni_precomputed_user_emb={vectors[0]}",
              f"--llmhni_precomputed_item_emb={vectors[1]}"]
    # RLMRec-Con's item terms are in-batch ([B, B] per step: cost grows with B), the others' are not
    big, small = "--train_batch_size=8192", "--train_batch_size=1024"
    runs = {"SGL": [big, f"--config_files={sgl_yaml}"], "SimGCL": [big], "XSimGCL": [big],
            "RLMRec_Con": [small, *rlmrec], "RLMRec_Gen": [big, *rlmrec]}
    for model, extra in runs.items():
        started = time.perf_counter()
        record_file = recbole_workdir / f"{model}.json"
        argv = ["run_recbole_llmhni.py", f"--model={model}", *common, *extra, f"--llmhni_result_file={record_file}"]
        monkeypatch.setattr(sys, "argv", argv)
        assert main(argv[1:]) == 0, model
        out = capsys.readouterr().out
        test_line = next(line for line in out.splitlines() if line.strip().startswith("test:"))
        recall = float(test_line.split("recall@20: ")[1].split()[0])
        assert 0.0 < recall < 1.0, (model, test_line)
        record = json.loads(record_file.read_text())
        if model.startswith("RLMRec"):  # S1 only, and the encoder named
            assert record["encoder"].startswith("precomputed") and record["rater"] is None
            assert [r["stage"] for r in record["pipeline"]["stages"] if r["status"] != "off"] == ["S1 encode"]
        else:
            assert record["encoder"] is None and record["pipeline"] is None
        print(model, f"{time.perf_counter() - started:.1f} s", file=sys.__stderr__)

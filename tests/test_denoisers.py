"""The denoising baselines (WBPR, T-CE, R-CE, BOD, DCF) on a tiny fixture, values worked out by hand.

Each method's mixin runs on a stand-in host (:class:`_Host`: the training pairs, a reg term of
0, an identity propagation) so a step's decision can be driven with chosen scores / losses.
The last test runs all ten models from the command line on ml-100k in one process.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from recbole_llmhni.config import ConfigError, validate
from recbole_llmhni.denoise.report import flagged_identification
from recbole_llmhni.models.denoisers import (
    BODMixin,
    DCFMixin,
    RCEMixin,
    TCEMixin,
    WBPRMixin,
    confidence_bound,
    damped,
    drop_rate,
    gradient_match_loss,
)
from recbole_llmhni.models.sample_state import PairState

REPO = Path(__file__).resolve().parents[1]

# training pairs of the fixture: (user, item)
PAIRS = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 3)]
N_USERS, N_ITEMS = 3, 5


class _Host(nn.Module):
    """The part of GraphRecommender a mixin touches."""

    USER_ID, NEG_ITEM_ID = "user_id", "neg_item_id"

    def __init__(self, config, dataset) -> None:
        super().__init__()
        self.n_users, self.n_items, self.device = N_USERS, N_ITEMS, torch.device("cpu")
        self.train_users = torch.tensor([u for u, _ in PAIRS])
        self.train_items = torch.tensor([i for _, i in PAIRS])
        self.reg_weight = 0.0
        self.user_embedding = nn.Embedding(N_USERS, 2)
        self.item_embedding = nn.Embedding(N_ITEMS, 2)
        self.propagation = nn.Identity()

    def propagate(self, adj=None):
        return self.user_embedding.weight, self.item_embedding.weight


def _config(**extra):
    return {"seed": 7, "tce_eps_max": 0.5, "tce_eps_n": 1, "rce_beta": 2.0, "wbpr_alpha": 1.0,
            "bod_generator_lr": 0.01, "bod_generator_hidden": 4, "bod_generator_reg": 0.0, "bod_outer_every": 1,
            "dcf_eps_max": 0.5, "dcf_eps_n": 1, "dcf_co_lambda": 0.5, "dcf_relabel_ratio": 0.5,
            "dcf_time_step": 3, "epochs": 1, **extra}


def _model(mixin, **extra):
    cls = type(f"{mixin.__name__}Host", (mixin, _Host), {})
    return cls(_config(**extra), None)


def _pairs(model, mask_or_k=None):
    users, items = model.flagged_pairs(mask_or_k)
    return sorted(zip(users.tolist(), items.tolist()))


# ----------------------------------------------------------------------------- shared parts
def test_drop_rate_grows_linearly_to_eps_max_over_n_steps():
    # np.linspace(0, 0.2, 5) = 0, .05, .1, .15, .2, then 0.2 for ever
    assert [round(drop_rate(t, 0.2, 5), 10) for t in range(7)] == [0.0, 0.05, 0.1, 0.15, 0.2, 0.2, 0.2]
    assert drop_rate(0, 0.2, 1) == 0.2


def test_pair_state_finds_a_pair_wherever_it_sits_in_the_batch():
    state = PairState(torch.tensor([2, 0, 1, 0]), torch.tensor([3, 1, 2, 1]), N_ITEMS, {"x": 0.0, "n": 0})
    assert len(state) == 3  # (0, 1) twice: one slot
    at = state.index(torch.tensor([1, 2, 0]), torch.tensor([2, 3, 1]))
    state.x[at] = torch.tensor([10.0, 20.0, 30.0])
    again = state.index(torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3]))
    assert state.x[again].tolist() == [30.0, 10.0, 20.0]
    assert state.n.dtype == torch.long
    with pytest.raises(KeyError):
        state.index(torch.tensor([0]), torch.tensor([4]))


# ----------------------------------------------------------------------------- T-CE
def test_tce_drops_the_highest_loss_triples_and_remembers_them_by_pair():
    model = _model(TCEMixin)  # eps = 0.5 from the first step
    user, pos = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 2])
    per = torch.tensor([0.5, 2.0, 1.0, 3.0])
    loss = model.ranking_loss(user, pos, None, None, per, None, None, None)
    assert loss.item() == pytest.approx((0.5 + 1.0) / 2)  # keep int(0.5 * 4) = 2 smallest
    assert _pairs(model) == [(0, 1), (1, 2)]
    # next step, the same pairs shuffled, (1, 2) now easy: the flags follow the pairs
    loss = model.ranking_loss(pos.new_tensor([1, 0, 1, 0]), pos.new_tensor([2, 1, 1, 0]),
                              None, None, torch.tensor([0.1, 0.2, 5.0, 4.0]), None, None, None)
    assert loss.item() == pytest.approx(0.15)
    assert _pairs(model) == [(0, 0), (1, 1)]


def test_tce_keeps_everything_at_step_zero_of_a_gradual_schedule():
    model = _model(TCEMixin, tce_eps_n=3)
    model.train_step = 0  # bpr_loss advances it; eps(0) = 0
    loss = model.ranking_loss(torch.tensor([0, 1]), torch.tensor([0, 1]), None, None,
                              torch.tensor([1.0, 3.0]), None, None, None)
    assert loss.item() == pytest.approx(2.0) and _pairs(model) == []
    model.train_step = 1  # eps(1) = 0.25 -> keep int(0.75 * 4) = 3
    loss = model.ranking_loss(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 2]), None, None,
                              torch.tensor([1.0, 2.0, 3.0, 4.0]), None, None, None)
    assert loss.item() == pytest.approx(2.0) and _pairs(model) == [(1, 2)]


# ----------------------------------------------------------------------------- R-CE
def test_rce_weights_each_triple_by_sigmoid_of_its_positive_score_to_the_beta_detached():
    model = _model(RCEMixin)  # beta = 2
    pos_scores = torch.tensor([0.0, math.log(3.0)], requires_grad=True)  # sigmoid: 0.5, 0.75
    per = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = model.ranking_loss(torch.tensor([0, 2]), torch.tensor([1, 3]), pos_scores, None, per, None, None, None)
    assert loss.item() == pytest.approx((0.25 * 1.0 + 0.5625 * 2.0) / 2)
    loss.backward()
    assert pos_scores.grad is None  # the weight is a constant
    assert per.grad.tolist() == pytest.approx([0.125, 0.28125])
    assert _pairs(model, 1) == [(0, 1)]  # the lowest weight
    assert _pairs(model, 5) == [(0, 1), (2, 3)]  # pairs never seen are not ranked


# ----------------------------------------------------------------------------- WBPR
def test_wbpr_draws_negatives_by_popularity_and_never_a_training_item():
    model = _model(WBPRMixin)
    # item popularity 1, 2, 1, 1, 0: item 4 has weight 0
    assert model.negative_weights.tolist() == [1.0, 2.0, 1.0, 1.0, 0.0]
    # neg_item_id: RecBole's negative, the fallback after 10 misses
    interaction = {"user_id": torch.tensor([0] * 400 + [2] * 400), "neg_item_id": torch.full((800,), 2)}
    neg = model.negative_items(interaction, None, None)
    # user 0 (items 0, 1) may get 2 or 3, each with 1 / 2; user 2 (item 3): 0, 1, 2 with 1/4, 2/4, 1/4
    first, second = neg[:400], neg[400:]
    assert set(first.tolist()) <= {2, 3} and set(second.tolist()) <= {0, 1, 2}
    assert abs((first == 2).float().mean().item() - 0.5) < 0.1
    assert abs((second == 1).float().mean().item() - 0.5) < 0.1
    assert _pairs(model) == []  # flags nothing


# ----------------------------------------------------------------------------- DCF
def test_dcf_damping_and_bound_by_hand():
    assert damped(torch.tensor([1.0])).item() == pytest.approx(math.log(2.5))
    # s = 1, n = 1, lambda = 0.5: 0.5 * (1 + 0.5 * ln 2) / (2 - 0.5)
    assert confidence_bound(0, torch.tensor([1]), 0.5).item() == pytest.approx(0.5 * (1 + 0.5 * math.log(2)) / 1.5)


def test_dcf_drops_by_lower_bound_relabels_the_most_certain_and_keeps_history_by_pair():
    model = _model(DCFMixin)  # eps = 0.5, lambda = 0.5, relabel share 0.5
    model.train()  # epoch 0
    user, pos = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 2])
    per = torch.tensor([0.1, 1.0, 2.0, 3.0])
    pos_scores = torch.zeros(4)
    loss = model.ranking_loss(user, pos, pos_scores, None, per, None, None, None)
    # lower bounds f(l) - c, c = 0.4489: 0, .467, 1.161, 1.691 -> keep rows 0, 1 (int(0.5*4));
    # relabel from int((1 - 0.5*0.5) * 4) = 3: row 3 -> (1, 2) a negative; row 2 dropped
    assert loss.item() == pytest.approx((0.1 + 1.0 + math.log(2.0)) / 3)
    state = model.pair_state
    assert state.relabeled[state.index(torch.tensor([1]), torch.tensor([2]))].item()
    assert state.dropped[state.index(torch.tensor([1]), torch.tensor([1]))].item()
    assert _pairs(model) == [(1, 1), (1, 2)]
    assert state.seen.sum().item() == 4
    # second step, rows shuffled: (1, 2) stays a negative and is kept; history is per pair
    per2 = torch.tensor([3.0, 0.1, 0.1, 0.1])  # (1, 2), (1, 1), (0, 1), (0, 0)
    loss = model.ranking_loss(torch.tensor([1, 1, 0, 0]), torch.tensor([2, 1, 1, 0]), torch.tensor([1.0, 0, 0, 0]),
                              None, per2, None, None, None)
    at = state.index(torch.tensor([1, 0]), torch.tensor([1, 1]))
    expect = [(math.log(5.0) + float(damped(torch.tensor(0.1)))) / 2, (math.log(2.5) + float(damped(torch.tensor(0.1)))) / 2]
    assert state.loss_mean[at].tolist() == pytest.approx(expect)
    assert state.relabeled[state.index(torch.tensor([1]), torch.tensor([2]))].item()
    # c(n=2) = 0.5 * (1 + 0.5 ln 2) / 2.5 = 0.2693; lower: (1,2) forced first, (0,0) 0, (0,1) .23, (1,1) .58
    # keep (1,2) and (0,0); relabel from row 3: (1,1) -> a negative too
    c = 0.5 * (1 + 0.5 * math.log(2)) / 2.5
    assert expect[0] - c > expect[1] - c > 0
    assert loss.item() == pytest.approx((math.log1p(math.e) + 0.1 + math.log(2.0)) / 3)
    assert _pairs(model) == [(0, 1), (1, 1), (1, 2)]


def test_dcf_lambda_decays_over_the_epochs_and_the_history_restarts_every_time_step():
    model = _model(DCFMixin, epochs=5, dcf_time_step=2)
    assert [model.lambda_at(e) for e in range(5)] == pytest.approx([0.5, 0.375, 0.25, 0.125, 0.0])
    user, pos, per = torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([1.0, 2.0])
    for epoch, seen in ((0, 1), (1, 2), (2, 1), (3, 2)):  # epochs 0-1 one window, 2-3 the next
        model.train()
        assert model.epoch == epoch
        model.ranking_loss(user, pos, torch.zeros(2), None, per, None, None, None)
        assert model.pair_state.seen[model.pair_state.index(user, pos)].tolist() == [seen, seen]


# ----------------------------------------------------------------------------- BOD
def test_bod_gradient_match_loss_against_closed_form_gradients():
    torch.manual_seed(0)
    u, i, j = torch.randn(3, 2), torch.randn(3, 2), torch.randn(3, 2)
    user, pos = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])
    w = torch.tensor([0.2, 0.9, 0.5])
    got = gradient_match_loss(w, user, pos, u.clone(), i.clone(), j.clone()).item()
    # by hand: x = u.(i - j); d/du [w/B * -log sig(x)] = -w/B (1 - sig(x)) (i - j), d/di = -w/B (1 - sig(x)) u;
    # syn: ||u/|u| - i/|i|||^2 = 2 - 2 cos; d/du = -2/|u| (i/|i| - (u.i)/(|u||i|) u/|u|), same for i
    B = 3
    x = (u * (i - j)).sum(1)
    coef = -(w / B) * (1 - torch.sigmoid(x))
    gu_real, gi_real = coef[:, None] * (i - j), coef[:, None] * u
    nu, ni = u.norm(dim=1, keepdim=True), i.norm(dim=1, keepdim=True)
    cos = (u * i).sum(1, keepdim=True) / (nu * ni)
    gu_syn = (w / B)[:, None] * -2 / nu * (i / ni - cos * u / nu)
    gi_syn = (w / B)[:, None] * -2 / ni * (u / nu - cos * i / ni)

    def dist(a, b):
        return (1 - (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-6)).sum()

    users = (torch.stack([gu_real[0] + gu_real[1], gu_real[2]]), torch.stack([gu_syn[0] + gu_syn[1], gu_syn[2]]))
    items = (torch.stack([gi_real[0], gi_real[1] + gi_real[2]]), torch.stack([gi_syn[0], gi_syn[1] + gi_syn[2]]))
    assert got == pytest.approx((dist(*users) + dist(*items)).item(), rel=1e-5)


def test_bod_outer_step_moves_the_generator_only_and_weights_are_kept_by_pair():
    torch.manual_seed(1)
    model = _model(BODMixin)
    before = [p.detach().clone() for p in model.weight_generator.parameters()]
    user, pos, neg = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 2]), torch.tensor([3, 4, 4])
    ue, ie = model.propagate()
    u_e, pos_e, neg_e = ue[user], ie[pos], ie[neg]
    pos_scores, neg_scores = (u_e * pos_e).sum(1), (u_e * neg_e).sum(1)
    per = -torch.log(1e-10 + torch.sigmoid(pos_scores - neg_scores))
    loss = model.ranking_loss(user, pos, pos_scores, neg_scores, per, u_e, pos_e, neg_e)
    after = list(model.weight_generator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))  # the outer step ran
    assert all(p.grad is None for p in model.parameters())  # and left no gradient behind
    w = model.weight_generator(u_e.detach(), pos_e.detach()).detach()
    assert loss.item() == pytest.approx((w * per).mean().item(), rel=1e-6)
    loss.backward()
    assert all(p.grad is None for p in model.weight_generator.parameters())  # inner loss: weights detached
    assert model.user_embedding.weight.grad is not None
    state = model.pair_state
    assert state.weight[state.index(torch.tensor([0, 1]), torch.tensor([1, 2]))].tolist() == pytest.approx(
        w[[1, 2]].tolist())
    assert len(_pairs(model, 10)) == 3


# ----------------------------------------------------------------------------- config, report
@pytest.mark.parametrize("key, value", [("tce_eps_max", 1.0), ("tce_eps_n", 0), ("rce_beta", -1.0),
                                        ("dcf_relabel_ratio", 1.5), ("bod_generator_lr", 0.0), ("wbpr_alpha", "x")])
def test_a_bad_method_key_is_a_one_line_error_naming_it(key, value):
    with pytest.raises(ConfigError, match=rf"^{key}=") as err:
        validate({key: value})
    assert "\n" not in str(err.value)
    assert validate({"tce_eps_n": 3.0})["tce_eps_n"] == 3  # whole floats become ints


def test_flagged_identification_by_hand():
    rep = flagged_identification([0, 1, 2], [5, 6, 7], [1, 2, 3], [6, 7, 8], 30, "TCE_LightGCN", "dropped")
    ident = rep["identification"]
    assert (ident["true_positives"], ident["labelled_noisy"], ident["injected"]) == (2, 3, 3)
    assert ident["precision"] == pytest.approx(2 / 3) and ident["recall"] == pytest.approx(2 / 3)
    assert ident["reference_precision_random"] == pytest.approx(0.1)


# ----------------------------------------------------------------------------- CLI, all ten
MODELS = [f"{m}_{b}" for m in ("WBPR", "TCE", "RCE", "BOD", "DCF") for b in ("LightGCN", "NGCF")]

_ALL_TEN = """
import sys, torch
torch.set_num_threads(1)
from recbole_llmhni.cli.run import main
for model in sys.argv[1:]:
    sys.argv = ["run_recbole_llmhni.py", f"--model={model}", "--dataset=ml-100k", "--epochs=1",
                "--train_batch_size=8192", "--eval_batch_size=1000000", "--show_progress=False",
                "--llmhni_noise_ratio=0.1", "--tce_eps_n=2", "--dcf_eps_n=2"]
    print("MODEL", model, flush=True)
    rc = main()
    assert not rc, (model, rc)
"""


def test_all_ten_models_train_an_epoch_from_the_command_line_on_ml100k(tmp_path):
    """One process, ten models: one epoch each at a large batch, with 10% injected noise."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", _ALL_TEN, *MODELS], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    blocks = result.stdout.split("MODEL ")[1:]
    assert [b.split()[0] for b in blocks] == MODELS
    for block in blocks:
        test_line = next(line for line in block.splitlines() if line.strip().startswith("test:"))
        recall = float(re.search(r"recall@20: ([0-9.]+)", test_line).group(1))
        assert 0.0 < recall < 1.0, block[:200]

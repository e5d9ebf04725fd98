r"""The paper's loss-based denoising baselines on the plugin's backbones: WBPR, T-CE, R-CE, BOD, DCF.

``<METHOD>_LightGCN`` / ``<METHOD>_NGCF`` = a method mixin + the plain backbone
(:mod:`recbole_llmhni.models.backbones`). Every method keeps the backbone's propagation,
regularisation and ranking, and changes one of two hooks of
:class:`~recbole_llmhni.models.graph_recommender.GraphRecommender`:
``negative_items`` (WBPR) or ``bpr_loss`` (the others), through :meth:`DenoiserMixin.ranking_loss`,
which receives the per-triple BPR losses of the batch

.. math::
    \ell_b = -\log\big(10^{-10} + \sigma(\hat y_{u_b i_b} - \hat y_{u_b j_b})\big)

(RecBole's ``BPRLoss`` before its mean) and returns the batch's ranking loss; the L2 term
:math:`\lambda_{reg}\Omega` is added unchanged. LLMHNI's own loss is reached through the
same hooks (:mod:`recbole_llmhni.models.llmhni`).

Per-sample state (the last decision on a pair, DCF's loss history) lives in a
:class:`~recbole_llmhni.models.sample_state.PairState`, keyed by the pair :math:`(u, i)`,
never by batch position (RecBole reshuffles the rows every epoch).

What each method dropped or down-weighted is exported by :meth:`DenoiserMixin.flagged_pairs`
so the run record carries an identification report against injected noise
(:func:`recbole_llmhni.denoise.report.flagged_identification`).

Config keys (model YAMLs ``properties/model/<MODEL>.yaml``; checked by
:mod:`recbole_llmhni.config.validate`, schema ``DENOISER_KEYS``): see each mixin.

The original papers train point-wise (BCE on a positive and its sampled negatives: T-CE,
R-CE, DCF) or their own pair-wise code (BOD, on SELFRec). Here every method is written on the
BPR triple the backbones train with, as the issue asks ("pairwise form for the BPR
backbones"); each mixin says where its form differs from the authors' code.
"""
from __future__ import annotations

from logging import getLogger
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recbole_llmhni.models.backbones import BackboneLightGCN, BackboneNGCF
from recbole_llmhni.models.sample_state import PairState

__all__ = [
    "DenoiserMixin", "WBPRMixin", "TCEMixin", "RCEMixin", "BODMixin", "DCFMixin", "drop_rate", "damped",
    "confidence_bound", "gradient_match_loss",
    "WBPR_LightGCN", "WBPR_NGCF", "TCE_LightGCN", "TCE_NGCF", "RCE_LightGCN", "RCE_NGCF",
    "BOD_LightGCN", "BOD_NGCF", "DCF_LightGCN", "DCF_NGCF",
]

_GAMMA = 1e-10  # RecBole's BPRLoss


def drop_rate(step: int, eps_max: float, eps_n: int) -> float:
    r"""T-CE's (and DCF's) drop-rate schedule at training step ``step`` (0-based).

    .. math::
        \varepsilon(t) = \varepsilon_{max} \cdot \frac{t}{N - 1} \ (t < N), \qquad
        \varepsilon(t) = \varepsilon_{max} \ (t \ge N)

    i.e. ``np.linspace(0, eps_max, N)[t]`` as in the authors' ``drop_rate_schedule``
    (WenjieWWJ/DenoisingRec, ``exponent = 1``); :math:`N = 1` starts at :math:`\varepsilon_{max}`.
    """
    if step >= eps_n or eps_n <= 1:
        return float(eps_max)
    return float(eps_max) * step / (eps_n - 1)


class DenoiserMixin:
    """Shared machinery: the per-triple BPR losses, the step / epoch counters, the pair state.

    Put it (through a method mixin) first in the bases. ``flag_kind`` says what
    :meth:`flagged_pairs` reports: ``"dropped"`` (a set of pairs), ``"down-weighted"`` (pairs
    ranked by their last weight, lowest first) or ``None`` (nothing; WBPR).
    """

    flag_kind: Optional[str] = None
    #: per-pair fields and their initial values (a subclass extends it)
    state_fields: dict = {}

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.train_step = 0  #: training steps taken (batches), across epochs
        self.epoch = -1  #: 0-based epoch, advanced by ``train()`` (RecBole calls it once per epoch)
        self.pair_state = PairState(self.train_users, self.train_items, self.n_items, dict(self.state_fields))
        getLogger().info(f"{type(self).__name__}: flags {self.flag_kind or 'nothing'}; "
                         f"per-pair state over {len(self.pair_state)} training pairs")

    def train(self, mode: bool = True):
        if mode:
            self.epoch += 1
        return super().train(mode)

    # ------------------------------------------------------------------ the hook
    def bpr_loss(self, user: Tensor, pos: Tensor, neg: Tensor, user_e: Tensor, item_e: Tensor) -> Tensor:
        u_e, pos_e, neg_e = user_e.index_select(0, user), item_e.index_select(0, pos), item_e.index_select(0, neg)
        pos_scores = torch.mul(u_e, pos_e).sum(dim=1)
        neg_scores = torch.mul(u_e, neg_e).sum(dim=1)
        per_triple = -torch.log(_GAMMA + torch.sigmoid(pos_scores - neg_scores))
        loss = self.ranking_loss(user, pos, pos_scores, neg_scores, per_triple, u_e, pos_e, neg_e)
        self.train_step += 1
        return loss + self.reg_weight * self.regularization(user, pos, neg, u_e, pos_e, neg_e)

    def ranking_loss(self, user: Tensor, pos: Tensor, pos_scores: Tensor, neg_scores: Tensor, per_triple: Tensor,
                     u_e: Tensor, pos_e: Tensor, neg_e: Tensor) -> Tensor:
        """*Hook.* The batch's ranking loss from its per-triple losses (default: their mean, plain BPR)."""
        return per_triple.mean()

    # ------------------------------------------------------------------ export
    def flagged_pairs(self, k: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        """``(users, items)`` the method dropped (``flag_kind == "dropped"``: at its last look at
        each pair) or the ``k`` lowest-weighted pairs (``"down-weighted"``; pairs never seen
        are left out). Empty for a method that flags nothing."""
        empty = self.train_users.new_zeros(0)
        if self.flag_kind == "dropped":
            return self.pair_state.pairs(self.dropped_mask())
        if self.flag_kind == "down-weighted":
            weight = self.pair_state.weight
            seen = torch.nonzero(~torch.isnan(weight)).squeeze(1)
            order = seen[torch.argsort(weight[seen], stable=True)]
            if k is not None:
                order = order[:k]
            keys = self.pair_state.keys[order]
            return keys // self.n_items, keys % self.n_items
        return empty, empty

    def dropped_mask(self) -> Tensor:
        return self.pair_state.dropped


# ============================================================================ WBPR
class WBPRMixin(DenoiserMixin):
    r"""WBPR (Gantner, Drumond, Freudenthaler, Schmidt-Thieme, "Personalized Ranking for
    Non-Uniformly Sampled Items", KDD Cup 2011 workshop, JMLR W&CP 18): BPR with the negative
    :math:`j` drawn with probability proportional to its popularity,

    .. math::
        p(j) \propto n_j^{\alpha}, \qquad n_j = |\{u : (u, j) \in G\}|, \qquad
        \mathcal L = \frac1B \sum_b -\log\sigma(\hat y_{u i} - \hat y_{u j}),\ j \sim p,\ (u, j) \notin G.

    Config: ``wbpr_alpha`` (:math:`\alpha`, 1 = proportional, the paper's form).

    Differs: the paper weights the BPR terms by :math:`w_j` (popularity) under uniform
    sampling; drawing :math:`j` in proportion to :math:`w_j` gives the same expected gradient,
    and is how the paper's own LibRec / MyMediaLite sampler realises it. A draw that hits one
    of the user's training items is redrawn up to 10 times, then RecBole's uniform negative
    is kept. Drops nothing: :meth:`flagged_pairs` is empty. Private generator seeded with
    ``seed``.
    """

    #: ``llmhni_neg_mode: dns | semantic`` is refused for it (config/validate.py)
    draws_own_negatives = True

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.wbpr_alpha: float = config["wbpr_alpha"]
        counts = torch.bincount(self.train_items, minlength=self.n_items).float()
        self.register_buffer("negative_weights", counts.pow(self.wbpr_alpha) * (counts > 0), persistent=False)
        self._wbpr_seed = int(config["seed"] or 0)
        self._wbpr_generator: Optional[torch.Generator] = None

    def negative_items(self, interaction, user_e: Tensor, item_e: Tensor) -> Tensor:
        user = interaction[self.USER_ID]
        neg = interaction[self.NEG_ITEM_ID].clone()
        if self._wbpr_generator is None or self._wbpr_generator.device != user.device:
            self._wbpr_generator = torch.Generator(device=user.device).manual_seed(self._wbpr_seed)
        todo = torch.arange(user.numel(), device=user.device)
        for _ in range(10):
            if todo.numel() == 0:
                break
            draw = torch.multinomial(self.negative_weights, todo.numel(), replacement=True,
                                     generator=self._wbpr_generator)
            ok = ~self.is_training_pair(user[todo], draw)
            neg[todo[ok]] = draw[ok]
            todo = todo[~ok]
        return neg

    def is_training_pair(self, users: Tensor, items: Tensor) -> Tensor:
        keys = users.long() * self.n_items + items.long()
        table = self.pair_state.keys
        at = torch.searchsorted(table, keys).clamp_(max=table.numel() - 1)
        return table[at] == keys


# ============================================================================ T-CE
class TCEMixin(DenoiserMixin):
    r"""T-CE, the truncated loss (Wang, Feng, He, Nie, Chua, "Denoising Implicit Feedback for
    Recommendation", WSDM 2021): at step :math:`t` the :math:`\lfloor \varepsilon(t) B \rfloor`
    triples of the batch with the largest loss are dropped,

    .. math::
        \mathcal L_t = \frac{1}{|K_t|}\sum_{b \in K_t} \ell_b, \qquad
        K_t = \text{the } \lfloor (1 - \varepsilon(t)) B \rfloor \text{ smallest } \ell_b,

    with :func:`drop_rate`'s linear schedule (``tce_eps_max`` :math:`\varepsilon_{max}`,
    ``tce_eps_n`` :math:`N`; 0.2 and 30 000 iterations, the defaults of the authors'
    ``T_CE/main.py``; their code keeps
    ``int((1 - eps) * B)``, so do we). Ties are broken by batch position (stable sort).

    Differs: the authors' form is point-wise (BCE on positives and sampled negatives; only
    positives can be dropped, since ``loss * t`` is 0 on negatives). Here the unit is the
    BPR triple (issue 13's "pairwise form"): a dropped triple drops its positive. A pair
    counts as dropped (:meth:`flagged_pairs`) if it was dropped the last time it was seen.
    """

    flag_kind = "dropped"
    state_fields = {"dropped": False}

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.eps_max: float = config["tce_eps_max"]
        self.eps_n: int = config["tce_eps_n"]

    def ranking_loss(self, user, pos, pos_scores, neg_scores, per_triple, u_e, pos_e, neg_e) -> Tensor:
        eps = drop_rate(self.train_step, self.eps_max, self.eps_n)
        n_keep = int((1.0 - eps) * per_triple.numel())
        order = torch.argsort(per_triple.detach(), stable=True)
        kept = order[:n_keep]
        dropped = torch.zeros_like(per_triple, dtype=torch.bool)
        dropped[order[n_keep:]] = True
        self.pair_state.dropped[self.pair_state.index(user, pos)] = dropped
        if n_keep == 0:
            return per_triple.sum() * 0.0
        return per_triple.index_select(0, kept).mean()


# ============================================================================ R-CE
class RCEMixin(DenoiserMixin):
    r"""R-CE, the reweighted loss (same paper as T-CE): each positive's loss is weighted by
    its own predicted score, so a positive the model finds unlikely (a likely noisy one)
    counts less,

    .. math::
        \mathcal L = \frac1B \sum_b \operatorname{sg}\big[\sigma(\hat y_{u_b i_b})^{\beta}\big]\, \ell_b,

    :math:`\operatorname{sg}` = stop-gradient (the authors detach the weight). Config:
    ``rce_beta`` (:math:`\beta`; 0.25: the authors' logged runs (WenjieWWJ/DenoisingRec,
    ``R_CE/log``) use 0.2 to 0.3).

    Differs: the authors weight the point-wise BCE, positives by :math:`\sigma(\hat y)^\beta`
    and sampled negatives by :math:`(1 - \sigma(\hat y))^\beta`. Here the positive's weight
    multiplies its BPR triple, and the negative's side is not weighted (the triple's loss is
    one term; weighting it twice would mostly shrink the learning rate). :meth:`flagged_pairs` ranks pairs
    by the last weight they got (lowest first).
    """

    flag_kind = "down-weighted"
    state_fields = {"weight": float("nan")}

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.beta: float = config["rce_beta"]

    def ranking_loss(self, user, pos, pos_scores, neg_scores, per_triple, u_e, pos_e, neg_e) -> Tensor:
        weight = torch.sigmoid(pos_scores.detach()).pow(self.beta)
        self.pair_state.weight[self.pair_state.index(user, pos)] = weight
        return (weight * per_triple).mean()


# ============================================================================ BOD
class _WeightGenerator(nn.Module):
    r""":math:`w(u, i) = \sigma(\mathrm{MLP}([e_u \odot e_i]))`, one hidden ReLU layer."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, u: Tensor, i: Tensor) -> Tensor:
        return torch.sigmoid(self.net(u * i)).squeeze(-1)


def _row_cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    r""":math:`\sum_r 1 - \cos(a_r, b_r)` (the authors' ``distance_wb``, with its ``1e-6``)."""
    return (1 - (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-6)).sum()


def gradient_match_loss(w: Tensor, user: Tensor, pos: Tensor, u: Tensor, i: Tensor, j: Tensor) -> Tensor:
    r"""BOD's outer objective on one batch, differentiable in the weights ``w`` ``[B]``.

    ``u``, ``i``, ``j`` ``[B, d]`` are the batch's propagated rows (detached). The per-row
    gradients of :math:`\mathcal L_{real}` and :math:`\mathcal L_{syn}` (class docstring) with
    respect to ``u`` and ``i`` are summed per user id and per item id (the gradient an
    embedding-table row would receive), and matched row by row with
    :func:`_row_cosine_distance`. Summing per id matters: a single row's two gradients are
    both scaled by its own :math:`w_b`, which a cosine ignores; only across the samples of a
    user (or an item) do the weights change the direction.
    """
    u = u.requires_grad_(True) if not u.requires_grad else u
    i = i.requires_grad_(True) if not i.requires_grad else i
    per = -torch.log(_GAMMA + torch.sigmoid((u * i).sum(1) - (u * j).sum(1)))
    real = (w * per).mean()
    syn = (w * (F.normalize(u, dim=-1) - F.normalize(i, dim=-1)).pow(2).sum(-1)).mean()
    g_real = torch.autograd.grad(real, (u, i), create_graph=True)
    g_syn = torch.autograd.grad(syn, (u, i), create_graph=True)
    loss = w.new_zeros(())
    for ids, a, b in ((user, g_real[0], g_syn[0]), (pos, g_real[1], g_syn[1])):
        rows, at = torch.unique(ids, return_inverse=True)
        sum_a = a.new_zeros(rows.numel(), a.shape[1]).index_add(0, at, a)
        sum_b = b.new_zeros(rows.numel(), b.shape[1]).index_add(0, at, b)
        loss = loss + _row_cosine_distance(sum_a, sum_b)
    return loss


class BODMixin(DenoiserMixin):
    r"""BOD (Wang, Gao, Li, Yu, Guo, Yin, "Efficient Bi-Level Optimization for Recommendation
    Denoising", KDD 2023): a weight generator :math:`g_\phi` scores every training pair; the
    recommender trains on the weighted loss (inner step), the generator on a gradient-matching
    objective (outer step).

    Inner step (every training step; :math:`\theta` = the recommender):

    .. math::
        \mathcal L_{in}(\theta) = \frac1B \sum_b \operatorname{sg}[w_b]\,\ell_b,
        \qquad w_b = g_\phi(e_{u_b}, e_{i_b}).

    Outer step (every ``bod_outer_every`` steps, on the same batch, before the inner one;
    :math:`\phi` only, its own Adam at ``bod_generator_lr``): with the batch's propagated rows
    :math:`X = (e_u, e_{i}, e_{j})` detached (:func:`gradient_match_loss`),

    .. math::
        \mathcal L_{real} = \frac1B\sum_b w_b \ell_b, \quad
        \mathcal L_{syn} = \frac1B\sum_b w_b \big\lVert \bar e_{u_b} - \bar e_{i_b} \big\rVert^2, \quad
        \mathcal L_{out}(\phi) = \sum_{r} \Big(1 - \cos\big(\textstyle\sum_{b \to r}\nabla_{X_b}\mathcal L_{real},
            \sum_{b \to r}\nabla_{X_b}\mathcal L_{syn}\big)\Big)
            + \lambda_g \lVert \phi \rVert^2

    (:math:`\bar e` = L2-normalised: DirectAU's alignment, which the authors' ``alignment_loss_weight_1``
    weights; :math:`r` runs over the batch's distinct users and positive items, :math:`b \to r`
    over its rows of that id). The generator learns weights under which the ranking loss pushes the embeddings
    the way the alignment of the pairs does; pairs whose ranking gradient disagrees
    (noisy ones, in the paper's argument) get a low weight.

    Config: ``bod_generator_lr``, ``bod_generator_hidden``, ``bod_generator_reg``
    (:math:`\lambda_g`), ``bod_outer_every``.

    Differs from the authors' SELFRec code (CoderWZW/BOD): (1) gradients are matched on the
    batch's propagated embeddings, summed per user / item id, not on every recommender
    parameter: that avoids a double backward through the sparse propagation (not supported
    for CSR on CPU) and costs one small extra backward; (2) the outer step is interleaved with the inner steps (every
    ``bod_outer_every`` batches) instead of ``outer_loop`` steps after ``inner_loop`` epochs,
    so RecBole's one-optimizer trainer can run it; (3) the generator is an MLP on
    :math:`e_u \odot e_i` (the authors: a VAE-style generator on the two embeddings);
    (4) the inner loss weights the BPR triple by the positive's weight only (the authors'
    ``bpr_loss_weight`` also takes the negative's weight). The generator is trained by its
    own optimizer only (the inner loss detaches the weights), so RecBole's optimizer leaves it
    as it is.
    """

    flag_kind = "down-weighted"
    state_fields = {"weight": float("nan")}

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.outer_every: int = config["bod_outer_every"]
        self.generator_reg: float = config["bod_generator_reg"]
        dim = self._out_dim()
        self.weight_generator = _WeightGenerator(dim, config["bod_generator_hidden"]).to(self.device)
        self.generator_optimizer = torch.optim.Adam(self.weight_generator.parameters(), lr=config["bod_generator_lr"])

    def _out_dim(self) -> int:
        """Width of the propagated embeddings (one propagation in eval mode: no dropout, no random draw)."""
        was_training = self.propagation.training
        self.propagation.eval()
        with torch.no_grad():
            user_e, _ = self.propagate()
        self.propagation.train(was_training)
        return int(user_e.shape[1])

    def outer_step(self, user: Tensor, pos: Tensor, u_e: Tensor, pos_e: Tensor, neg_e: Tensor) -> float:
        r"""One generator update (see the class docstring); returns :math:`\mathcal L_{out}`."""
        params = list(self.weight_generator.parameters())
        w = self.weight_generator(u_e.detach(), pos_e.detach())
        loss = gradient_match_loss(w, user, pos, u_e.detach(), pos_e.detach(), neg_e.detach())
        loss = loss + self.generator_reg * sum(p.pow(2).sum() for p in params)
        grads = torch.autograd.grad(loss, params)
        self.generator_optimizer.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            p.grad = g
        self.generator_optimizer.step()
        for p in params:
            p.grad = None  # RecBole's optimizer holds these too: leave it nothing to apply
        return float(loss.detach())

    def ranking_loss(self, user, pos, pos_scores, neg_scores, per_triple, u_e, pos_e, neg_e) -> Tensor:
        if self.train_step % self.outer_every == 0:
            with torch.enable_grad():
                self.outer_step(user, pos, u_e, pos_e, neg_e)
        with torch.no_grad():
            weight = self.weight_generator(u_e.detach(), pos_e.detach())
        self.pair_state.weight[self.pair_state.index(user, pos)] = weight
        return (weight * per_triple).mean()


# ============================================================================ DCF
def damped(loss: Tensor) -> Tensor:
    r"""DCF's damping function :math:`f(\ell) = \log(1 + \ell + \ell^2 / 2)` (non-decreasing, sub-linear)."""
    return torch.log1p(loss + loss * loss / 2)


def confidence_bound(epoch: int, seen: Tensor, co_lambda: float) -> Tensor:
    r"""DCF's concentration bound, as in the authors' ``PLC_uncertain_discard``:

    .. math::
        c = \frac{\lambda\,\big(s + \lambda \log(2s) / s^2\big)}{(n + 1) - \lambda},
        \qquad s = \text{epoch} + 1,\ n = \text{times the pair was seen}.
    """
    s = float(epoch + 1)
    lam = float(co_lambda)
    return lam * (s + lam * torch.log(torch.tensor(2 * s)) / (s * s)) / ((seen.float() + 1) - lam)


class DCFMixin(DenoiserMixin):
    r"""DCF (He, Wang, Yang, Sun, Wu, Guo, Hong, Wang, "Double Correction Framework for
    Denoising Recommendation", KDD 2024): judge a sample by its damped loss averaged over
    time minus a concentration bound (hard samples vary more, so the bound spares them), drop
    the highest share, and relabel the most certain of the dropped ones.

    Per step, for each triple :math:`b` of pair :math:`p = (u, i)` seen :math:`n_p` times before:

    .. math::
        \bar\ell_p \leftarrow \frac{n_p\,\bar\ell_p + f(\ell_b)}{n_p + 1}, \qquad
        r_b = \max\big(0,\ \bar\ell_p - c(s, n_p + 1)\big)

    (:func:`damped`, :func:`confidence_bound`; the history restarts every ``dcf_time_step``
    epochs, and :math:`\lambda` decays linearly from ``dcf_co_lambda`` to 0 over the run's
    ``epochs``, both as in the authors' ``main.py``). Rows are sorted by :math:`r_b`; the
    :math:`\lfloor(1 - \varepsilon(t))B\rfloor` lowest are kept, the rest dropped
    (:func:`drop_rate`: ``dcf_eps_max``, ``dcf_eps_n``), and of the dropped ones the rows from
    position :math:`\lfloor (1 - \rho\,\varepsilon(t)) B \rfloor` on (the highest
    :math:`\rho` share of the dropped, ``dcf_relabel_ratio``) are *relabelled*: from then on
    the pair is a negative and trains with the point-wise negative-label loss
    :math:`\operatorname{softplus}(\hat y_{ui}) = -\log(1 - \sigma(\hat y_{ui}))`. A relabelled
    pair stays relabelled (the authors write the label into ``train_mat``) and is always kept.

    .. math::
        \mathcal L_t = \frac{1}{|K_t| + |R_t|}\Big(\sum_{b \in K_t} \ell_b
            + \sum_{b \in R_t} \operatorname{softplus}(\hat y_{u_b i_b})\Big).

    Config: ``dcf_eps_max``, ``dcf_eps_n`` (0.2, 30 000), ``dcf_co_lambda`` (:math:`\lambda`,
    1e-4), ``dcf_relabel_ratio`` (:math:`\rho`, 0.05), ``dcf_time_step`` (3): the defaults of
    the authors' ``main.py`` (bruno686/DCF).

    Differs from the authors' code (bruno686/DCF, point-wise BCE): (1) the unit is the BPR
    triple and a relabelled pair trains with the BCE negative-label term alone (no sampled
    negative); (2) the loss history is a running mean over the times the pair was seen,
    kept in a :class:`PairState` by pair (the authors index a per-epoch array by the row's
    position in a fixed data order, and their running mean divides by the epoch count).
    :meth:`flagged_pairs`: pairs dropped at their last look, or relabelled.
    """

    flag_kind = "dropped"
    state_fields = {"loss_mean": 0.0, "seen": 0, "dropped": False, "relabeled": False}

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.eps_max: float = config["dcf_eps_max"]
        self.eps_n: int = config["dcf_eps_n"]
        self.co_lambda: float = config["dcf_co_lambda"]
        self.relabel_ratio: float = config["dcf_relabel_ratio"]
        self.time_step: int = config["dcf_time_step"]
        self.total_epochs: int = int(config["epochs"] or 1)
        self._window = 0  #: the epoch the loss history was last reset at

    def lambda_at(self, epoch: int) -> float:
        r""":math:`\lambda_e = \lambda\,(1 - e / (E - 1))`: the authors' ``co_lambda_plan``
        (``np.linspace(1, 0, epochs)``), with :math:`E` = ``epochs``."""
        if self.total_epochs <= 1:
            return self.co_lambda
        return self.co_lambda * max(0.0, 1.0 - epoch / (self.total_epochs - 1))

    def _reset_window(self) -> None:
        """Every ``dcf_time_step`` epochs the loss history starts again (the authors' ``time_step``)."""
        epoch = max(self.epoch, 0)
        start = epoch - epoch % self.time_step
        if start != self._window:
            self._window = start
            self.pair_state.loss_mean.zero_()
            self.pair_state.seen.zero_()

    def dropped_mask(self) -> Tensor:
        return self.pair_state.dropped | self.pair_state.relabeled

    def ranking_loss(self, user, pos, pos_scores, neg_scores, per_triple, u_e, pos_e, neg_e) -> Tensor:
        self._reset_window()
        state = self.pair_state
        at = state.index(user, pos)
        with torch.no_grad():
            seen = state.seen[at]
            mean = (state.loss_mean[at] * seen + damped(per_triple.detach())) / (seen + 1)
            state.loss_mean[at] = mean
            state.seen[at] = seen + 1
            lower = F.relu(mean - confidence_bound(max(self.epoch, 0), seen + 1, self.lambda_at(max(self.epoch, 0))).to(mean.device))
            already = state.relabeled[at]
            lower = torch.where(already, torch.full_like(lower, -1.0), lower)  # relabelled: always kept
            eps = drop_rate(self.train_step, self.eps_max, self.eps_n)
            n = per_triple.numel()
            n_keep = int((1.0 - eps) * n)
            n_relabel_from = int((1.0 - self.relabel_ratio * eps) * n)
            order = torch.argsort(lower, stable=True)
            keep = torch.zeros(n, dtype=torch.bool, device=lower.device)
            keep[order[:n_keep]] = True
            relabel = torch.zeros_like(keep)
            relabel[order[max(n_relabel_from, n_keep):]] = True
            relabel |= already
            state.relabeled[at] = relabel
            state.dropped[at] = ~keep & ~relabel
        negative_label = F.softplus(pos_scores)
        terms = torch.where(relabel, negative_label, per_triple)
        used = keep | relabel
        if not bool(used.any()):
            return per_triple.sum() * 0.0
        return terms[used].mean()


# ============================================================================ the models
class WBPR_LightGCN(WBPRMixin, BackboneLightGCN):
    """WBPR on LightGCN (see :class:`WBPRMixin`)."""


class WBPR_NGCF(WBPRMixin, BackboneNGCF):
    """WBPR on NGCF (see :class:`WBPRMixin`)."""


class TCE_LightGCN(TCEMixin, BackboneLightGCN):
    """T-CE on LightGCN (see :class:`TCEMixin`)."""


class TCE_NGCF(TCEMixin, BackboneNGCF):
    """T-CE on NGCF (see :class:`TCEMixin`)."""


class RCE_LightGCN(RCEMixin, BackboneLightGCN):
    """R-CE on LightGCN (see :class:`RCEMixin`)."""


class RCE_NGCF(RCEMixin, BackboneNGCF):
    """R-CE on NGCF (see :class:`RCEMixin`)."""


class BOD_LightGCN(BODMixin, BackboneLightGCN):
    """BOD on LightGCN (see :class:`BODMixin`)."""


class BOD_NGCF(BODMixin, BackboneNGCF):
    """BOD on NGCF (see :class:`BODMixin`)."""


class DCF_LightGCN(DCFMixin, BackboneLightGCN):
    """DCF on LightGCN (see :class:`DCFMixin`)."""


class DCF_NGCF(DCFMixin, BackboneNGCF):
    """DCF on NGCF (see :class:`DCFMixin`)."""

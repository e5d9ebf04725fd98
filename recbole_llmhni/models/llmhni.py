r"""LLMHNI on LightGCN and NGCF: S3 (semantic-guided hard negatives) and S8 (training on G').

``LLMHNI_LightGCN`` / ``LLMHNI_NGCF`` = :class:`LLMHNIMixin` + the plain backbone
(:mod:`recbole_llmhni.models.backbones`). The mixin reads every flag in its ``__init__``,
copies the offline stages' arrays (:class:`~recbole_llmhni.models.inputs.LLMHNIInputs`, put on
the training split by :class:`recbole_llmhni.pipeline.LLMHNIPipeline`) into buffers, and
overrides four hooks of :class:`~recbole_llmhni.models.graph_recommender.GraphRecommender`:
:meth:`~LLMHNIMixin.rec_adjacency` (:math:`G'`), :meth:`~LLMHNIMixin.negative_items` (S3),
:meth:`~LLMHNIMixin.extra_losses` (:math:`\mathcal L_{de}`, :math:`\mathcal L_{hal}`) and
``calculate_loss`` (rows S7 removed are skipped); propagation, BPR + L2 and ranking are the
backbone's. Per training step, for the batch rows :math:`(u, i^+)` that :math:`G'` keeps:

.. math::
    H' = (E_U, E_I) = \mathrm{propagate}(\hat A_{G'}), \qquad
    j^* = \mathrm{S3}\big(u;\ \hat y_{uj} = \langle E_U[u], E_I[j] \rangle,\ s(u, j)\big),

    \mathcal L = \mathrm{BPR}(u, i^+, j^*) + \lambda_{reg}\,\Omega
        + \lambda_1\,\mathcal L_{de}(H, H') + \lambda_2\,\mathcal L_{hal}(V, V'),

with :math:`H = \mathrm{propagate}(\hat A_G)` and :math:`V, V'` propagations on edge-dropped
views of :math:`G` and :math:`G'` (rate :math:`\rho`, redrawn every epoch); the losses are
in :mod:`recbole_llmhni.models.losses`. Ranking (``predict`` / ``full_sort_predict``) uses
:math:`H'`.

with :math:`j^*` chosen under ``torch.no_grad`` from :math:`M` uniform candidates, using the
embeddings the step already propagated (no second propagation, unlike RecBole's dynamic
sampler, which calls ``predict`` on every candidate); see :mod:`recbole_llmhni.semantic.sampling`.
The semantic relevance :math:`s(u, j) = \langle z'_u, z'_j \rangle` comes from S1 + S2.

Config keys (defaults in ``properties/overall.yaml``):

``llmhni_neg_mode`` (``~``: ``semantic`` for these models, :attr:`LLMHNIMixin.default_neg_mode`)
    ``uniform`` (RecBole's sampled negative; trains exactly like the backbone), ``dns``
    (score only: the highest-scored of :math:`M` candidates) or ``semantic`` (LLMHNI's S3).
    Any other pairwise model takes ``dns`` / ``semantic`` too, in the train loader of
    :mod:`recbole_llmhni.semantic.negative_loader`, through the same
    :func:`~recbole_llmhni.semantic.sampling.sample_negatives`.
``llmhni_neg_candidates`` (``auto``)
    :math:`M`, uniform candidates per training row. ``auto`` (the default): the largest of
    8, 16, 32 whose hard picks, under S4's ``Rec_pre``, are validation positives at most 3% of
    the time, by the pipeline's "S3 candidates" stage
    (:mod:`recbole_llmhni.semantic.candidate_calibration`); it picks 8 on ml-100k and 32 on
    amazon-books, the best M of the converged ``s3`` sweep on each. A number fixes :math:`M`.
``llmhni_neg_topk`` (``1``)
    :math:`k`: the chosen negative is the least relevant of the :math:`k` best-scored survivors
    (``1``: the best-scored survivor, i.e. DNS without the likely false negatives).
``llmhni_fn_quantile`` (``auto``)
    :math:`q`: a candidate with :math:`s(u, j)` above the :math:`q`-quantile of :math:`s` over
    :math:`u`'s training positives is a likely false negative and is never chosen. ``auto``
    (the default): :math:`q` chosen per dataset from training and validation data by the
    pipeline's "S3 calibrate" stage (:mod:`recbole_llmhni.semantic.calibration`); it picks
    0.9 on ml-100k and on amazon-books, the best semantic setting of the converged ``s3``
    sweep on both. A number fixes :math:`q`.

The defaults of :math:`k` and :math:`q` are measured, not the paper's (it leaves them open).
Amazon-books, LightGCN, 60 epochs (eval every 5, same seed), test Recall@20 with M = 8:
uniform 0.116, dns 0.170, semantic k=2 q=0.5 0.136, k=2 q=0.9 0.144, k=1 q=0.75 0.166,
k=1 q=0.9 0.167. Picking the least relevant of several top-scored candidates makes the
negative easier, and that costs more than the relevance gains; dropping the candidates more
relevant than 90% of the user's own items costs almost nothing. The converged ml-100k sweep (``s3``
suite, README) agrees: k=1, M=8, test Recall@20 q=0.3 0.352, 0.5 0.373, 0.7 0.387, 0.9
0.398, score-only DNS 0.400, uniform 0.378; k=2 and k=3 and M=16, 32 lower still. The
converged amazon-books runs agree on k (q=0.9, M=8: k=2 0.151 against k=1 0.167) but not on M:
M=16 gives 0.171 and M=32 0.173 there (validation 0.174 and 0.177 against 0.170), which is
why M is chosen per dataset.
``llmhni_use_alignment`` (``True``)
    ``False``: :math:`s` is the raw cosine of the text embeddings (ablation "w/o alignment").
``llmhni_denoise`` (``True``)
    Denoising (S4-S8): train and rank on :math:`G'` with :math:`\mathcal L_{de}` and
    :math:`\mathcal L_{hal}`. ``False`` is the ablation "w/o denoising": the model trains on
    the training graph G only.
``llmhni_lambda1``, ``llmhni_lambda2`` (``0``, ``0``)
    weights :math:`\lambda_1` of :math:`\mathcal L_{de}` and :math:`\lambda_2` of
    :math:`\mathcal L_{hal}`; ``0`` removes the term (``llmhni_lambda2: 0`` is "w/o L_hal").
    Both default to ``0``. With the scale gate (below) they no longer stall the ranking loss
    from a fresh start (ml-100k, 10 epochs, both at 0.1: test Recall@20 0.308 LightGCN,
    0.271 NGCF; without the gate 0.012). Converged on ml-100k (early stopping on valid
    Recall@20, seed 2020), LightGCN, S8 off: valid / test Recall@20 0.3562 / 0.3965; both at
    0.01, tau 0.5: 0.3566 / 0.3949; 0.01, tau 0.2: 0.3509 / 0.3933. They speed up early
    training (40 epochs: valid 0.3436 vs 0.3301) but do not raise the converged figure
    (:mod:`recbole_llmhni.models.losses` holds the measurements).
``llmhni_cl_temperature`` (``0.5``), ``llmhni_edge_drop_rate`` (``0.1``)
    InfoNCE temperature :math:`\tau` of both terms; edge-drop rate :math:`\rho` of the views.
``llmhni_cl_scale_ref`` (``1.0``), ``llmhni_cl_nodes`` (``256``), ``llmhni_cl_eps`` (``0``)
    the scale gate :math:`r_{ref}`, the node subsample :math:`n_{max}` and the SimGCL
    perturbation :math:`\epsilon` of both terms (:mod:`recbole_llmhni.models.losses`).
``llmhni_cl_every`` (``4``)
    lazy S8 (StyleGAN2's lazy regularisation): both terms on every :math:`k`-th training
    step only, at :math:`k` times their weight, so the expected gradient is unchanged and the
    three extra propagations cost :math:`1/k` as much. The step counter runs across epochs.
``llmhni_warm_start`` (``False``)
    start from S4's ``Rec_pre`` (the same backbone trained on G with plain BPR) instead of a
    fresh initialisation: every parameter of the backbone is copied.

Randomness: candidates come from a private ``torch.Generator`` seeded with the config's
``seed``, so a run's negatives do not depend on how many other random draws happened before
(dropout, RecBole's sampler) and a fixed seed gives the same choices.
"""
from __future__ import annotations

from logging import getLogger
from typing import Dict, Optional, Tuple

import torch
from recbole.data.interaction import Interaction
from torch import Tensor

from recbole_llmhni.models.backbones import BackboneLightGCN, BackboneNGCF
from recbole_llmhni.models.graph import drop_edges
from recbole_llmhni.models.inputs import LLMHNIInputs, inputs_of
from recbole_llmhni.models.losses import contrast_nodes, node_contrast
from recbole_llmhni.config.defaults import neg_mode_of
from recbole_llmhni.semantic.candidate_calibration import candidates_in_use
from recbole_llmhni.semantic.sampling import (
    SELECTION_COUNTERS,
    SemanticFilter,
    TrainingPositives,
    candidate_scores,
    false_negative_thresholds,
    read_sampling_stats,
    sample_negatives,
)

__all__ = ["LLMHNIMixin", "LLMHNI_LightGCN", "LLMHNI_NGCF"]

#: S3 keeps dense per-(user, item) lookup tables (the training-pair mask, one bool each, and the
#: semantic relevance :math:`s(u, i)`, one float32 each) when :math:`n_U n_I` is at most this
#: (2^25: 32 MiB of bools, 128 MiB of floats; ml-100k needs 1.6 M). A lookup is one index op
#: instead of a binary search and a gather of two :math:`d`-vectors per candidate.
DENSE_LOOKUP_MAX = 1 << 25


class LLMHNIMixin:
    r"""S3 and S8 on top of a :class:`GraphRecommender` backbone (see the module docstring).

    Put it first in the bases: ``class LLMHNI_X(LLMHNIMixin, BackboneX)``. The backbone is
    built first (same parameters and initial values as the plain backbone under the same
    seed), then the flags are read, then the offline stages' arrays are copied in.

    Buffers (non-persistent: rebuilt at construction, kept out of checkpoints):
    ``positive_keys`` (sorted :math:`u \cdot n_I + i` of the training pairs), in ``semantic``
    mode ``semantic_user`` / ``semantic_item`` and ``fn_threshold`` (:math:`\theta_u`), with
    denoising ``prime_users`` / ``prime_items`` / ``norm_adj_prime`` (:math:`G'`) and
    ``removed_keys`` (pairs S7 removed), and ``sampling_stats``.
    """

    #: the run function builds these models after running :class:`recbole_llmhni.pipeline.LLMHNIPipeline`
    needs_pipeline = True
    #: ``llmhni_neg_mode: ~`` means this for these models (any other model: RecBole's sampled negatives)
    default_neg_mode = "semantic"
    #: S3 runs inside ``calculate_loss`` on the propagated embeddings, never in the train loader
    samples_negatives_in_batch = True

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        # every flag, read once (values checked when the config was built)
        self.neg_mode: str = neg_mode_of(config)
        self.neg_candidates_setting = config["llmhni_neg_candidates"]  # a number, or "auto"
        self.neg_topk: int = config["llmhni_neg_topk"]
        self.fn_quantile = config["llmhni_fn_quantile"]  # a number, or "auto"
        self.fn_quantile_used: Optional[float] = None  # the q of the thresholds (semantic mode)
        self.use_alignment: bool = config["llmhni_use_alignment"]
        self.neg_seed: int = int(config["seed"])
        self.denoise: bool = config["llmhni_denoise"]
        self.lambda1: float = config["llmhni_lambda1"] if self.denoise else 0.0
        self.lambda2: float = config["llmhni_lambda2"] if self.denoise else 0.0
        self.cl_temperature: float = config["llmhni_cl_temperature"]
        self.edge_drop_rate: float = config["llmhni_edge_drop_rate"]
        self.cl_scale_ref: float = config["llmhni_cl_scale_ref"]
        self.cl_nodes: int = config["llmhni_cl_nodes"]
        self.cl_every: int = config["llmhni_cl_every"]
        self.cl_eps: float = config["llmhni_cl_eps"]
        self.warm_start: bool = config["llmhni_warm_start"]

        inputs = inputs_of(dataset, type(self).__name__)
        # M as sampled: the number set, or S3 candidates' choice (None: uniform negatives with M auto, never read)
        self.neg_candidates: Optional[int] = (
            None if self.neg_mode == "uniform" and self.neg_candidates_setting == "auto"
            else candidates_in_use(self.neg_candidates_setting, inputs.neg_candidates, self.neg_topk, type(self).__name__))
        positives = TrainingPositives(self.train_users, self.train_items, self.n_items)
        self.register_buffer("positive_keys", positives.keys, persistent=False)
        self.dense_lookups: bool = self.n_users * self.n_items <= DENSE_LOOKUP_MAX
        self.register_buffer("positive_mask", positives.dense_mask(self.n_users) if self.dense_lookups else None,
                             persistent=False)
        self._neg_generator: Optional[torch.Generator] = None
        self.register_buffer("sampling_stats", torch.zeros(len(SELECTION_COUNTERS), dtype=torch.long, device=self.device),
                             persistent=False)
        if self.neg_mode == "semantic":
            self._init_semantics(inputs)
        self._views: Optional[Tuple[Tensor, Tensor]] = None
        self._view_generator = torch.Generator(device=self.device)
        self._view_generator.manual_seed(int(config["seed"] or 0) + 1)
        self._cl_step = 0
        self._cl_generator = torch.Generator(device=self.device)
        self._cl_generator.manual_seed(int(config["seed"] or 0) + 2)
        if self.warm_start:
            self._load_backbone_weights(inputs)
        self.has_prime = self.denoise
        if self.denoise:
            self._init_denoised_graph(inputs)

    # ------------------------------------------------------------------ construction
    def _init_semantics(self, inputs: LLMHNIInputs) -> None:
        r"""Copy :math:`z'` (or the raw embeddings) and compute :math:`\theta_u`."""
        user_z, item_z = inputs.semantic_user, inputs.semantic_item
        if user_z is None or item_z is None:
            raise ValueError(f"{type(self).__name__}: llmhni_neg_mode=semantic needs the semantic vectors of S1-S2; the pipeline gave none")
        if user_z.shape[0] != self.n_users or item_z.shape[0] != self.n_items:
            raise ValueError(
                f"semantic embeddings have {user_z.shape[0]} users / {item_z.shape[0]} items, "
                f"the model {self.n_users} / {self.n_items}"
            )
        self.register_buffer("semantic_user", torch.as_tensor(user_z, dtype=torch.float32, device=self.device), persistent=False)
        self.register_buffer("semantic_item", torch.as_tensor(item_z, dtype=torch.float32, device=self.device), persistent=False)
        q = self.fn_quantile
        if q == "auto":
            if inputs.fn_quantile is None:
                raise ValueError(f"{type(self).__name__}: llmhni_fn_quantile=auto needs the pipeline's S3 calibrate "
                                 "stage (run it with the validation split) or a number in [0, 1]")
            q = float(inputs.fn_quantile)
        self.fn_quantile_used = float(q)
        positives = TrainingPositives.from_keys(self.positive_keys, self.n_items)
        self.register_buffer(
            "fn_threshold",
            false_negative_thresholds(self.semantic_user, self.semantic_item, positives, self.fn_quantile_used, self.n_users),
            persistent=False,
        )
        # s(u, i) for every pair, when small: S3 then looks candidates up instead of gathering
        # z'_j [B, M, d] per step (equal to candidate_scores up to float summation order)
        table = (self.semantic_user @ self.semantic_item.T).reshape(-1) if self.dense_lookups else None
        self.register_buffer("relevance_table", table, persistent=False)
        getLogger().info(
            f"LLMHNI S3: mode={self.neg_mode}, M={self.neg_candidates}, k={self.neg_topk}, "
            f"false-negative threshold = {self.fn_quantile_used:g}-quantile"
            f"{' (auto)' if self.fn_quantile == 'auto' else ''} of s over each user's training "
            f"items ({'aligned' if self.use_alignment else 'raw'} relevance)"
        )

    def _load_backbone_weights(self, inputs: LLMHNIInputs) -> None:
        """Copy every parameter of S4's ``Rec_pre`` into this model (``llmhni_warm_start``)."""
        state = inputs.rec_pre_state
        if state is None:
            raise ValueError(f"{type(self).__name__}: llmhni_warm_start needs S4's Rec_pre; the pipeline gave none")
        own = dict(self.named_parameters())
        mismatched = [name for name, p in state.items() if name not in own or own[name].shape != p.shape]
        if mismatched:
            raise ValueError(
                f"llmhni_warm_start: Rec_pre does not fit {type(self).__name__} (parameters {mismatched[:3]}); set "
                "llmhni_pretrain_backbone to the model's own backbone (or leave it empty), or llmhni_warm_start: False."
            )
        with torch.no_grad():
            for name, p in state.items():
                own[name].copy_(p.detach().to(own[name].device))
        getLogger().info(f"S8: warm start from Rec_pre ({len(state)} parameter tensors copied)")

    def _init_denoised_graph(self, inputs: LLMHNIInputs) -> None:
        graph = inputs.graph
        if graph is None:
            raise ValueError(f"{type(self).__name__}: llmhni_denoise needs G' from S4-S7; the pipeline gave none")
        users = torch.as_tensor(graph.users, dtype=torch.long, device=self.device)
        items = torch.as_tensor(graph.items, dtype=torch.long, device=self.device)
        self.register_buffer("prime_users", users, persistent=False)
        self.register_buffer("prime_items", items, persistent=False)
        self.register_buffer("norm_adj_prime", self.build_adjacency(users, items), persistent=False)
        removed = torch.as_tensor(graph.removed_users, dtype=torch.long) * self.n_items + torch.as_tensor(
            graph.removed_items, dtype=torch.long
        )
        self.register_buffer("removed_keys", torch.sort(removed).values.to(self.device), persistent=False)
        getLogger().info(
            f"S8: training on G' ({len(graph.users)} edges: +{graph.n_added} hard, "
            f"-{len(graph.removed_users)} noisy); lambda1={self.lambda1}, lambda2={self.lambda2}, "
            f"tau={self.cl_temperature}, edge drop={self.edge_drop_rate}, scale gate ref={self.cl_scale_ref}, "
            f"nodes={self.cl_nodes}, every={self.cl_every} steps, eps={self.cl_eps}"
        )

    # ------------------------------------------------------------------ semantic relevance
    def semantic_relevance(self, users: Tensor, items: Tensor) -> Tensor:
        r""":math:`s(u, i) = \langle z'_u, z'_i \rangle` for paired ``users``/``items`` (same shape)."""
        return (self.semantic_user[users] * self.semantic_item[items]).sum(dim=-1)

    # ------------------------------------------------------------------ S3
    def _generator(self, device: torch.device) -> torch.Generator:
        if self._neg_generator is None or self._neg_generator.device != torch.device(device):
            self._neg_generator = torch.Generator(device=device).manual_seed(self.neg_seed)
        return self._neg_generator

    def negative_items(self, interaction, user_e: Tensor, item_e: Tensor) -> Tensor:
        """S3: one negative per row, by ``llmhni_neg_mode`` (see the module docstring): the
        plugin's one selection, :func:`~recbole_llmhni.semantic.sampling.sample_negatives`,
        scoring candidates with the embeddings this step already propagated."""
        user = interaction[self.USER_ID]
        semantic = (SemanticFilter(self.semantic_user, self.semantic_item, self.fn_threshold, self.relevance_table)
                    if self.neg_mode == "semantic" else None)
        return sample_negatives(
            self.neg_mode, user, interaction[self.NEG_ITEM_ID], lambda u, c: candidate_scores(user_e[u], item_e, c),
            TrainingPositives.from_keys(self.positive_keys, self.n_items, self.positive_mask), self.n_items,
            self.neg_candidates, self.neg_topk, self._generator(user.device), semantic, self.sampling_stats,
        )

    def negative_sampling_stats(self, reset: bool = False) -> Dict[str, float]:
        """Semantic mode, since construction or the last reset: rows sampled, share of candidates
        dropped as likely false negatives, share of rows where the filter dropped the best-scored
        candidate (``fired_row_share``), where it dropped every candidate, and where the chosen
        negative differs from score-only DNS's (``changed_row_share``);
        :func:`~recbole_llmhni.semantic.sampling.sampling_shares`. Other modes: ``{}``."""
        return read_sampling_stats(self.neg_mode, self.sampling_stats, self.neg_candidates, reset)

    # ------------------------------------------------------------------ S8
    def rec_adjacency(self) -> Tensor:
        r""":math:`\hat A_{G'}` with denoising on, else the backbone's :math:`\hat A_G`."""
        return self.norm_adj_prime if self.has_prime else self.norm_adj

    def train(self, mode: bool = True):
        """RecBole calls ``model.train()`` at the start of every epoch: redraw the views then."""
        super().train(mode)
        if mode and self.lambda2 > 0:
            self._views = self._draw_views()
        return self

    def _draw_views(self) -> Tuple[Tensor, Tensor]:
        dropped_g = drop_edges(self.train_users, self.train_items, self.edge_drop_rate, self._view_generator)
        dropped_gp = drop_edges(self.prime_users, self.prime_items, self.edge_drop_rate, self._view_generator)
        return self.build_adjacency(*dropped_g), self.build_adjacency(*dropped_gp)

    def is_removed(self, users: Tensor, items: Tensor) -> Tensor:
        r"""Bool mask: was ``(users[k], items[k])`` removed from :math:`G` by S7 (judged noisy)?"""
        keys = users.long() * self.n_items + items.long()
        if self.removed_keys.numel() == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        at = torch.searchsorted(self.removed_keys, keys).clamp_(max=self.removed_keys.numel() - 1)
        return self.removed_keys[at] == keys

    def calculate_loss(self, interaction):
        if self.has_prime and self.removed_keys.numel():
            removed = self.is_removed(interaction[self.USER_ID], interaction[self.ITEM_ID])
            kept = torch.nonzero(~removed).squeeze(1)
            if 0 < len(kept) < len(removed):  # a batch of removed pairs only is left as it is
                # = interaction[kept], without RecBole's index.tolist() per field (9 ms a step on ml-100k)
                interaction = Interaction({k: v.index_select(0, kept) for k, v in interaction.interaction.items()})
        return super().calculate_loss(interaction)

    def extra_losses(self, interaction, user_e: Tensor, item_e: Tensor, user: Tensor, pos: Tensor, neg: Tensor):
        r"""``(lambda1 * L_de, lambda2 * L_hal)``, each present iff its weight is non-zero.

        ``user_e`` / ``item_e`` are :math:`H'`, already propagated for :math:`\mathcal L_{rec}`.
        Each term first draws the nodes it reads (:func:`~recbole_llmhni.models.losses.contrast_nodes`:
        the batch's distinct users and items, at most ``llmhni_cl_nodes`` of each), then
        propagates for those nodes only (``propagate_nodes``: the last layer over their rows, not
        the whole graph): :math:`H` on :math:`G`, and the two views. The three use three
        different matrices, so nothing of the main pass is reused; one block-diagonal CSR
        product over the stacked embeddings was measured slower (ml-100k shapes, one thread,
        forward: 25 ms against 19 ms for the three full products).
        """
        terms = tuple(super().extra_losses(interaction, user_e, item_e, user, pos, neg))
        if not self.has_prime:
            return terms
        if self.lambda1 <= 0 and self.lambda2 <= 0:
            return terms
        items = torch.cat([pos, neg.reshape(-1)])
        lazy = self.cl_factor()
        cl = dict(tau=self.cl_temperature, eps=self.cl_eps, generator=self._cl_generator, scale_ref=self.cl_scale_ref)

        def nodes() -> Tuple[Tensor, Tensor]:
            return contrast_nodes(user, items, self.cl_nodes, self._cl_generator)

        if self.lambda1 > 0:
            if lazy == 0.0:  # the same terms every step, so RecBole's loss columns stay aligned
                terms += (user_e.new_zeros(()),)
            else:
                us, its = nodes()
                h = self.propagate_nodes(self.norm_adj, us, its)
                h_prime = (user_e.index_select(0, us), item_e.index_select(0, its))
                terms += (lazy * self.lambda1 * node_contrast(h, h_prime, **cl),)
        if self.lambda2 > 0:
            if lazy == 0.0:
                terms += (user_e.new_zeros(()),)
            else:
                if self._views is None:
                    self._views = self._draw_views()
                us, its = nodes()
                view_g = self.propagate_nodes(self._views[0], us, its)
                view_gp = self.propagate_nodes(self._views[1], us, its)
                terms += (lazy * self.lambda2 * node_contrast(view_g, view_gp, **cl),)
        return terms

    def cl_factor(self) -> float:
        """Lazy S8: ``llmhni_cl_every`` on every ``llmhni_cl_every``-th call (training step), else 0."""
        factor = float(self.cl_every) if self._cl_step % self.cl_every == 0 else 0.0
        self._cl_step += 1
        return factor


class LLMHNI_LightGCN(LLMHNIMixin, BackboneLightGCN):
    """LLMHNI with the LightGCN backbone (see the module docstring)."""


class LLMHNI_NGCF(LLMHNIMixin, BackboneNGCF):
    """LLMHNI with the NGCF backbone (see the module docstring)."""

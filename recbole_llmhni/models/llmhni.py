r"""LLMHNI on LightGCN and NGCF: the backbones trained with semantic-guided hard negatives (S3).

``LLMHNI_LightGCN`` / ``LLMHNI_NGCF`` = :class:`~recbole_llmhni.models.denoising.DenoisingMixin`
(S7-S8: :math:`G'`, :math:`\mathcal L_{de}`, :math:`\mathcal L_{hal}`) + :class:`LLMHNIMixin` (S3)
+ the plain backbone (:mod:`recbole_llmhni.models.backbones`). The S3 mixin overrides one hook of
:class:`~recbole_llmhni.models.graph_recommender.GraphRecommender`,
:meth:`~LLMHNIMixin.negative_items`; everything else (propagation, BPR + L2, ranking) is the
backbone's. Per training step, for the batch rows :math:`(u, i^+)`:

.. math::
    (E_U, E_I) = \mathrm{propagate}(\hat A_G), \qquad
    j^* = \mathrm{S3}\big(u;\ \hat y_{uj} = \langle E_U[u], E_I[j] \rangle,\ s(u, j)\big), \qquad
    \mathcal L = \mathrm{BPR}(u, i^+, j^*) + \lambda_{reg}\,\Omega,

with :math:`j^*` chosen under ``torch.no_grad`` from :math:`M` uniform candidates, using the
embeddings the step already propagated (no second propagation, unlike RecBole's dynamic
sampler, which calls ``predict`` on every candidate); see :mod:`recbole_llmhni.semantic.sampling`.
The semantic relevance :math:`s(u, j) = \langle z'_u, z'_j \rangle` comes from
:meth:`LLMHNIDataset.semantic_embeddings <recbole_llmhni.data.dataset.LLMHNIDataset.semantic_embeddings>`
(S1 + S2, cached artifacts).

Config keys (defaults in ``properties/model/LLMHNI_<backbone>.yaml``):

``llmhni_neg_mode`` (``semantic``)
    ``uniform`` (RecBole's sampled negative; trains exactly like the backbone), ``dns``
    (score only: the highest-scored of :math:`M` candidates) or ``semantic`` (LLMHNI's S3).
``llmhni_neg_candidates`` (``8``)
    :math:`M`, uniform candidates per training row.
``llmhni_neg_topk`` (``1``)
    :math:`k`: the chosen negative is the least relevant of the :math:`k` best-scored survivors
    (``1``: the best-scored survivor, i.e. DNS without the likely false negatives).
``llmhni_fn_quantile`` (``0.9``)
    :math:`q`: a candidate with :math:`s(u, j)` above the :math:`q`-quantile of :math:`s` over
    :math:`u`'s training positives is a likely false negative and is never chosen.

The defaults of :math:`k` and :math:`q` are measured, not the paper's (it leaves them open).
Amazon-books, LightGCN, 60 epochs (eval every 5, same seed), test Recall@20 with M = 8:
uniform 0.116, dns 0.170, semantic k=2 q=0.5 0.136, k=2 q=0.9 0.144, k=1 q=0.75 0.166,
k=1 q=0.9 0.167. Picking the least relevant of several top-scored candidates makes the
negative easier, and that costs more than the relevance gains; dropping the candidates more
relevant than 90% of the user's own items costs almost nothing.
``llmhni_use_alignment`` (``True``)
    ``False``: :math:`s` is the raw cosine of the text embeddings (ablation "w/o alignment").
``llmhni_denoise`` (``True``)
    Denoising (S4-S8, :class:`~recbole_llmhni.models.denoising.DenoisingMixin`): train and
    rank on :math:`G'` with :math:`\mathcal L_{de}` and :math:`\mathcal L_{hal}`. ``False`` is
    the ablation "w/o denoising": the model trains on the training graph G only.

Randomness: candidates come from a private ``torch.Generator`` seeded with the config's
``seed``, so a run's negatives do not depend on how many other random draws happened before
(dropout, RecBole's sampler) and a fixed seed gives the same choices.
"""
from __future__ import annotations

from logging import getLogger
from typing import Dict, Optional

import torch
from torch import Tensor

from recbole_llmhni.models.backbones import BackboneLightGCN, BackboneNGCF
from recbole_llmhni.models.denoising import DenoisingMixin
from recbole_llmhni.semantic.sampling import (
    NEG_MODES,
    TrainingPositives,
    candidate_scores,
    draw_candidates,
    per_user_quantile,
    select_negatives,
)

__all__ = ["LLMHNIMixin", "LLMHNI_LightGCN", "LLMHNI_NGCF"]


def _get(config, key: str, default):
    value = config[key] if key in config else None
    return default if value is None else value


class LLMHNIMixin:
    r"""S3 (and the switches of the stages to come) on top of a :class:`GraphRecommender` backbone.

    Put it first in the bases: ``class LLMHNI_X(LLMHNIMixin, BackboneX)``. The backbone is
    built first (same parameters and initial values as the plain backbone under the same
    seed), then the sampler's state.

    Buffers (non-persistent: rebuilt at construction, kept out of checkpoints):
    ``positive_keys`` (sorted :math:`u \cdot n_I + i` of the training pairs) and, in
    ``semantic`` mode, ``semantic_user`` / ``semantic_item`` (:math:`z'` or raw embeddings)
    and ``fn_threshold`` (:math:`\theta_u`), ``sampling_stats``.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.neg_mode: str = str(_get(config, "llmhni_neg_mode", "semantic")).lower()
        if self.neg_mode not in NEG_MODES:
            raise ValueError(f"llmhni_neg_mode={self.neg_mode!r}; use one of: {', '.join(NEG_MODES)}")
        self.neg_candidates: int = int(_get(config, "llmhni_neg_candidates", 8))
        self.neg_topk: int = int(_get(config, "llmhni_neg_topk", 1))
        self.fn_quantile: float = float(_get(config, "llmhni_fn_quantile", 0.9))
        self.use_alignment: bool = bool(_get(config, "llmhni_use_alignment", True))
        self.denoise: bool = bool(_get(config, "llmhni_denoise", False))
        self.neg_seed: int = int(_get(config, "seed", 2020))
        if self.neg_candidates < 1 or self.neg_topk < 1:
            raise ValueError(
                f"llmhni_neg_candidates ({self.neg_candidates}) and llmhni_neg_topk ({self.neg_topk}) must be >= 1"
            )
        if not 0.0 <= self.fn_quantile <= 1.0:
            raise ValueError(f"llmhni_fn_quantile must be in [0, 1], got {self.fn_quantile}")
        neg_args = config["train_neg_sample_args"] or {}
        if self.neg_mode != "uniform" and neg_args.get("dynamic", False):
            raise ValueError(
                f"llmhni_neg_mode={self.neg_mode} and RecBole's dynamic sampling "
                "(train_neg_sample_args.dynamic=True) both pick hard negatives; keep one "
                "(llmhni_neg_mode=uniform for RecBole's)."
            )

        positives = TrainingPositives(self.train_users, self.train_items, self.n_items)
        self.register_buffer("positive_keys", positives.keys, persistent=False)
        self._neg_generator: Optional[torch.Generator] = None
        self.register_buffer("sampling_stats", torch.zeros(3, dtype=torch.long, device=self.device), persistent=False)

        if self.neg_mode == "semantic":
            self.load_semantics(dataset)
        self.init_denoising(config, dataset, relevance=self._rater_relevance(config, dataset))

    def _rater_relevance(self, config, dataset):
        """s(u, i) for S6's semantic stand-in rater: the vectors S3 uses when it has them."""
        if not self.denoise or str(_get(config, "llmhni_rater", "semantic")) != "semantic":
            return None
        if hasattr(self, "semantic_user"):
            return self.semantic_user.cpu().numpy(), self.semantic_item.cpu().numpy()
        return dataset.semantic_embeddings(aligned=self.use_alignment)

    # ------------------------------------------------------------------ semantic relevance
    def load_semantics(self, dataset) -> None:
        r"""Load :math:`z'` (or the raw embeddings) and compute :math:`\theta_u`.

        ``dataset`` is the training split RecBole hands the model; it must be an
        :class:`~recbole_llmhni.data.dataset.LLMHNIDataset` (``run_recbole_llmhni`` makes one).
        """
        if not hasattr(dataset, "semantic_embeddings"):
            raise TypeError(
                f"{type(self).__name__} needs LLMHNIDataset (profiles, semantic embeddings); got "
                f"{type(dataset).__name__}. Run it through run_recbole_llmhni / run_recbole_llmhni.py."
            )
        user_z, item_z = dataset.semantic_embeddings(aligned=self.use_alignment)
        if user_z.shape[0] != self.n_users or item_z.shape[0] != self.n_items:
            raise ValueError(
                f"semantic embeddings have {user_z.shape[0]} users / {item_z.shape[0]} items, "
                f"the model {self.n_users} / {self.n_items}"
            )
        self.register_buffer("semantic_user", torch.as_tensor(user_z, dtype=torch.float32, device=self.device), persistent=False)
        self.register_buffer("semantic_item", torch.as_tensor(item_z, dtype=torch.float32, device=self.device), persistent=False)
        positives = TrainingPositives.from_keys(self.positive_keys, self.n_items)
        users, items = positives.users, positives.items
        self.register_buffer(
            "fn_threshold",
            per_user_quantile(users, self.semantic_relevance(users, items), self.fn_quantile, self.n_users),
            persistent=False,
        )
        getLogger().info(
            f"LLMHNI S3: mode={self.neg_mode}, M={self.neg_candidates}, k={self.neg_topk}, "
            f"false-negative threshold = {self.fn_quantile:g}-quantile of s over each user's training "
            f"items ({'aligned' if self.use_alignment else 'raw'} relevance)"
        )

    def semantic_relevance(self, users: Tensor, items: Tensor) -> Tensor:
        r""":math:`s(u, i) = \langle z'_u, z'_i \rangle` for paired ``users``/``items`` (same shape)."""
        return (self.semantic_user[users] * self.semantic_item[items]).sum(dim=-1)

    # ------------------------------------------------------------------ S3
    def _generator(self, device: torch.device) -> torch.Generator:
        if self._neg_generator is None or self._neg_generator.device != torch.device(device):
            self._neg_generator = torch.Generator(device=device).manual_seed(self.neg_seed)
        return self._neg_generator

    def negative_items(self, interaction, user_e: Tensor, item_e: Tensor) -> Tensor:
        """S3: one negative per row, by ``llmhni_neg_mode`` (see the module docstring)."""
        fallback = interaction[self.NEG_ITEM_ID]
        if self.neg_mode == "uniform":
            return fallback
        user = interaction[self.USER_ID]
        with torch.no_grad():
            positives = TrainingPositives.from_keys(self.positive_keys, self.n_items)
            cand = draw_candidates(
                user, self.n_items, self.neg_candidates, positives, fallback, self._generator(user.device)
            )
            scores = candidate_scores(user_e[user], item_e, cand)
            if self.neg_mode == "dns":
                pick = select_negatives("dns", scores)
            else:
                relevance = candidate_scores(self.semantic_user[user], self.semantic_item, cand)
                threshold = self.fn_threshold[user]
                pick = select_negatives("semantic", scores, relevance, threshold, self.neg_topk)
                dropped = relevance > threshold.unsqueeze(1)
                self.sampling_stats[0] += user.numel()
                self.sampling_stats[1] += dropped.sum()
                self.sampling_stats[2] += dropped.all(dim=1).sum()
        return cand.gather(1, pick.unsqueeze(1)).squeeze(1)

    def negative_sampling_stats(self, reset: bool = False) -> Dict[str, float]:
        """Semantic mode: rows sampled, share of candidates dropped as likely false negatives,
        share of rows where every candidate was dropped (since construction or the last reset)."""
        rows, dropped, all_dropped = (int(v) for v in self.sampling_stats.tolist())
        stats = {
            "rows": rows,
            "dropped_candidate_share": dropped / max(rows * self.neg_candidates, 1),
            "all_dropped_row_share": all_dropped / max(rows, 1),
        }
        if reset:
            self.sampling_stats.zero_()
        return stats


class LLMHNI_LightGCN(DenoisingMixin, LLMHNIMixin, BackboneLightGCN):
    """LLMHNI with the LightGCN backbone (see the module docstring)."""


class LLMHNI_NGCF(DenoisingMixin, LLMHNIMixin, BackboneNGCF):
    """LLMHNI with the NGCF backbone (see the module docstring)."""

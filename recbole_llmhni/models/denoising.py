r"""S7-S8 inside the model: train and rank on :math:`G'`, plus :math:`\mathcal L_{de}` and :math:`\mathcal L_{hal}`.

:class:`DenoisingMixin` sits in front of a :class:`~recbole_llmhni.models.graph_recommender.GraphRecommender`
(and of the S3 sampler mixin) and uses only the backbone's hooks. With :math:`G` the training
graph, :math:`G'` the graph rewritten by S4-S7
(:meth:`LLMHNIDataset.denoised_graph <recbole_llmhni.data.dataset.LLMHNIDataset.denoised_graph>`)
and :math:`P(\cdot)` the backbone's propagation, each training step computes

.. math::
    H' = P(\hat A_{G'}), \qquad H = P(\hat A_G), \qquad
    V = P(\hat A_{\tilde G}), \qquad V' = P(\hat A_{\tilde G'}),

    \mathcal L_{total} = \mathcal L_{rec}(H') + \lambda_1\,\mathcal L_{de}(H, H')
                        + \lambda_2\,\mathcal L_{hal}(V, V'),

where :math:`\mathcal L_{rec}` is the backbone's BPR + L2 on :math:`H'` with S3's negatives,
:math:`\tilde G, \tilde G'` are edge-dropped views (rate :math:`\rho`) redrawn at the start of
every epoch, and both contrastive terms are InfoNCE over the batch's distinct users and items
(:mod:`recbole_llmhni.denoise.losses`): the same node in the other graph is the positive, the
batch's other nodes are the negatives. Training rows whose pair S7 removed from :math:`G'` (a
positive the LLM judged noisy) are dropped from :math:`\mathcal L_{rec}`; ranking
(``predict`` / ``full_sort_predict``) uses :math:`H'`.

Config keys (defaults in ``properties/overall.yaml``):

``llmhni_denoise``
    S4-S8 on; ``False`` is the ablation "w/o denoising": :math:`G' = G`, no
    :math:`\mathcal L_{de}` / :math:`\mathcal L_{hal}`.
``llmhni_lambda1``, ``llmhni_lambda2``
    weights :math:`\lambda_1` of :math:`\mathcal L_{de}` and :math:`\lambda_2` of
    :math:`\mathcal L_{hal}`; ``0`` removes the term (``llmhni_lambda2: 0`` is "w/o L_hal").
    Both default to ``0``: measured at 0.1, they changed amazon-books' test Recall@20 by at
    most +0.0016, and on ml-100k they stall the ranking loss from a fresh initialisation
    (with ``llmhni_warm_start`` they do not stall, but end below the default); README,
    "Results".
``llmhni_cl_temperature``
    InfoNCE temperature :math:`\tau` of both terms.
``llmhni_edge_drop_rate``
    :math:`\rho`, the edge-drop rate of the two views of :math:`\mathcal L_{hal}`.
``llmhni_warm_start``
    start training from S4's ``Rec_pre`` (the same backbone trained on :math:`G` with plain
    BPR) instead of a fresh initialisation: every parameter of the backbone is copied. Needs
    ``llmhni_pretrain_backbone`` to be the model's own backbone (its default).
"""
from __future__ import annotations

from logging import getLogger
from typing import Optional, Tuple

import torch
from torch import Tensor

from recbole_llmhni.denoise.losses import cross_graph_infonce, view_contrast
from recbole_llmhni.models.graph import drop_edges

__all__ = ["DenoisingMixin"]


class DenoisingMixin:
    """Adds :math:`G'`, :math:`\\mathcal L_{de}` and :math:`\\mathcal L_{hal}` to a GraphRecommender."""

    def init_denoising(self, config, dataset, relevance=None) -> None:
        """Read the S8 keys and, with denoising on, build or load :math:`G'` (S4-S7).

        Called at the end of the model's ``__init__``. ``relevance`` is what the semantic
        rater needs (the model's semantic embeddings); ``None`` with an LLM rater.
        """
        self.denoise: bool = bool(config["llmhni_denoise"])
        self.lambda1: float = float(config["llmhni_lambda1"] or 0.0) if self.denoise else 0.0
        self.lambda2: float = float(config["llmhni_lambda2"] or 0.0) if self.denoise else 0.0
        self.cl_temperature: float = float(config["llmhni_cl_temperature"] or 0.2)
        self.edge_drop_rate: float = float(config["llmhni_edge_drop_rate"] or 0.0)
        self.denoised_graph = None
        self._views: Optional[Tuple[Tensor, Tensor]] = None
        self._view_generator = torch.Generator(device=self.device)
        self._view_generator.manual_seed(int(config["seed"] or 0) + 1)
        self.warm_start: bool = bool(config["llmhni_warm_start"])
        if self.warm_start:
            self.load_backbone_weights(dataset.rec_pre())
        if not self.denoise:
            return
        graph = dataset.denoised_graph(relevance=relevance)
        self.denoised_graph = graph
        users = torch.as_tensor(graph.users, dtype=torch.long, device=self.device)
        items = torch.as_tensor(graph.items, dtype=torch.long, device=self.device)
        self.register_buffer("prime_users", users, persistent=False)
        self.register_buffer("prime_items", items, persistent=False)
        self.register_buffer("norm_adj_prime", self.build_adjacency(users, items), persistent=False)
        getLogger().info(
            f"S8: training on G' ({len(graph.users)} edges: +{len(graph.added)} hard, "
            f"-{len(graph.removed)} noisy); lambda1={self.lambda1}, lambda2={self.lambda2}, "
            f"tau={self.cl_temperature}, edge drop={self.edge_drop_rate}"
        )

    def load_backbone_weights(self, rec_pre: torch.nn.Module) -> None:
        """Copy every parameter of ``rec_pre`` (S4's backbone) into this model (warm start).

        Raises ``ValueError`` when ``rec_pre`` is another backbone (a parameter missing here,
        or of another shape): set ``llmhni_pretrain_backbone`` to this model's backbone.
        """
        own = dict(self.named_parameters())
        mismatched = [name for name, p in rec_pre.named_parameters()
                      if name not in own or own[name].shape != p.shape]
        if mismatched:
            raise ValueError(
                f"llmhni_warm_start: Rec_pre ({type(rec_pre).__name__}) does not fit "
                f"{type(self).__name__} (parameters {mismatched[:3]}); set llmhni_pretrain_backbone "
                "to the model's own backbone (or leave it empty), or llmhni_warm_start: False."
            )
        with torch.no_grad():
            for name, p in rec_pre.named_parameters():
                own[name].copy_(p.detach().to(own[name].device))
        getLogger().info(f"S8: warm start from Rec_pre ({sum(1 for _ in rec_pre.parameters())} parameter tensors of {type(rec_pre).__name__} copied)")

    # ------------------------------------------------------------------ hooks
    def rec_adjacency(self) -> Tensor:
        """:math:`\\hat A_{G'}` with denoising on, else the backbone's :math:`\\hat A_G`."""
        return self.norm_adj_prime if self.denoised_graph is not None else self.norm_adj

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

    def calculate_loss(self, interaction):
        if self.denoised_graph is not None and len(self.denoised_graph.removed):
            removed = self.denoised_graph.is_removed(interaction[self.USER_ID], interaction[self.ITEM_ID])
            kept = torch.nonzero(~removed).squeeze(1)
            if 0 < len(kept) < len(removed):  # a batch of removed pairs only is left as it is
                interaction = interaction[kept]
        return super().calculate_loss(interaction)

    def extra_losses(self, interaction, user_e: Tensor, item_e: Tensor, user: Tensor, pos: Tensor, neg: Tensor):
        """``(lambda1 * L_de, lambda2 * L_hal)``, each present iff its weight is non-zero.

        ``user_e`` / ``item_e`` are :math:`H'`, already propagated for :math:`\\mathcal L_{rec}`.
        """
        terms = tuple(super().extra_losses(interaction, user_e, item_e, user, pos, neg))
        if self.denoised_graph is None:
            return terms
        items = torch.cat([pos, neg.reshape(-1)])
        if self.lambda1 > 0:
            h = self.propagate(self.norm_adj)
            terms += (self.lambda1 * cross_graph_infonce(h, (user_e, item_e), user, items, self.cl_temperature),)
        if self.lambda2 > 0:
            if self._views is None:
                self._views = self._draw_views()
            view_g = self.propagate(self._views[0])
            view_gp = self.propagate(self._views[1])
            terms += (self.lambda2 * view_contrast(view_g, view_gp, user, items, self.cl_temperature),)
        return terms

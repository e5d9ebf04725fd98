r"""Abstract graph recommender: embeddings + a propagation module + BPR, any adjacency.

:class:`GraphRecommender` is a RecBole ``GeneralRecommender`` (pairwise input) that owns

* ``user_embedding`` / ``item_embedding`` (the ego embeddings :math:`E`),
* ``propagation``, a module ``(adj, ego) -> out`` chosen by the subclass
  (:mod:`recbole_llmhni.models.propagation`),
* the training interactions ``train_users`` / ``train_items`` (the split RecBole hands the
  model) and their normalised adjacency ``norm_adj`` (:math:`\hat A_G`). All three are
  non-persistent buffers: they follow ``.to(device)`` and stay out of checkpoints.

Propagation on any graph::

    user_e, item_e = model.propagate()          # training graph G
    user_e, item_e = model.propagate(adj_prime) # G', an edge-dropped view, ...

Training step (:meth:`calculate_loss`), with the seams a subclass overrides marked *hook*::

    user_e, item_e = propagate(rec_adjacency())                          # hook: rec_adjacency
    neg            = negative_items(interaction, user_e, item_e)         # hook
    rec_loss       = bpr_loss(user, pos, neg, user_e, item_e)            # hook
                   # = BPR(<u,i+>, <u,i->) + reg_weight * regularization(...)  (hook, abstract)
    extras         = extra_losses(interaction, user_e, item_e, user, pos, neg)  # hook, default ()
    return rec_loss if not extras else (rec_loss, *extras)

RecBole's trainer sums a returned tuple and logs each term. A subclass must return the same
number of extra terms at every step. Ranking (:meth:`predict`, :meth:`full_sort_predict`)
propagates on :meth:`rec_adjacency` too and caches the full-sort embeddings in
``restore_user_e`` / ``restore_item_e`` until the next training step, as RecBole does.

Subclasses implement :meth:`build_propagation`, :meth:`regularization` and
:meth:`reset_parameters` (see :mod:`recbole_llmhni.models.backbones`).

Determinism: rows are gathered with ``index_select``, not ``tensor[index]``. On CPU (torch
2.13, 2 threads) the backward of advanced indexing (``index_put_`` with accumulation) sums
duplicate rows in a varying order, so RecBole's own LightGCN / NGCF are not bit-reproducible
run to run (parameters drift by ~1e-8 within one epoch). ``index_select`` backward is
deterministic, so a seeded run here repeats bit for bit. Subclasses should gather the same
way.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.loss import BPRLoss, EmbLoss
from recbole.utils import InputType
from torch import Tensor, nn

from recbole_llmhni.models.graph import IdArray, as_layout, normalized_adjacency

__all__ = ["GraphRecommender"]


class GraphRecommender(GeneralRecommender):
    r"""Base class of the plugin's graph recommenders (LightGCN / NGCF backbones and LLMHNI).

    Config keys read here: ``embedding_size``, ``reg_weight``, ``require_pow`` (RecBole's) and
    ``llmhni_adj_layout`` (``"csr"``, the default, or ``"coo"``: sparse layout of every
    adjacency the model builds; ``"coo"`` reproduces RecBole's float summation order bit for
    bit, ``"csr"`` is several times faster on CPU; see :mod:`recbole_llmhni.models.graph`).

    Construction order (it fixes how the seeded random stream is consumed, which is why a
    backbone's initial parameters equal RecBole's):
    ``user_embedding``, ``item_embedding``, :meth:`build_propagation`, then, after the
    adjacency is built, :meth:`reset_parameters`.
    """

    input_type = InputType.PAIRWISE

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.reg_weight: float = config["reg_weight"]
        self.require_pow: bool = bool(config["require_pow"])
        self.adj_layout: torch.layout = as_layout(config["llmhni_adj_layout"] or "csr")

        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        self.propagation: nn.Module = self.build_propagation(config)
        self.mf_loss = BPRLoss()
        self.reg_loss = EmbLoss()

        # full-sort cache, saved with checkpoints like RecBole's LightGCN / NGCF
        self.restore_user_e: Optional[Tensor] = None
        self.restore_item_e: Optional[Tensor] = None
        self.other_parameter_name = ["restore_user_e", "restore_item_e"]

        inter = dataset.inter_matrix(form="coo")
        self.register_buffer(
            "train_users", torch.as_tensor(inter.row, dtype=torch.long, device=self.device), persistent=False
        )
        self.register_buffer(
            "train_items", torch.as_tensor(inter.col, dtype=torch.long, device=self.device), persistent=False
        )
        self.register_buffer("norm_adj", self.build_adjacency(self.train_users, self.train_items), persistent=False)

        self.reset_parameters()

    # ------------------------------------------------------------------ subclass API
    def build_propagation(self, config) -> nn.Module:
        """*Abstract.* Return the propagation module ``(adj [N,N] sparse, ego [N,d]) -> [N, d_out]``."""
        raise NotImplementedError

    def regularization(
        self, user: Tensor, pos: Tensor, neg: Tensor, u_e: Tensor, pos_e: Tensor, neg_e: Tensor
    ) -> Tensor:
        r"""*Abstract.* L2 term :math:`\Omega` of the ranking loss (multiplied by ``reg_weight``).

        ``user``/``pos``/``neg`` are id tensors ``[B]``; ``u_e``/``pos_e``/``neg_e`` the
        propagated rows ``[B, d_out]`` the BPR term used.
        """
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """*Abstract.* (Re-)initialise every parameter, as the matching RecBole model does."""
        raise NotImplementedError

    # ------------------------------------------------------------------ graphs
    def build_adjacency(self, users: IdArray, items: IdArray) -> Tensor:
        r""":math:`\hat A` of an interaction list over this model's users and items, in its layout.

        Built on the ids' device (tensors) or on the model's device (numpy arrays).
        """
        device = users.device if isinstance(users, Tensor) else self.device
        return normalized_adjacency(users, items, self.n_users, self.n_items, device=device, layout=self.adj_layout)

    def rec_adjacency(self) -> Tensor:
        """*Hook.* The graph the ranking loss and the predictions propagate on (default: ``norm_adj``, i.e. G).

        A subclass that changes this graph after training has started (G' rebuilt) should call
        :meth:`clear_cache`, so the next full-sort evaluation does not rank with stale embeddings.
        """
        return self.norm_adj

    def get_ego_embeddings(self) -> Tensor:
        """:math:`E = [E_U; E_I]`, shape ``[n_users + n_items, embedding_size]``."""
        return torch.cat([self.user_embedding.weight, self.item_embedding.weight], dim=0)

    def propagate(self, adj: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Propagate the ego embeddings on ``adj`` (``None``: the training graph ``norm_adj``).

        Returns ``(user_emb [n_users, d_out], item_emb [n_items, d_out])``.
        """
        out = self.propagation(self.norm_adj if adj is None else adj, self.get_ego_embeddings())
        user_e, item_e = torch.split(out, [self.n_users, self.n_items])
        return user_e, item_e

    def propagate_nodes(self, adj: Tensor, users: Tensor, items: Tensor) -> Tuple[Tensor, Tensor]:
        """Rows ``users`` of the user and ``items`` of the item output of :meth:`propagate` ``(adj)``.

        Through the propagation module's ``forward_rows`` where it has one (the last layer for
        these nodes only; cheaper when a loss reads a few hundred of them), else the full
        propagation, indexed. Returns ``(user_rows [len(users), d_out], item_rows [len(items), d_out])``.
        """
        rows = torch.cat([users, items + self.n_users])
        ego = self.get_ego_embeddings()
        forward_rows = getattr(self.propagation, "forward_rows", None)
        out = forward_rows(adj, ego, rows) if forward_rows is not None else self.propagation(adj, ego).index_select(0, rows)
        user_rows, item_rows = torch.split(out, [users.numel(), items.numel()])
        return user_rows, item_rows

    def forward(self) -> Tuple[Tensor, Tensor]:
        """RecBole's ``forward``: propagation on :meth:`rec_adjacency`."""
        return self.propagate(self.rec_adjacency())

    # ------------------------------------------------------------------ training
    def negative_items(self, interaction, user_e: Tensor, item_e: Tensor) -> Tensor:
        """*Hook.* Negative item ids ``[B]`` for the batch (default: RecBole's sampled ``neg_item_id``)."""
        return interaction[self.NEG_ITEM_ID]

    def bpr_loss(self, user: Tensor, pos: Tensor, neg: Tensor, user_e: Tensor, item_e: Tensor) -> Tensor:
        r"""*Hook.* Ranking loss on propagated embeddings.

        .. math::
            \mathcal L_{rec} = -\frac1B \sum_b \log\big(10^{-10} + \sigma(\langle e_u, e_{i^+}\rangle
            - \langle e_u, e_{i^-}\rangle)\big) + \lambda_{reg}\, \Omega
        """
        u_e, pos_e, neg_e = user_e.index_select(0, user), item_e.index_select(0, pos), item_e.index_select(0, neg)
        pos_scores = torch.mul(u_e, pos_e).sum(dim=1)
        neg_scores = torch.mul(u_e, neg_e).sum(dim=1)
        mf_loss = self.mf_loss(pos_scores, neg_scores)
        return mf_loss + self.reg_weight * self.regularization(user, pos, neg, u_e, pos_e, neg_e)

    def extra_losses(
        self, interaction, user_e: Tensor, item_e: Tensor, user: Tensor, pos: Tensor, neg: Tensor
    ) -> Tuple[Tensor, ...]:
        """*Hook.* Further weighted loss terms (e.g. contrastive), added to the ranking loss.

        Default ``()``. Return the same number of terms at every step (RecBole logs them
        per position).
        """
        return ()

    def clear_cache(self) -> None:
        """Drop the full-sort embedding cache (done at every training step)."""
        self.restore_user_e, self.restore_item_e = None, None

    def calculate_loss(self, interaction):
        if self.restore_user_e is not None or self.restore_item_e is not None:
            self.clear_cache()
        user = interaction[self.USER_ID]
        pos = interaction[self.ITEM_ID]
        user_e, item_e = self.forward()
        neg = self.negative_items(interaction, user_e, item_e)
        rec_loss = self.bpr_loss(user, pos, neg, user_e, item_e)
        extras = tuple(self.extra_losses(interaction, user_e, item_e, user, pos, neg))
        return (rec_loss, *extras) if extras else rec_loss

    # ------------------------------------------------------------------ ranking
    def predict(self, interaction) -> Tensor:
        user = interaction[self.USER_ID]
        item = interaction[self.ITEM_ID]
        user_e, item_e = self.forward()
        return torch.mul(user_e.index_select(0, user), item_e.index_select(0, item)).sum(dim=1)

    def full_sort_predict(self, interaction) -> Tensor:
        user = interaction[self.USER_ID]
        if self.restore_user_e is None or self.restore_item_e is None:
            self.restore_user_e, self.restore_item_e = self.forward()
        scores = torch.matmul(self.restore_user_e[user], self.restore_item_e.transpose(0, 1))
        return scores.view(-1)

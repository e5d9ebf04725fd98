r"""S8's auxiliary losses: cross-graph alignment :math:`\mathcal L_{de}` and hallucination-robust
view contrast :math:`\mathcal L_{hal}` (DESIGN.md section 1, S8).

Both are node-level InfoNCE between two representations of the same nodes, computed over the
*distinct* users and the *distinct* items of a training batch (a node repeated in the batch
would otherwise be its own negative). For one node type with anchors :math:`a_k` and
positives :math:`b_k`, :math:`k = 1..n` (rows of the two views for the batch's distinct
nodes), cosine similarity :math:`\cos` and temperature :math:`\tau`:

.. math::
    \mathrm{InfoNCE}(A, B) = -\frac{1}{n} \sum_{k=1}^{n}
        \log \frac{\exp(\cos(a_k, b_k) / \tau)}{\sum_{m=1}^{n} \exp(\cos(a_k, b_m) / \tau)}

(the same node in the other view is the positive, the batch's other nodes of that type are
the negatives; SGL's form, one direction). Per loss, the user and item terms are summed:

.. math::
    \mathcal L(H, H') = \mathrm{InfoNCE}(H_U[\mathcal U_B], H'_U[\mathcal U_B])
                      + \mathrm{InfoNCE}(H_I[\mathcal I_B], H'_I[\mathcal I_B])

* :func:`cross_graph_infonce` -- :math:`\mathcal L_{de}` with :math:`H` the propagation on
  :math:`G` and :math:`H'` the propagation on :math:`G'`.
* :func:`view_contrast` -- :math:`\mathcal L_{hal}` with two edge-dropped views, one of
  :math:`G` and one of :math:`G'` (drop rate :math:`\rho`, redrawn by the caller).

A view is a pair ``(user_emb [n_U, d], item_emb [n_I, d])``, as
``GraphRecommender.propagate`` returns. Gradients flow into both views. Properties (tested):
finite for any input (normalisation with an epsilon, log-softmax), at its minimum over
permutations when the views agree, tending to 0 for agreeing views of well-separated nodes
as :math:`\tau \to 0`, and :math:`\log n` for views that carry no information about each
other (all cosines equal).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["info_nce", "cross_graph_infonce", "view_contrast"]

View = Tuple[Tensor, Tensor]


def info_nce(anchor: Tensor, positive: Tensor, tau: float) -> Tensor:
    r"""Mean InfoNCE of rows ``anchor[k]`` vs ``positive[k]`` with in-set negatives (see above).

    Args:
        anchor, positive: ``[n, d]``, row k of both is the same node.
        tau: temperature :math:`\tau > 0`.

    Returns:
        Scalar tensor; ``0`` (with a gradient path) for ``n == 0``.
    """
    if tau <= 0:
        raise ValueError(f"temperature must be > 0, got {tau}")
    if anchor.shape != positive.shape or anchor.dim() != 2:
        raise ValueError(f"expected two [n, d] tensors of one shape, got {tuple(anchor.shape)} and {tuple(positive.shape)}")
    if anchor.shape[0] == 0:
        return anchor.sum() * 0.0 + positive.sum() * 0.0
    a = F.normalize(anchor, p=2, dim=1, eps=1e-12)
    b = F.normalize(positive, p=2, dim=1, eps=1e-12)
    logits = a @ b.T / tau  # [n, n], diagonal = positives
    target = torch.arange(a.shape[0], device=a.device)
    return F.cross_entropy(logits, target)


def _node_infonce(view_a: View, view_b: View, users: Tensor, items: Tensor, tau: float) -> Tensor:
    users = torch.unique(users.reshape(-1))
    items = torch.unique(items.reshape(-1))
    user_a, item_a = view_a
    user_b, item_b = view_b
    return info_nce(user_a[users], user_b[users], tau) + info_nce(item_a[items], item_b[items], tau)


def cross_graph_infonce(h: View, h_prime: View, users: Tensor, items: Tensor, tau: float) -> Tensor:
    r""":math:`\mathcal L_{de}`: InfoNCE between the propagations on :math:`G` and :math:`G'`.

    Args:
        h: ``(user_emb, item_emb)`` propagated on :math:`G`.
        h_prime: ``(user_emb, item_emb)`` propagated on :math:`G'`.
        users: the batch's user ids ``[B]`` (duplicates allowed; each distinct user counts once).
        items: the batch's item ids (positives, and negatives if the caller wants them), any shape.
        tau: temperature.

    Returns:
        Scalar :math:`\mathrm{InfoNCE}_U + \mathrm{InfoNCE}_I` (module docstring).
    """
    return _node_infonce(h, h_prime, users, items, tau)


def view_contrast(view_g: View, view_g_prime: View, users: Tensor, items: Tensor, tau: float) -> Tensor:
    r""":math:`\mathcal L_{hal}`: InfoNCE between an edge-dropped view of :math:`G` and one of :math:`G'`.

    The caller draws the two views (e.g. ``models.graph.drop_edges`` with rate :math:`\rho` on
    each edge list, then ``build_adjacency`` and ``propagate``), redrawn every epoch. An edge
    the LLM added to :math:`G'` moves :math:`G'`'s view away from :math:`G`'s only through
    the neighbourhoods it touches, so the loss pulls the two together where the rest of the
    graph does not support the edge.

    Args and return as :func:`cross_graph_infonce`.
    """
    return _node_infonce(view_g, view_g_prime, users, items, tau)

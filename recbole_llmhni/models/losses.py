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

**Scale gate, node subsample, perturbation** (the form trained with; defaults in
``properties/overall.yaml``). Per node type, with :math:`S \subseteq` the batch's distinct
nodes drawn uniformly, :math:`|S| \le n_{max}` (``llmhni_cl_nodes``), and
:math:`r_A = \frac{1}{|S|}\sum_{k \in S} \lVert a_k \rVert_2` the mean row norm,

.. math::
    \ell(A, B) = g \cdot \mathrm{InfoNCE}\big(\tilde A_S, \tilde B_S\big), \qquad
    g = \mathrm{sg}\Big[\min\Big(1, \frac{r_A r_B}{r_{ref}^2}\Big)\Big], \qquad
    \tilde x = x + \epsilon\, \mathrm{sign}(x) \odot \frac{\delta}{\lVert \delta \rVert_2},\
    \delta \sim U(0, 1)^d

(:math:`\mathrm{sg}` = stop-gradient; :math:`r_{ref}` = ``llmhni_cl_scale_ref``,
:math:`\epsilon` = ``llmhni_cl_eps``, SimGCL's perturbation). With :math:`r_{ref} = 0`,
:math:`n_{max} = 0`, :math:`\epsilon = 0` this is the plain form above.

Why the gate. InfoNCE on L2-normalised rows is invariant to the embeddings' scale, so its
gradient scales as :math:`1/r`, while BPR's (:math:`\langle e_u, e_i \rangle`) scales as
:math:`r`. At RecBole's initial scale (propagated rows :math:`r \approx 0.1`) the contrast's
gradient is ~20-100x BPR's, Adam's step follows it, and BPR never grows the embeddings: the
stall. Below :math:`r_{ref}` the gate makes the contrast's gradient scale as :math:`r`, like
BPR's, so their ratio no longer depends on the scale; at and above :math:`r_{ref}` it is the
plain InfoNCE. Measured on ml-100k, LLMHNI_LightGCN, fresh start, :math:`\lambda_1 = \lambda_2
= 0.1`, :math:`\tau = 0.2`, 256 nodes, 10 epochs, test Recall@20: no gate 0.012 (BPR stays at
:math:`\ln 2`), :math:`\epsilon = 0.1` 0.046, :math:`\epsilon = 1` (3 epochs) 0.057, the gate
with :math:`r_{ref} = 1` 0.276 (S8 off: 0.321). At :math:`\lambda = 0.01` without the gate
the stall lasts 40 epochs (valid Recall@20 0.191 vs 0.344 gated). The perturbation alone
does not lift the stall and is off by default.

Temperature and weights (ml-100k, fresh start, gate on, 256 nodes, lazy every 4 steps).
Both weights 0.1, 10 epochs, test Recall@20: LightGCN 0.308 at :math:`\tau = 0.5`, 0.276 at
0.2 (every step); NGCF 0.271 at 0.5, 0.204 at 0.2 (S8 off: 0.321 / 0.335). Both weights
0.1 end below S8 off after 40 epochs (valid 0.274 vs 0.330): on dense data the uniformity
these terms impose competes with BPR. Converged (early stopping on valid Recall@20),
LightGCN valid / test: S8 off 0.3562 / 0.3965; 0.01 at 0.5: 0.3566 / 0.3949; 0.01 at
0.2: 0.3509 / 0.3933; 0.003 at 0.2: 0.3561 / 0.3936; 0.03 at 0.2 after 40 epochs: 0.3278
(S8 off 0.3301, 0.01: 0.3436). NGCF, 40 epochs, 0.01 at 0.5: valid / test 0.3305 / 0.3760
(S8 off 0.3384 / 0.3788).

Why the subsample. The two :math:`n \times n` similarity matrices dominate the cost
(:math:`n` ~ 940 users and ~1,500 items per 2,048-row batch on ml-100k: ~100 ms of a step on
one core); 256 nodes per type cost ~4 ms.

A view is a pair ``(user_emb [n_U, d], item_emb [n_I, d])``, as
``GraphRecommender.propagate`` returns. Gradients flow into both views. Properties (tested):
finite for any input (normalisation with an epsilon, log-softmax), at its minimum over
permutations when the views agree, tending to 0 for agreeing views of well-separated nodes
as :math:`\tau \to 0`, and :math:`\log n` for views that carry no information about each
other (all cosines equal).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["info_nce", "row_logsumexp", "perturb", "subsample", "scale_gate", "contrast_nodes", "node_contrast", "cross_graph_infonce",
           "view_contrast"]

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


#: elements of one ``[rows, n]`` logit block of :func:`row_logsumexp` (4 MiB of float32: stays in cache)
LSE_BLOCK_ELEMENTS = 1 << 20


class _RowLogSumExp(torch.autograd.Function):
    """:func:`row_logsumexp`'s kernel: forward keeps only the ``[B]`` result; backward recomputes each block."""

    @staticmethod
    def forward(ctx, a: Tensor, c: Tensor, rows: int) -> Tensor:  # type: ignore[override]
        out = a.new_empty(a.shape[0])
        for s in range(0, a.shape[0], rows):
            out[s:s + rows] = torch.logsumexp(a[s:s + rows] @ c.T, dim=1)
        ctx.save_for_backward(a, c, out)
        ctx.rows = rows
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        a, c, lse = ctx.saved_tensors
        rows = ctx.rows
        grad_a = torch.empty_like(a) if ctx.needs_input_grad[0] else None
        grad_c = torch.zeros_like(c) if ctx.needs_input_grad[1] else None
        for s in range(0, a.shape[0], rows):
            # softmax of the block, scaled by the upstream gradient, all in place
            p = (a[s:s + rows] @ c.T).sub_(lse[s:s + rows, None]).exp_().mul_(grad[s:s + rows, None])
            if grad_a is not None:
                grad_a[s:s + rows] = p @ c
            if grad_c is not None:
                grad_c.addmm_(p.T, a[s:s + rows])
        return grad_a, grad_c, None


def row_logsumexp(a: Tensor, c: Tensor) -> Tensor:
    r""":math:`\log \sum_j \exp(a_b^\top c_j)` for every row :math:`b` of ``a`` ``[B, d]`` over ``c`` ``[n, d]``.

    Equal to ``torch.logsumexp(a @ c.T, dim=1)`` in value and gradient (tested), but the
    ``[B, n]`` logits are never held whole: blocks of rows of about ``LSE_BLOCK_ELEMENTS``
    logits are formed, reduced and dropped, and recomputed in the backward pass. An InfoNCE
    whose denominator runs over every user (RLMRec-Con on 11,000 users, a 2,048-row batch) is
    bound by memory traffic over that ``[B, n]`` matrix, not by its matrix products; in blocks
    that fit in cache the term's forward and backward take about half the time on one CPU
    thread (``benchmarks/row_logsumexp.py``).
    """
    if a.dim() != 2 or c.dim() != 2 or a.shape[1] != c.shape[1]:
        raise ValueError(f"expected [B, d] and [n, d] tensors, got {tuple(a.shape)} and {tuple(c.shape)}")
    if c.shape[0] == 0:
        raise ValueError("row_logsumexp over an empty candidate set is -inf; pass at least one candidate row")
    rows = max(1, LSE_BLOCK_ELEMENTS // c.shape[0])
    if rows >= a.shape[0]:
        return torch.logsumexp(a @ c.T, dim=1)
    return _RowLogSumExp.apply(a, c, rows)


def perturb(x: Tensor, eps: float, generator: Optional[torch.Generator] = None) -> Tensor:
    r"""SimGCL's perturbation: :math:`x + \epsilon\, \mathrm{sign}(x) \odot \delta / \lVert\delta\rVert_2`,
    :math:`\delta \sim U(0, 1)^d` per row (each row moves by exactly :math:`\epsilon`, within
    its own orthant). ``eps == 0`` returns ``x`` itself.
    """
    if eps < 0:
        raise ValueError(f"perturbation eps must be >= 0, got {eps}")
    if eps == 0 or x.numel() == 0:
        return x
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + eps * torch.sign(x) * F.normalize(noise, p=2, dim=1)


def subsample(ids: Tensor, max_nodes: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """At most ``max_nodes`` of ``ids``, drawn uniformly without replacement (``0``: all of them)."""
    if max_nodes <= 0 or ids.numel() <= max_nodes:
        return ids
    pick = torch.randperm(ids.numel(), generator=generator, device=ids.device)[:max_nodes]
    return ids.index_select(0, pick)


def scale_gate(a: Tensor, b: Tensor, ref: float) -> Tensor:
    r"""Detached weight :math:`\min(1, r_a r_b / r_{ref}^2)`, :math:`r` = mean row norm (``ref <= 0``: 1)."""
    if ref <= 0 or a.numel() == 0:
        return a.new_ones(())
    with torch.no_grad():
        r2 = a.norm(dim=1).mean() * b.norm(dim=1).mean()
        return torch.clamp(r2 / (ref * ref), max=1.0)


def contrast_nodes(users: Tensor, items: Tensor, max_nodes: int = 0,
                   generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
    """The nodes a contrast term reads: the distinct ``users`` and the distinct ``items``, each
    subsampled to at most ``max_nodes`` (:func:`subsample`; users drawn first)."""
    users = subsample(torch.unique(users.reshape(-1)), max_nodes, generator)
    items = subsample(torch.unique(items.reshape(-1)), max_nodes, generator)
    return users, items


def node_contrast(rows_a: View, rows_b: View, tau: float, eps: float = 0.0,
                  generator: Optional[torch.Generator] = None, scale_ref: float = 0.0) -> Tensor:
    r""":math:`g_U \ell_U + g_I \ell_I` of two views already restricted to the same nodes, row for row.

    ``rows_a = (user_rows_a, item_rows_a)`` and ``rows_b`` alike, e.g. from
    ``GraphRecommender.propagate_nodes`` for the nodes of :func:`contrast_nodes`.
    """
    def term(a: Tensor, b: Tensor) -> Tensor:
        gate = scale_gate(a, b, scale_ref)
        return gate * info_nce(perturb(a, eps, generator), perturb(b, eps, generator), tau)

    return term(rows_a[0], rows_b[0]) + term(rows_a[1], rows_b[1])


def _node_infonce(
    view_a: View, view_b: View, users: Tensor, items: Tensor, tau: float,
    eps: float = 0.0, generator: Optional[torch.Generator] = None, max_nodes: int = 0,
    scale_ref: float = 0.0,
) -> Tensor:
    users, items = contrast_nodes(users, items, max_nodes, generator)
    rows_a = (view_a[0].index_select(0, users), view_a[1].index_select(0, items))
    rows_b = (view_b[0].index_select(0, users), view_b[1].index_select(0, items))
    return node_contrast(rows_a, rows_b, tau, eps, generator, scale_ref)


def cross_graph_infonce(
    h: View, h_prime: View, users: Tensor, items: Tensor, tau: float,
    eps: float = 0.0, generator: Optional[torch.Generator] = None, max_nodes: int = 0,
    scale_ref: float = 0.0,
) -> Tensor:
    r""":math:`\mathcal L_{de}`: InfoNCE between the propagations on :math:`G` and :math:`G'`.

    Args:
        h: ``(user_emb, item_emb)`` propagated on :math:`G`.
        h_prime: ``(user_emb, item_emb)`` propagated on :math:`G'`.
        users: the batch's user ids ``[B]`` (duplicates allowed; each distinct user counts once).
        items: the batch's item ids (positives, and negatives if the caller wants them), any shape.
        tau: temperature.
        eps: SimGCL perturbation :math:`\epsilon` of both views' rows (0: none).
        generator: random source of the perturbation and the subsample.
        max_nodes: :math:`n_{max}`, at most this many distinct users (and items) (0: all).
        scale_ref: :math:`r_{ref}` of the scale gate (0: no gate).

    Returns:
        Scalar :math:`g_U \ell_U + g_I \ell_I` (module docstring).
    """
    return _node_infonce(h, h_prime, users, items, tau, eps, generator, max_nodes, scale_ref)


def view_contrast(
    view_g: View, view_g_prime: View, users: Tensor, items: Tensor, tau: float,
    eps: float = 0.0, generator: Optional[torch.Generator] = None, max_nodes: int = 0,
    scale_ref: float = 0.0,
) -> Tensor:
    r""":math:`\mathcal L_{hal}`: InfoNCE between an edge-dropped view of :math:`G` and one of :math:`G'`.

    The caller draws the two views (e.g. ``models.graph.drop_edges`` with rate :math:`\rho` on
    each edge list, then ``build_adjacency`` and ``propagate``), redrawn every epoch. An edge
    the LLM added to :math:`G'` moves :math:`G'`'s view away from :math:`G`'s only through
    the neighbourhoods it touches, so the loss pulls the two together where the rest of the
    graph does not support the edge.

    Args and return as :func:`cross_graph_infonce`.
    """
    return _node_infonce(view_g, view_g_prime, users, items, tau, eps, generator, max_nodes, scale_ref)

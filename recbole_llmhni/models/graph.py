r"""Bipartite user-item graphs as torch sparse matrices: build, perturb, multiply.

Pure functions; no model state. Nodes are numbered users first, then items:
user :math:`u \mapsto u`, item :math:`i \mapsto n_U + i`, :math:`N = n_U + n_I`.

Every adjacency built here is the symmetric normalised bipartite adjacency of RecBole's
LightGCN / NGCF (``get_norm_adj_mat``)

.. math::
    A = \begin{pmatrix} 0 & R \\ R^\top & 0 \end{pmatrix}, \qquad
    \hat A = D^{-1/2} A D^{-1/2}, \qquad
    \hat A_{vw} = \frac{A_{vw}}{\sqrt{(d_v + \epsilon)(d_w + \epsilon)}},

with :math:`R_{ui} = 1` iff :math:`(u, i)` is an interaction (duplicates counted once),
:math:`d_v = \sum_w A_{vw}` and :math:`\epsilon = 10^{-7}` (so isolated nodes get an empty row
instead of a division by zero). Values are computed in float64 and stored as float32, with
:math:`d^{-1/2}` taken by numpy's ``power`` like RecBole, so the matrix is bit-identical to
RecBole's (checked by ``tests/test_backbones.py``).

Sparse layout. Both are supported; CSR is the default of the plugin's models:

* COO (RecBole's layout) goes through ``torch.sparse.mm``, RecBole's exact operation.
* CSR goes through :func:`spmm`, which reuses :math:`\hat A` as :math:`\hat A^\top` in the
  backward (valid because :math:`\hat A` is symmetric). Micro-benchmark, ml-100k
  (161,616 stored entries, d = 64, 2 threads): two propagation layers forward + backward
  3.4 ms, against 33 ms for COO and 21 ms for CSR with torch's own backward.

Seconds per training epoch on ml-100k, RecBole defaults, CPU limited to 2 threads
(``benchmarks/backbone_speed.py``, on a quiet 16-core machine, torch 2.11):

==========  ================  =============  =============
model       RecBole's model   plugin, COO    plugin, CSR
==========  ================  =============  =============
LightGCN    1.82              1.73           0.48
NGCF        3.78              3.24           1.52
==========  ================  =============  =============

CSR results differ from COO only in float32 summation order (max abs difference ~2e-7 per
product). With COO, a backbone's forward pass and loss equal RecBole's bit for bit.
:func:`spmm`'s CSR path requires a symmetric matrix. Every matrix :func:`normalized_adjacency` returns is
symmetric. :func:`sparse_dropout` returns COO because its output is not symmetric.
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "IdArray",
    "LayoutLike",
    "as_layout",
    "normalized_adjacency",
    "drop_edges",
    "sparse_dropout",
    "spmm",
    "csr_rows",
    "spmm_rows",
]

IdArray = Union[np.ndarray, Tensor]
LayoutLike = Union[str, torch.layout]
DeviceLike = Union[str, torch.device, None]

EPSILON = 1e-7  # RecBole's degree epsilon (LightGCN / NGCF get_norm_adj_mat)
_LAYOUTS = {"coo": torch.sparse_coo, "csr": torch.sparse_csr}


def as_layout(layout: LayoutLike) -> torch.layout:
    """Map ``"coo"`` / ``"csr"`` (or a ``torch.layout``) to ``torch.sparse_coo`` / ``torch.sparse_csr``."""
    if isinstance(layout, torch.layout):
        if layout not in _LAYOUTS.values():
            raise ValueError(f"unsupported sparse layout {layout}; use torch.sparse_coo or torch.sparse_csr")
        return layout
    try:
        return _LAYOUTS[str(layout).lower()]
    except KeyError:
        raise ValueError(f"unknown sparse layout {layout!r}; expected one of {sorted(_LAYOUTS)}") from None


def _as_ids(ids: IdArray, device: DeviceLike) -> Tensor:
    t = ids if isinstance(ids, Tensor) else torch.from_numpy(np.asarray(ids))
    return t.to(device=device, dtype=torch.long).reshape(-1)


def normalized_adjacency(
    users: IdArray,
    items: IdArray,
    n_users: int,
    n_items: int,
    device: DeviceLike = None,
    layout: LayoutLike = "csr",
) -> Tensor:
    r"""Symmetric normalised bipartite adjacency :math:`\hat A = D^{-1/2} A D^{-1/2}`.

    Args:
        users: user ids of the interactions, shape ``[E]`` (numpy or torch, any int dtype).
        items: item ids of the interactions, shape ``[E]``. Duplicate pairs count once.
        n_users: number of users :math:`n_U` (ids in ``[0, n_U)``).
        n_items: number of items :math:`n_I` (ids in ``[0, n_I)``).
        device: where to build the matrix. ``None`` means the device of ``users`` if it is a
            tensor, otherwise CPU.
        layout: ``"csr"`` (default, fast) or ``"coo"`` (RecBole's layout). The COO matrix is
            coalesced, so its entries are in row-major order like RecBole's.

    Returns:
        float32 sparse tensor of shape ``[N, N]`` with ``2 * |unique (u, i)|`` stored entries.
    """
    layout = as_layout(layout)
    if device is None and isinstance(users, Tensor):
        device = users.device
    u, i = _as_ids(users, device), _as_ids(items, device)
    if u.shape != i.shape:
        raise ValueError(f"users and items differ in length: {u.numel()} vs {i.numel()}")
    if u.numel() and (int(u.min()) < 0 or int(u.max()) >= n_users or int(i.min()) < 0 or int(i.max()) >= n_items):
        raise ValueError(f"interaction ids out of range for n_users={n_users}, n_items={n_items}")
    n = n_users + n_items

    # Both directions, deduplicated and sorted row-major through one int64 key.
    row = torch.cat([u, i + n_users])
    col = torch.cat([i + n_users, u])
    key = torch.unique(row * n + col, sorted=True)
    row, col = key // n, key % n

    deg = torch.bincount(row, minlength=n)
    # d^{-1/2} with numpy's pow (libm), as RecBole: torch's vectorised pow differs by 1 ulp in
    # float64 for about a quarter of the degrees. One length-N vector goes to the host and back.
    d_inv_sqrt = np.power(deg.cpu().numpy().astype(np.float64) + EPSILON, -0.5)
    d_inv_sqrt = torch.from_numpy(d_inv_sqrt).to(device)
    values = (d_inv_sqrt[row] * d_inv_sqrt[col]).to(torch.float32)

    if layout == torch.sparse_coo:
        return torch.sparse_coo_tensor(
            torch.stack([row, col]), values, (n, n), is_coalesced=True, check_invariants=False
        )
    crow = torch.zeros(n + 1, dtype=torch.long, device=row.device)
    torch.cumsum(deg, dim=0, out=crow[1:])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, (n, n), check_invariants=False)


def drop_edges(
    users: IdArray,
    items: IdArray,
    rate: float,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor]:
    r"""Edge dropout on the interaction list (SGL's ``ED`` view), before normalisation.

    Keeps :math:`\lfloor E (1 - \rho) \rfloor` interactions drawn uniformly without
    replacement, in their original order; pass the result to :func:`normalized_adjacency`
    to get the re-normalised view :math:`\hat A_\rho` (degrees of the *kept* graph).

    Args:
        users, items: the interaction list, shape ``[E]``.
        rate: drop rate :math:`\rho \in [0, 1)`.
        generator: a ``torch.Generator`` on the ids' device. With a seeded one, the
            result is deterministic. ``None`` uses torch's global generator.

    Returns:
        ``(users, items)`` as long tensors on the ids' device, shape ``[floor(E (1 - rate))]``.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop rate must be in [0, 1), got {rate}")
    device = users.device if isinstance(users, Tensor) else None
    u, i = _as_ids(users, device), _as_ids(items, device)
    keep = int(u.numel() * (1.0 - rate))
    kept = torch.randperm(u.numel(), generator=generator, device=u.device)[:keep].sort().values
    return u[kept], i[kept]


def sparse_dropout(
    adj: Tensor,
    p: float,
    training: bool = True,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""Drop stored entries of a sparse matrix with probability ``p`` and rescale the rest.

    .. math::
        \tilde A_{vw} = \frac{m_{vw}}{1 - p} \hat A_{vw}, \qquad m_{vw} \sim \mathrm{Bernoulli}(1 - p)

    NGCF's ``node_dropout`` (RecBole's ``SparseDropout``), with the same mask draw
    (``floor(U[0,1) + 1 - p)``, one uniform per stored entry), so seeded runs match RecBole.
    The mask is drawn per entry, so the result is not symmetric. It is returned as COO,
    which :func:`spmm` multiplies with the general (transposing) backward.
    """
    if not training or p == 0.0:
        return adj
    if not 0.0 < p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    coo = adj if adj.layout == torch.sparse_coo else adj.to_sparse_coo()
    indices, values = coo._indices(), coo._values()
    keep_prob = 1.0 - p
    mask = (torch.rand(values.size(), generator=generator, device=values.device) + keep_prob).floor().bool()
    return torch.sparse_coo_tensor(
        indices[:, mask],
        values[mask] * (1.0 / keep_prob),
        coo.shape,
        is_coalesced=coo.is_coalesced(),
        check_invariants=False,
    )


class _SymmetricCSRMM(torch.autograd.Function):
    r""":math:`Y = \hat A X`; backward :math:`\partial L / \partial X = \hat A^\top G = \hat A G`.

    Only valid for a symmetric :math:`\hat A`.
    """

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[None, Tensor]:  # type: ignore[override]
        return None, torch.sparse.mm(ctx.adj, grad)


def spmm(adj: Tensor, x: Tensor) -> Tensor:
    r"""Sparse-dense product :math:`\hat A X`, differentiable in :math:`X`.

    * COO: ``torch.sparse.mm``, RecBole's exact operation (works for any matrix).
    * CSR: the matrix must be **symmetric** (true of every :func:`normalized_adjacency`). The
      backward reuses :math:`\hat A` as :math:`\hat A^\top`, about 6x faster than torch's CSR
      backward on CPU. No gradient flows to the matrix values.
    """
    if adj.layout == torch.sparse_csr:
        return _SymmetricCSRMM.apply(adj, x)
    return torch.sparse.mm(adj, x)


def csr_rows(adj: Tensor, rows: Tensor) -> Tensor:
    r"""Rows ``rows`` of a CSR matrix, as a CSR matrix ``[len(rows), n_cols]`` (rows in the given order)."""
    crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
    start = crow.index_select(0, rows)
    counts = crow.index_select(0, rows + 1) - start
    new_crow = torch.zeros(rows.numel() + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(counts, 0, out=new_crow[1:])
    total = int(new_crow[-1])
    # position of each kept entry in adj: its row's start + its offset within the row
    at = torch.repeat_interleave(start - new_crow[:-1], counts, output_size=total) + torch.arange(
        total, dtype=crow.dtype, device=crow.device)
    return torch.sparse_csr_tensor(new_crow, col.index_select(0, at), val.index_select(0, at),
                                   (rows.numel(), adj.shape[1]), check_invariants=False)


class _SymmetricCSRRowsMM(torch.autograd.Function):
    r""":math:`Y = \hat A_{S,:} X`; backward :math:`\partial L / \partial X = \hat A_{S,:}^\top G`,
    with :math:`\hat A_{S,:}^\top` built as CSR (the rows' entries sorted by column, stable)."""

    @staticmethod
    def forward(ctx, adj: Tensor, rows: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        sub = csr_rows(adj, rows)
        ctx.sub, ctx.n = sub, x.shape[0]
        return torch.sparse.mm(sub, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[None, None, Tensor]:  # type: ignore[override]
        sub, n = ctx.sub, ctx.n
        crow, col = sub.crow_indices(), sub.col_indices()
        owner = torch.repeat_interleave(torch.arange(sub.shape[0], device=grad.device), crow[1:] - crow[:-1],
                                        output_size=col.numel())
        col_sorted, order = torch.sort(col, stable=True)
        t_crow = torch.zeros(n + 1, dtype=crow.dtype, device=crow.device)
        torch.cumsum(torch.bincount(col_sorted, minlength=n), 0, out=t_crow[1:])
        transposed = torch.sparse_csr_tensor(t_crow, owner.index_select(0, order), sub.values().index_select(0, order),
                                             (n, sub.shape[0]), check_invariants=False)
        return None, None, torch.sparse.mm(transposed, grad)


def spmm_rows(adj: Tensor, rows: Tensor, x: Tensor) -> Tensor:
    r"""Rows ``rows`` of :math:`\hat A X`, i.e. :math:`\hat A_{S,:} X` ``[len(rows), d]``, differentiable in :math:`X`.

    For a symmetric CSR :math:`\hat A` (every :func:`normalized_adjacency`) only the stored
    entries of those rows are touched, forward and backward: the cost is
    :math:`O(\mathrm{nnz}(\hat A_{S,:})\, d)` instead of :math:`O(\mathrm{nnz}(\hat A)\, d)`.
    Other layouts (COO, e.g. :func:`sparse_dropout`'s output) fall back to
    ``spmm(adj, x).index_select(0, rows)``. Equal to the full product's rows up to float
    summation order.
    """
    if adj.layout == torch.sparse_csr:
        return _SymmetricCSRRowsMM.apply(adj, rows, x)
    return spmm(adj, x).index_select(0, rows)

r"""Message passing of LightGCN and NGCF over a normalised adjacency handed in per call.

The modules hold only the propagation's own weights (none for LightGCN, the Bi-interaction
layers for NGCF). The adjacency is an argument of ``forward``, so the same parameters
can propagate on the training graph :math:`G`, on a rewritten graph :math:`G'`, and on
edge-dropped views. The maths, the parameter creation order and the random draws
(dropout) are those of RecBole 1.2.1's ``LightGCN`` / ``NGCF``.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recbole_llmhni.models.graph import sparse_dropout, spmm, spmm_rows

__all__ = ["LightGCNPropagation", "BiGNNConv", "NGCFPropagation"]


class LightGCNPropagation(nn.Module):
    r"""LightGCN propagation (He et al., SIGIR 2020), layer combination by the mean.

    .. math::
        E^{(0)} = E, \qquad E^{(k+1)} = \hat A E^{(k)}, \qquad
        \mathrm{out} = \frac{1}{K+1} \sum_{k=0}^{K} E^{(k)}

    Args:
        n_layers: number of propagation layers :math:`K` (RecBole's ``n_layers``).

    Shapes:
        ``adj``: ``[N, N]`` sparse, ``ego``: ``[N, d]`` and output ``[N, d]``.
    """

    def __init__(self, n_layers: int) -> None:
        super().__init__()
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {n_layers}")
        self.n_layers = n_layers

    def layers(self, adj: Tensor, ego: Tensor, noise: Optional[Callable[[Tensor], Tensor]] = None) -> List[Tensor]:
        r""":math:`[E^{(0)}, E^{(1)}, \dots, E^{(K)}]`; with ``noise``, :math:`E^{(k+1)} = \mathrm{noise}(\hat A E^{(k)})`.

        ``noise`` is applied to every propagated layer (not to :math:`E^{(0)}`) before it feeds
        the next one: SimGCL / XSimGCL's per-layer perturbation
        (:mod:`recbole_llmhni.models.simgcl`).
        """
        out: List[Tensor] = [ego]
        x = ego
        for _ in range(self.n_layers):
            x = spmm(adj, x)
            if noise is not None:
                x = noise(x)
            out.append(x)
        return out

    def forward(self, adj: Tensor, ego: Tensor) -> Tensor:
        return torch.stack(self.layers(adj, ego), dim=1).mean(dim=1)

    def forward_rows(self, adj: Tensor, ego: Tensor, rows: Tensor) -> Tensor:
        r"""``forward(adj, ego).index_select(0, rows)``, with the last layer computed for ``rows`` only.

        :math:`E^{(K)}_S = \hat A_{S,:} E^{(K-1)}` (:func:`~recbole_llmhni.models.graph.spmm_rows`):
        of the :math:`K` products over the whole graph (forward and backward) one is replaced by
        a product over the rows of :math:`S`. For losses that read a few hundred nodes.
        """
        if self.n_layers == 0:
            return ego.index_select(0, rows)
        out: List[Tensor] = [ego]
        x = ego
        for _ in range(self.n_layers - 1):
            x = spmm(adj, x)
            out.append(x)
        picked = [layer.index_select(0, rows) for layer in out] + [spmm_rows(adj, rows, x)]
        return torch.stack(picked, dim=1).mean(dim=1)

    def extra_repr(self) -> str:
        return f"n_layers={self.n_layers}"


class BiGNNConv(nn.Module):
    r"""One NGCF Bi-interaction layer (RecBole's ``BiGNNLayer``).

    .. math::
        \mathrm{out} = (\hat A + I) X W_1 + b_1 + \big((\hat A X) \odot X\big) W_2 + b_2

    :math:`(\hat A + I) X` is computed as :math:`X + \hat A X`, so no identity matrix is built.
    ``lin_agg`` / ``lin_inter`` are RecBole's ``linear`` / ``interActTransform`` and are
    created in that order, so they consume the random stream the same way.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.lin_agg = nn.Linear(in_dim, out_dim)
        self.lin_inter = nn.Linear(in_dim, out_dim)

    def forward(self, adj: Tensor, x: Tensor) -> Tensor:
        side = spmm(adj, x)
        return self.lin_agg(x + side) + self.lin_inter(side * x)

    def forward_rows(self, adj: Tensor, x: Tensor, rows: Tensor) -> Tensor:
        """``forward(adj, x).index_select(0, rows)``, computing only those rows."""
        side = spmm_rows(adj, rows, x)
        own = x.index_select(0, rows)
        return self.lin_agg(own + side) + self.lin_inter(side * own)

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}"


class NGCFPropagation(nn.Module):
    r"""NGCF propagation (Wang et al., SIGIR 2019) as in RecBole.

    .. math::
        \tilde A = \mathrm{NodeDrop}_{p_n}(\hat A), \qquad
        E^{(k+1)} = \mathrm{normalize}_2\Big(\mathrm{Dropout}_{p_m}\big(
            \mathrm{LeakyReLU}_{0.2}(\mathrm{BiGNN}_k(\tilde A, E^{(k)}))\big)\Big), \qquad
        \mathrm{out} = E^{(0)} \,\Vert\, E^{(1)} \,\Vert \cdots \Vert\, E^{(K)}

    Args:
        embedding_size: input width :math:`d_0` (the ego embedding size).
        hidden_size_list: output widths :math:`d_1, \dots, d_K` (RecBole's ``hidden_size_list``,
            which does *not* include the embedding size).
        node_dropout: :math:`p_n`, per-entry dropout of the adjacency in training (0 = off).
        message_dropout: :math:`p_m`, dropout of each layer's output in training.

    Shapes:
        ``adj``: ``[N, N]`` sparse, ``ego``: ``[N, d_0]`` and output ``[N, d_0 + ... + d_K]``.
    """

    def __init__(
        self,
        embedding_size: int,
        hidden_size_list: Sequence[int],
        node_dropout: float = 0.0,
        message_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        sizes = [int(embedding_size), *map(int, hidden_size_list)]
        self.node_dropout = float(node_dropout)
        self.message_dropout = nn.Dropout(message_dropout)
        self.layers = nn.ModuleList(BiGNNConv(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        self.out_dim = sum(sizes)

    def forward(self, adj: Tensor, ego: Tensor) -> Tensor:
        if self.node_dropout != 0.0:
            adj = sparse_dropout(adj, self.node_dropout, self.training)
        outputs: List[Tensor] = [ego]
        x = ego
        for layer in self.layers:
            x = F.leaky_relu(layer(adj, x), negative_slope=0.2)
            x = F.normalize(self.message_dropout(x), p=2, dim=1)
            outputs.append(x)
        return torch.cat(outputs, dim=1)

    def forward_rows(self, adj: Tensor, ego: Tensor, rows: Tensor) -> Tensor:
        """``forward(adj, ego)``'s rows ``rows``, with the last layer computed for those rows only
        (as :meth:`LightGCNPropagation.forward_rows`). Message dropout then draws for those rows
        only, so the random stream is consumed differently from :meth:`forward`."""
        if self.node_dropout != 0.0:
            adj = sparse_dropout(adj, self.node_dropout, self.training)
        outputs: List[Tensor] = [ego]
        x = ego
        for layer in self.layers[:-1]:
            x = F.normalize(self.message_dropout(F.leaky_relu(layer(adj, x), negative_slope=0.2)), p=2, dim=1)
            outputs.append(x)
        picked = [out.index_select(0, rows) for out in outputs]
        if len(self.layers):
            last = F.leaky_relu(self.layers[-1].forward_rows(adj, x, rows), negative_slope=0.2)
            picked.append(F.normalize(self.message_dropout(last), p=2, dim=1))
        return torch.cat(picked, dim=1)

    def extra_repr(self) -> str:
        return f"node_dropout={self.node_dropout}"

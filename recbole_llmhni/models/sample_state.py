r"""Per-pair state of the denoising baselines, keyed by the pair :math:`(u, i)`, never by batch position.

RecBole reshuffles the training rows every epoch, so "row 17 of batch 3" is a different pair
each epoch; a method that remembers something about a sample (DCF's loss history, the last
weight a reweighting method gave it, whether it was dropped) must find it again by the pair.
:class:`PairState` holds the sorted keys :math:`k = u \cdot n_I + i` of the training pairs
and, per named field, one value per pair; :meth:`PairState.index` maps a batch's
``(users, items)`` to positions in those arrays with one ``searchsorted``.
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn

__all__ = ["PairState"]


class PairState(nn.Module):
    """Named per-pair tensors over the unique training pairs (non-persistent buffers).

    ``PairState(users, items, n_items, fields={"loss_mean": 0.0, "seen": 0})`` makes one
    float (or long, for an ``int`` initial value) tensor per field, filled with its initial
    value. Duplicate pairs share one slot.
    """

    def __init__(self, users: Tensor, items: Tensor, n_items: int, fields: Dict[str, float]) -> None:
        super().__init__()
        self.n_items = int(n_items)
        keys = torch.unique(users.long() * self.n_items + items.long())  # sorted
        self.register_buffer("keys", keys, persistent=False)
        self.names = tuple(fields)
        for name, initial in fields.items():
            dtype = torch.long if isinstance(initial, bool) or isinstance(initial, int) else torch.float32
            if isinstance(initial, bool):
                dtype = torch.bool
            self.register_buffer(name, torch.full((keys.numel(),), initial, dtype=dtype, device=keys.device),
                                 persistent=False)

    def __len__(self) -> int:
        return int(self.keys.numel())

    def index(self, users: Tensor, items: Tensor) -> Tensor:
        """Positions of the pairs ``(users[b], items[b])`` in the state; a pair not in it raises ``KeyError``."""
        keys = users.long() * self.n_items + items.long()
        at = torch.searchsorted(self.keys, keys).clamp_(max=max(len(self) - 1, 0))
        if len(self) == 0 or not bool((self.keys[at] == keys).all()):
            raise KeyError("a batch pair is not a training pair of this model")
        return at

    def pairs(self, mask: Tensor) -> "tuple[Tensor, Tensor]":
        """``(users, items)`` of the pairs where ``mask`` (one bool per pair) is set."""
        keys = self.keys[mask]
        return keys // self.n_items, keys % self.n_items

r"""S7: the rewritten training graph :math:`G'` and its provenance.

.. math::
    G' = \big(G \setminus \{(u, i) \in C_{pos} : \text{label} = \text{noisy}\}\big)
         \cup \{(u, i) \in C_{neg} : \text{label} = \text{hard}\}

with :math:`G` the set of (unique) training pairs, :math:`C_{pos}` the low-score positives
and :math:`C_{neg}` the high-score negatives of S5. Positives rated hard stay, negatives
rated noisy stay absent, ``undetermined`` pairs are left as they are.

Artifacts (``graph/<key>/``): ``added.tsv`` and ``removed.tsv`` -- one row per changed edge
with its provenance: ``user, item`` (raw ids), ``user_view, item_view`` (the two ratings),
``score`` (``Rec_pre``'s score), ``rank`` (within the user), ``rater`` (the rater's name).
:math:`G'` itself is not stored: it is :math:`G` with these two lists applied
(:func:`rewrite_edges`), done when the artifact is loaded against the training split.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from recbole_llmhni.denoise.rating import LABEL_HARD, LABEL_NOISY, RatedCandidates
from recbole_llmhni.artifacts import StageDir, atomic_write_text, read_tsv, write_tsv

__all__ = ["EdgeList", "edge_changes", "rewrite_edges", "save_changes", "load_changes"]

@dataclass(frozen=True)
class EdgeList:
    """Parallel arrays of internal user and item ids."""

    users: np.ndarray
    items: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", np.asarray(self.users, dtype=np.int64).reshape(-1))
        object.__setattr__(self, "items", np.asarray(self.items, dtype=np.int64).reshape(-1))
        if self.users.shape != self.items.shape:
            raise ValueError(f"users and items differ in length: {len(self.users)} vs {len(self.items)}")

    def __len__(self) -> int:
        return len(self.users)

    def keys(self, n_items: int) -> np.ndarray:
        """``user * n_items + item`` per edge (int64), the set representation used here."""
        return self.users * np.int64(n_items) + self.items

    @classmethod
    def from_keys(cls, keys: np.ndarray, n_items: int) -> "EdgeList":
        return cls(keys // n_items, keys % n_items)

    @classmethod
    def empty(cls) -> "EdgeList":
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


def edge_changes(rated: RatedCandidates) -> Tuple[np.ndarray, np.ndarray]:
    """Row masks of ``rated``: ``(to_add, to_remove)`` = (hard negatives, noisy positives)."""
    is_pos = rated.cands.is_pos
    return (~is_pos) & (rated.label == LABEL_HARD), is_pos & (rated.label == LABEL_NOISY)


def rewrite_edges(graph: EdgeList, remove: EdgeList, add: EdgeList, n_items: int) -> Tuple[EdgeList, EdgeList, EdgeList]:
    r""":math:`G' = (G \setminus R) \cup A` on unique pairs, vectorised.

    Returns ``(g_prime, added, removed)``, each sorted by (user, item): ``added`` are the pairs
    of ``add`` not already in :math:`G`, ``removed`` the pairs of ``remove`` that were in
    :math:`G` (and are not re-added by ``add``).
    """
    g = np.unique(graph.keys(n_items))
    r = np.unique(remove.keys(n_items))
    a = np.unique(add.keys(n_items))
    kept = g[~np.isin(g, r)]
    g_prime = np.union1d(kept, a)
    added = a[~np.isin(a, g)]
    removed = g[~np.isin(g, g_prime)]
    return EdgeList.from_keys(g_prime, n_items), EdgeList.from_keys(added, n_items), EdgeList.from_keys(removed, n_items)


def _provenance(rated: RatedCandidates, rows: np.ndarray, user_tokens: np.ndarray, item_tokens: np.ndarray) -> Dict[str, Any]:
    c = rated.cands
    return {
        "user": user_tokens[c.users[rows]],
        "item": item_tokens[c.items[rows]],
        "user_view": rated.user_view[rows],
        "item_view": rated.item_view[rows],
        "score": c.score[rows],
        "rank": c.rank[rows],
        "rater": np.full(len(rows), rated.rater, dtype=object),
    }


def save_changes(
    stage: StageDir,
    rated: RatedCandidates,
    user_tokens: np.ndarray,
    item_tokens: np.ndarray,
    material: Dict[str, Any],
    extra_files: Optional[Dict[str, str]] = None,
    **manifest: Any,
) -> None:
    """``added.tsv`` / ``removed.tsv`` with provenance (+ ``extra_files`` texts), manifest last."""
    to_add, to_remove = edge_changes(rated)
    write_tsv(stage.file("added.tsv"), _provenance(rated, np.flatnonzero(to_add), user_tokens, item_tokens))
    write_tsv(stage.file("removed.tsv"), _provenance(rated, np.flatnonzero(to_remove), user_tokens, item_tokens))
    for name, text in (extra_files or {}).items():
        atomic_write_text(stage.file(name), text)
    stage.complete(material, n_added=int(to_add.sum()), n_removed=int(to_remove.sum()), rater=rated.rater, **manifest)


def load_changes(stage: StageDir, token2id: Callable[[str, np.ndarray], np.ndarray]) -> Tuple[EdgeList, EdgeList]:
    """``(add, remove)`` edge lists from the stage's TSVs, internal ids through ``token2id``."""
    out = []
    for name in ("added.tsv", "removed.tsv"):
        t = read_tsv(stage.file(name))
        out.append(EdgeList(token2id("user", t["user"]), token2id("item", t["item"])))
    return out[0], out[1]

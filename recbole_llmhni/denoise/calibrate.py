r"""The semantic stand-in's thresholds, calibrated per dataset from the training positives.

Fixed relevance thresholds do not fit every dataset or encoder: on ml-100k the aligned cosine
of clean training pairs has a median of 0.17, so the old 0.5 / 0.2 made almost every
low-score candidate ``Low`` and the stand-in's labels came from the candidate set, not from
the text. With ``llmhni_semantic_thresholds: quantile`` the stand-in reads
``llmhni_semantic_high`` / ``llmhni_semantic_low`` as quantile levels :math:`q_h, q_l` of
each view's relevance over the *training positives* :math:`G`:

.. math::
    t^{view}_{h} = Q_{q_h}\big(\{ r^{view}(u, i) : (u, i) \in G \}\big), \qquad
    t^{view}_{l} = Q_{q_l}(\cdot),

with the user-centric view :math:`r^{user}(u, i) = s(u, i)` and the item-centric view
:math:`r^{item}(u, i) = \frac1{|L|}\sum_{j \in L} s(j, i)` over up to :math:`L`
(``llmhni_liked_items``) *other* training items :math:`j` of :math:`u`, drawn at random (the
rating request uses the user's best-scored liked items; any of the user's own items is a fair
stand-in for the calibration). A positive is kept (``hard``) only when both views are
``High``, so :math:`q_h` is the share of clean positives, per view, that the stand-in would
call noisy: what it removes then depends on how far a pair's text is from its user's, not on
where the pair sits in Rec_pre's ranking. At most ``max_pairs`` training pairs are sampled
(seeded), which fixes the quantiles to about :math:`\pm 0.005` in level.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

__all__ = ["positive_relevance", "quantile_thresholds"]


def positive_relevance(
    user_z: np.ndarray, item_z: np.ndarray, users: np.ndarray, items: np.ndarray, n_liked: int,
    seed: int, max_pairs: int = 50_000,
) -> Tuple[np.ndarray, np.ndarray]:
    """``(user-view values, item-view values)`` over (a seeded sample of) the training pairs.

    ``user_z`` / ``item_z``: unit vectors by internal id (:math:`s = \\langle z_u, z_i \\rangle`);
    ``users`` / ``items``: the training pairs. A pair whose user has no other training item
    has no item-view value (left out of that view's sample).
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    rng = np.random.default_rng(seed)
    rows = np.arange(len(users)) if len(users) <= max_pairs else np.sort(rng.choice(len(users), max_pairs, replace=False))
    user_view = np.einsum("nd,nd->n", user_z[users[rows]], item_z[items[rows]])

    order = np.argsort(users, kind="stable")
    sorted_users, sorted_items = users[order], items[order]
    starts = np.searchsorted(sorted_users, users[rows], side="left")
    counts = np.searchsorted(sorted_users, users[rows], side="right") - starts
    item_view = np.full(len(rows), np.nan, dtype=np.float64)
    draws = rng.random((len(rows), max(int(n_liked), 1)))
    for k in range(len(rows)):
        own = sorted_items[starts[k]: starts[k] + counts[k]]
        others = own[own != items[rows[k]]]
        if len(others) == 0:
            continue
        pick = others[(draws[k, : min(n_liked, len(others))] * len(others)).astype(np.int64)] if len(others) > n_liked else others
        item_view[k] = float(np.mean(item_z[pick] @ item_z[items[rows[k]]]))
    return user_view.astype(np.float64), item_view[np.isfinite(item_view)]


def quantile_thresholds(user_view: np.ndarray, item_view: np.ndarray, q_high: float, q_low: float) -> Dict[str, float]:
    """``{"user_high", "user_low", "item_high", "item_low"}``: the quantiles of each view's values."""
    if not 0.0 <= q_low <= q_high <= 1.0:
        raise ValueError(f"quantile levels must satisfy 0 <= low ({q_low}) <= high ({q_high}) <= 1")
    if len(user_view) == 0 or len(item_view) == 0:
        raise ValueError("no training pairs to calibrate the semantic stand-in on")
    return {
        "user_high": float(np.quantile(user_view, q_high)),
        "user_low": float(np.quantile(user_view, q_low)),
        "item_high": float(np.quantile(item_view, q_high)),
        "item_low": float(np.quantile(item_view, q_low)),
    }

r"""S3, semantic-guided hard negative sampling, vectorised over the batch.

For every training row :math:`(u, i^+)` of a batch:

1. **Candidates.** :math:`M` items :math:`j_1..j_M` drawn uniformly from
   :math:`\{1, \dots, n_I - 1\}` (0 is RecBole's padding), none a training positive of
   :math:`u` (:func:`draw_candidates`).
2. **Model score** (no gradient), with the propagated embeddings the batch already computed:
   :math:`\hat y_{uj} = \langle e_u, e_j \rangle`.
3. **Semantic relevance** :math:`s(u, j) = \cos(z'_u, z'_j)` (S2's aligned vectors, or the raw
   text embeddings when alignment is off).
4. **Selection** (:func:`select_negatives`), by mode:

   * ``uniform``: the row's own RecBole-sampled negative (no candidates are drawn);
   * ``dns`` (score only, Zhang et al. 2013): :math:`j^* = \arg\max_m \hat y_{uj_m}`;
   * ``semantic`` (LLMHNI): drop likely false negatives
     :math:`F_u = \{j_m : s(u, j_m) > \theta_u\}`, take the :math:`k` survivors with the
     highest :math:`\hat y`, and choose the one of them with the *lowest* :math:`s`:

     .. math::
         j^* = \arg\min_{j \in \operatorname{top-}k_{\hat y}(\{j_m\} \setminus F_u)} s(u, j).

     If every candidate is a likely false negative, the candidate with the lowest :math:`s`
     is chosen (it is the least likely to be a missed positive; a row always gets a negative).

   The per-user threshold :math:`\theta_u` is the :math:`q`-quantile of :math:`s` over the
   user's training positives (:func:`per_user_quantile`), computed once: a candidate at least
   as relevant as the user's typical positive is treated as a missed positive, not a negative.

:func:`sample_negatives` runs steps 1-4 for a batch; it is the one selection of the plugin,
called by the LLMHNI models in-batch (scores from the embeddings the step propagated) and by
the S3 train loader of any other pairwise model (:mod:`recbole_llmhni.semantic.negative_loader`: scores
from the model's ``predict``).

Candidate drawing, our choice (DESIGN.md section 3). RecBole's sampler rejects used ids with a
Python loop per sample, so the candidates are drawn here with torch: uniform draws, then
collisions with the user's training positives (a binary search in the sorted keys
:math:`u \cdot n_I + i`, :class:`TrainingPositives`) are re-drawn, at most
``max_rounds`` times; a candidate still colliding after that (a user who has most of the
catalogue) is replaced by the row's RecBole-sampled negative, which RecBole draws outside the
same training set. So no candidate is ever a training positive. All draws come from the
``generator`` passed in: a seeded generator gives the same choice every time.
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Optional

import torch
from torch import Tensor

from recbole_llmhni.config.schema import NEG_MODES

__all__ = [
    "NEG_MODES",
    "TrainingPositives",
    "draw_candidates",
    "candidate_scores",
    "select_negatives",
    "per_user_quantile",
    "SELECTION_COUNTERS",
    "selection_counts",
    "SemanticFilter",
    "false_negative_thresholds",
    "sample_negatives",
    "sampling_shares",
]


class TrainingPositives:
    r"""Membership test for training pairs: sorted unique keys :math:`u \cdot n_I + i`.

    One binary search per query (``torch.searchsorted``), on the keys' device; memory is one
    int64 per training interaction. With ``dense`` (:meth:`dense_mask`, one bool per
    user-item pair, for small catalogues) a query is one index instead: same answers, about
    3x faster on ml-100k (``benchmarks/semantic_sampling_speed.py``).
    """

    def __init__(self, users: Tensor, items: Tensor, n_items: int) -> None:
        self.n_items = int(n_items)
        self.keys: Tensor = torch.unique(users.long() * self.n_items + items.long(), sorted=True)
        self.dense: Optional[Tensor] = None

    @classmethod
    def from_keys(cls, keys: Tensor, n_items: int, dense: Optional[Tensor] = None) -> "TrainingPositives":
        """Wrap keys built earlier (sorted, unique), e.g. a model buffer that follows ``.to(device)``;
        ``dense``: their :meth:`dense_mask`, if built."""
        self = cls.__new__(cls)
        self.n_items, self.keys, self.dense = int(n_items), keys, dense
        return self

    def dense_mask(self, n_users: int) -> Tensor:
        r"""Flat bool ``[n_users * n_items]``, ``True`` at :math:`u \cdot n_I + i` of each training pair."""
        mask = torch.zeros(int(n_users) * self.n_items, dtype=torch.bool, device=self.keys.device)
        mask[self.keys] = True
        return mask

    @property
    def users(self) -> Tensor:
        """User id of each unique training pair (sorted by user, then item)."""
        return self.keys // self.n_items

    @property
    def items(self) -> Tensor:
        """Item id of each unique training pair."""
        return self.keys % self.n_items

    def contains(self, users: Tensor, items: Tensor) -> Tensor:
        """``True`` where ``(users, items)`` is a training pair; ``users`` broadcasts against ``items``."""
        query = users.long() * self.n_items + items.long()
        if self.dense is not None:
            return self.dense[query]
        if self.keys.numel() == 0:
            return torch.zeros_like(query, dtype=torch.bool)
        pos = torch.searchsorted(self.keys, query).clamp_(max=self.keys.numel() - 1)
        return self.keys[pos] == query


def draw_candidates(
    users: Tensor,
    n_items: int,
    num: int,
    positives: TrainingPositives,
    fallback: Tensor,
    generator: Optional[torch.Generator] = None,
    max_rounds: int = 10,
) -> Tensor:
    r"""``num`` uniform candidates per row, never a training positive of the row's user.

    Args:
        users: user id of each row ``[B]``.
        n_items: :math:`n_I`; candidates are drawn from ``1 .. n_I - 1``.
        num: :math:`M \ge 1`.
        positives: the training pairs.
        fallback: a valid negative per row ``[B]`` (RecBole's sampled ``neg_item_id``), used for
            any candidate still colliding after ``max_rounds`` re-draws.
        generator: source of randomness (on ``users``' device); ``None`` = torch's global one.
        max_rounds: re-draw rounds for colliding candidates.

    Returns:
        long tensor ``[B, num]``.
    """
    if num < 1:
        raise ValueError(f"the number of candidates must be >= 1, got {num}")
    if n_items < 2:
        raise ValueError(f"need at least one non-padding item, got n_items={n_items}")
    device = users.device
    users = users.long()
    cand = torch.randint(1, n_items, (users.numel(), num), generator=generator, device=device)
    rows, cols = positives.contains(users.unsqueeze(1), cand).nonzero(as_tuple=True)
    for _ in range(max_rounds):
        if rows.numel() == 0:
            break
        redraw = torch.randint(1, n_items, (rows.numel(),), generator=generator, device=device)
        cand[rows, cols] = redraw
        still = positives.contains(users[rows], redraw)
        rows, cols = rows[still], cols[still]
    if rows.numel():
        cand[rows, cols] = fallback.long()[rows]
    return cand


def candidate_scores(row_vectors: Tensor, item_table: Tensor, candidates: Tensor) -> Tensor:
    r"""Inner products :math:`\langle a_b, t_{c_{bm}} \rangle`, shape ``[B, M]``.

    ``row_vectors`` ``[B, d]`` (e.g. the batch users' embeddings), ``item_table`` ``[n_I, d]``,
    ``candidates`` ``[B, M]`` item ids.
    """
    return torch.einsum("bd,bmd->bm", row_vectors, item_table[candidates])


def select_negatives(
    mode: str,
    scores: Tensor,
    relevance: Optional[Tensor] = None,
    threshold: Optional[Tensor] = None,
    topk: int = 1,
) -> Tensor:
    r"""Column index ``[B]`` of the chosen candidate in each row (see the module docstring).

    Args:
        mode: ``"dns"`` or ``"semantic"`` (``"uniform"`` draws no candidates; the model returns
            RecBole's negative before calling this).
        scores: model scores :math:`\hat y` ``[B, M]``.
        relevance: semantic relevance :math:`s` ``[B, M]`` (``semantic`` mode).
        threshold: :math:`\theta_u` of each row ``[B]`` (``semantic`` mode); ``+inf`` drops nothing.
        topk: :math:`k \ge 1` (clipped to :math:`M`).
    """
    if mode == "dns":
        return scores.argmax(dim=1)
    if mode != "semantic":
        raise ValueError(f"select_negatives: mode must be 'dns' or 'semantic', got {mode!r}")
    if relevance is None or threshold is None:
        raise ValueError("semantic selection needs relevance and threshold")
    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    keep = relevance <= threshold.unsqueeze(1)  # not a likely false negative
    masked = scores.masked_fill(~keep, float("-inf"))
    if topk == 1:  # the best-scored survivor
        chosen = masked.argmax(dim=1)
    else:
        top_scores, top_idx = masked.topk(min(topk, scores.shape[1]), dim=1)
        top_rel = relevance.gather(1, top_idx).masked_fill(top_scores == float("-inf"), float("inf"))
        chosen = top_idx.gather(1, top_rel.argmin(dim=1, keepdim=True)).squeeze(1)
    all_dropped = ~keep.any(dim=1)
    return torch.where(all_dropped, relevance.argmin(dim=1), chosen)


#: The counters of :func:`selection_counts`, in order.
SELECTION_COUNTERS = ("rows", "dropped_candidates", "fired_rows", "all_dropped_rows", "changed_rows")


def selection_counts(scores: Tensor, relevance: Tensor, threshold: Tensor, pick: Tensor) -> Tensor:
    r"""What the semantic selection did on one batch: a long tensor of :data:`SELECTION_COUNTERS`.

    With :math:`F_u` the likely false negatives of a row (``relevance > threshold``):

    * ``rows``: rows :math:`B`;
    * ``dropped_candidates``: :math:`\sum_b |F_{u_b}|`, candidates dropped;
    * ``fired_rows``: rows where the filter fired, i.e. dropped the best-scored candidate
      :math:`\arg\max_m \hat y_{bm}` (only then can ``k = 1`` choose anything but DNS's pick);
    * ``all_dropped_rows``: rows where every candidate was dropped;
    * ``changed_rows``: rows whose chosen candidate differs from the best-scored one, i.e.
      where semantic sampling chose another negative than score-only DNS on the same
      candidates (ties in :math:`\hat y` count as the same choice).

    Summed over an epoch they say how much S3 departs from DNS (``changed_rows / rows``).
    """
    dropped = relevance > threshold.unsqueeze(1)
    best = scores.argmax(dim=1, keepdim=True)
    fired = dropped.gather(1, best).squeeze(1)
    changed = scores.gather(1, pick.unsqueeze(1)).squeeze(1) < scores.gather(1, best).squeeze(1)
    return torch.stack([
        torch.tensor(scores.shape[0], device=scores.device), dropped.sum(), fired.sum(),
        dropped.all(dim=1).sum(), changed.sum(),
    ]).long()


class SemanticFilter(NamedTuple):
    r"""What the ``semantic`` selection reads: :math:`z'_U` ``[n_U, d]``, :math:`z'_I` ``[n_I, d]``
    and :math:`\theta_u` ``[n_U]`` (:func:`false_negative_thresholds`), on one device; optionally
    ``table``, :math:`s(u, i)` for every pair flattened ``[n_U * n_I]`` (small catalogues), so a
    candidate's relevance is one index instead of a gather of two vectors."""

    user: Tensor
    item: Tensor
    threshold: Tensor
    table: Optional[Tensor] = None

    def relevance(self, users: Tensor, cand: Tensor) -> Tensor:
        """:math:`s(u, j)` ``[B, M]`` of each row's candidates."""
        if self.table is not None:
            return self.table[users.unsqueeze(1) * self.item.shape[0] + cand]
        return candidate_scores(self.user[users], self.item, cand)


def false_negative_thresholds(user_z: Tensor, item_z: Tensor, positives: TrainingPositives, q: float,
                              n_users: int) -> Tensor:
    r""":math:`\theta_u`: the :math:`q`-quantile of :math:`s(u, i) = \langle z'_u, z'_i \rangle` over
    :math:`u`'s training positives (:func:`per_user_quantile`; ``+inf`` for users without one)."""
    users, items = positives.users, positives.items
    relevance = (user_z[users] * item_z[items]).sum(dim=-1)
    return per_user_quantile(users, relevance, q, n_users)


#: ``score(users [B], candidates [B, M]) -> model scores [B, M]`` (called under ``torch.no_grad``)
Scorer = Callable[[Tensor, Tensor], Tensor]


def sample_negatives(
    mode: str,
    users: Tensor,
    fallback: Tensor,
    score: Scorer,
    positives: TrainingPositives,
    n_items: int,
    num: int,
    topk: int = 1,
    generator: Optional[torch.Generator] = None,
    semantic: Optional[SemanticFilter] = None,
    stats: Optional[Tensor] = None,
) -> Tensor:
    r"""S3 for one batch: one negative item per row. The one selection of the plugin: the LLMHNI
    models call it in-batch with their propagated embeddings, the S3 train loader
    (:mod:`recbole_llmhni.semantic.negative_loader`) with any RecBole model's ``predict``.

    ``uniform`` returns ``fallback`` (the rows' RecBole-sampled negatives). ``dns`` / ``semantic``:
    :func:`draw_candidates` (``num`` = :math:`M` per row, never a training positive), ``score``
    them, then :func:`select_negatives` (``semantic`` drops :math:`s(u, j) > \theta_u`, reads
    ``semantic``); in ``semantic`` mode :func:`selection_counts` is added to ``stats`` in place.
    Runs under ``torch.no_grad``; returns a long tensor ``[B]`` on ``users``' device.
    """
    if mode == "uniform":
        return fallback
    with torch.no_grad():
        cand = draw_candidates(users, n_items, num, positives, fallback, generator)
        scores = score(users, cand)
        if mode == "semantic":
            if semantic is None:
                raise ValueError("llmhni_neg_mode=semantic needs the semantic vectors and thresholds of S1-S2")
            relevance = semantic.relevance(users, cand)
            threshold = semantic.threshold[users]
            pick = select_negatives("semantic", scores, relevance, threshold, topk)
            if stats is not None:
                stats += selection_counts(scores, relevance, threshold, pick).to(stats.device)
        else:
            pick = select_negatives(mode, scores)
    return cand.gather(1, pick.unsqueeze(1)).squeeze(1)


def sampling_shares(counts: Tensor, candidates: int) -> Dict[str, float]:
    """The counters of :func:`selection_counts` summed over an epoch, as shares: rows sampled,
    ``dropped_candidate_share``, ``fired_row_share``, ``all_dropped_row_share``, ``changed_row_share``."""
    c = dict(zip(SELECTION_COUNTERS, (int(v) for v in counts.tolist())))
    rows = c["rows"]
    return {
        "rows": rows,
        "dropped_candidate_share": c["dropped_candidates"] / max(rows * candidates, 1),
        "fired_row_share": c["fired_rows"] / max(rows, 1),
        "all_dropped_row_share": c["all_dropped_rows"] / max(rows, 1),
        "changed_row_share": c["changed_rows"] / max(rows, 1),
    }


def read_sampling_stats(mode: str, counts: Tensor, candidates: int, reset: bool = False) -> Dict[str, float]:
    """What a sampler reports for ``negative_sampling_stats``: :func:`sampling_shares` of
    ``counts`` in ``semantic`` mode (``{}`` in the others), zeroing ``counts`` when ``reset``."""
    if mode != "semantic":
        return {}
    stats = sampling_shares(counts, candidates)
    if reset:
        counts.zero_()
    return stats


def per_user_quantile(users: Tensor, values: Tensor, q: float, n_users: int) -> Tensor:
    r""":math:`\theta_u = \mathrm{quantile}_q\{ v_e : u_e = u \}` for every user, vectorised.

    Linear interpolation between order statistics (``torch.quantile``'s default): with the
    user's :math:`n` values sorted, :math:`v_{(\lfloor p \rfloor)} + (p - \lfloor p \rfloor)
    (v_{(\lceil p \rceil)} - v_{(\lfloor p \rfloor)})`, :math:`p = q (n - 1)`. Users without a
    value get :math:`+\infty`.

    Returns:
        float tensor ``[n_users]`` on ``values``' device.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    users = users.long()
    out = torch.full((n_users,), float("inf"), dtype=values.dtype, device=values.device)
    if users.numel() == 0:
        return out
    by_value = torch.argsort(values)
    order = by_value[torch.argsort(users[by_value], stable=True)]  # by user, then by value
    sorted_values = values[order]
    counts = torch.bincount(users, minlength=n_users)
    starts = torch.cumsum(counts, 0) - counts
    present = counts > 0
    pos = q * (counts[present] - 1).to(values.dtype)
    lo, hi = pos.floor().long(), pos.ceil().long()
    v_lo = sorted_values[starts[present] + lo]
    v_hi = sorted_values[starts[present] + hi]
    out[present] = v_lo + (pos - lo.to(values.dtype)) * (v_hi - v_lo)
    return out

r"""S3's number of candidates :math:`M` chosen per dataset (``llmhni_neg_candidates: auto``).

S3 (and score-only DNS) draws :math:`M` uniform candidates outside the user's training items
and keeps the best-scored one (the best-scored survivor of the false-negative filter). A
larger :math:`M` gives a harder negative, and also a likelier *false* negative: an item the
user likes but has not interacted with in training, which then sits near the top of the
model's ranking. Where users have many unobserved positives (dense histories), a large
:math:`M` turns many hard picks into false negatives; where they have few, it can go further.

**What is measured.** With ``Rec_pre``'s scores :math:`\hat y_{uj}` (S4: the backbone after a
short BPR run on the training split) and the validation pairs as the unobserved positives
that can be seen, the chance that the hard pick of a training row of user :math:`u` is one
of :math:`u`'s validation items is, for :math:`M` draws with replacement from the
:math:`n_u` items outside :math:`u`'s training set,

.. math::
    f_u(M) = \sum_{p \in V_u} \big[(1 - a_p)^M - (1 - a_p - 1/n_u)^M\big], \qquad
    a_p = \frac{|\{j \notin I^{train}_u : \hat y_{uj} > \hat y_{up}\}|}{n_u},

the chance that every candidate scores at most :math:`\hat y_{up}` minus the chance that every
one scores below it (exact without ties; :math:`a_p` is the share of the user's candidate pool
ranked above :math:`p`). Averaged over training rows (S3 draws once per row, so a user counts
:math:`|I^{train}_u|` times), over the users with validation pairs:

.. math::
    F(M) = \frac{\sum_u |I^{train}_u|\, f_u(M)}{\sum_u |I^{train}_u|}.

**The rule** (:func:`choose_candidates`, our design): the largest :math:`M` of
:data:`CANDIDATE_GRID` (the values the ``s3`` benchmark sweeps) with :math:`F(M) \le`
:data:`FALSE_NEGATIVE_BUDGET`, else the smallest. :math:`F` grows with :math:`M`, so this is
"as hard as the budget of known false negatives among the chosen negatives allows".

Measured (``Rec_pre`` of LLMHNI_LightGCN, 30 epochs, seed 2020): ml-100k :math:`F(8, 16, 32)
= 0.058, 0.082, 0.110`; amazon-books (RLMRec's split) :math:`0.0052, 0.0079, 0.0112`. The
converged ``s3`` sweep (q = 0.9, k = 1, validation Recall@20) prefers M = 8 on ml-100k
(0.3586 against 0.3501 and 0.3216) and M = 32 on amazon-books (0.1765 against 0.1743 and
0.1703). Any budget in [0.0112, 0.082) picks those two; :data:`FALSE_NEGATIVE_BUDGET` = 0.03
is about the geometric middle of that gap. It was set after those sweeps, so on these two
datasets the rule is checked in-sample only. On ml-100k even M = 8 is over the budget (the
grid's smallest is taken). :math:`F` counts validation positives only: a larger validation
split raises it (amazon-books holds out a third as many pairs as it trains on, ml-100k an
eighth), and positives never recorded are unseen.

Only the training split (the candidate pools, the row weights) and the validation split are
read; the test split is never an argument. The computation is exact (no draws); with more
than ``max_users`` users with validation pairs, that many are drawn, seeded, without
replacement. Scores are computed in chunks of users (``[chunk, n_I]`` at a time).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

__all__ = ["CANDIDATE_GRID", "FALSE_NEGATIVE_BUDGET", "MAX_USERS", "CandidateCalibration",
           "false_negative_rates", "choose_candidates", "calibrate_candidates", "candidates_in_use"]

#: The numbers of candidates ``auto`` chooses from (those the ``s3`` benchmark sweeps).
CANDIDATE_GRID = (8, 16, 32)
#: The largest share of hard picks that may be validation positives (module docstring).
FALSE_NEGATIVE_BUDGET = 0.03
#: At most this many users with validation pairs are read (drawn, seeded, when there are more).
MAX_USERS = 20000


@dataclass
class CandidateCalibration:
    """Result of :func:`calibrate_candidates` (JSON-ready with :meth:`as_dict`)."""

    neg_candidates: int  #: the chosen :math:`M`
    budget: float  #: the budget :math:`F(M)` was held to
    rates: List[Dict[str, float]] = field(default_factory=list)  #: per M: ``{"M", "false_negative"}``
    n_users: int = 0  #: users read
    n_pairs: int = 0  #: their validation pairs

    def as_dict(self) -> Dict[str, object]:
        return {"neg_candidates": self.neg_candidates, "budget": self.budget, "rates": self.rates,
                "n_users": self.n_users, "n_pairs": self.n_pairs}


def choose_candidates(rates: Sequence[Dict[str, float]], budget: float) -> int:
    """The largest ``M`` whose ``false_negative`` rate is at most ``budget``, else the smallest ``M``."""
    within = [int(r["M"]) for r in rates if r["false_negative"] <= budget]
    return max(within) if within else min(int(r["M"]) for r in rates)


def false_negative_rates(user_e: np.ndarray, item_e: np.ndarray, train_users: np.ndarray, train_items: np.ndarray,
                         valid_users: np.ndarray, valid_items: np.ndarray, grid: Sequence[int] = CANDIDATE_GRID,
                         seed: int = 0, max_users: int = MAX_USERS, chunk: int = 1024) -> CandidateCalibration:
    r""":math:`F(M)` for each ``M`` of ``grid`` (module docstring); ``neg_candidates`` left at 0.

    Args:
        user_e, item_e: ``[n_U, d]`` / ``[n_I, d]``, the scorer's embeddings by internal id
            (:math:`\hat y_{uj} = \langle e_u, e_j \rangle`); item 0 is RecBole's padding, never a candidate.
        train_users, train_items: the training pairs (candidate pools and row weights).
        valid_users, valid_items: the validation pairs (the positives looked for).
        seed: draws the users when there are more than ``max_users``.
    """
    ue = torch.as_tensor(np.asarray(user_e), dtype=torch.float32)
    ie = torch.as_tensor(np.asarray(item_e), dtype=torch.float32)
    n_users, n_items = ue.shape[0], ie.shape[0]
    tu = torch.as_tensor(np.asarray(train_users), dtype=torch.long)
    ti = torch.as_tensor(np.asarray(train_items), dtype=torch.long)
    vu = torch.as_tensor(np.asarray(valid_users), dtype=torch.long)
    vi = torch.as_tensor(np.asarray(valid_items), dtype=torch.long)
    train_keys = torch.unique(tu * n_items + ti)  # sorted, duplicates once
    tu, ti = train_keys // n_items, train_keys % n_items
    n_train = torch.bincount(tu, minlength=n_users)
    # validation pairs that are candidates at all: not a training pair of the user, not padding
    valid_keys = torch.unique(vu * n_items + vi)
    at = torch.searchsorted(train_keys, valid_keys).clamp_(max=max(train_keys.numel() - 1, 0))
    fresh = (train_keys[at] != valid_keys) if train_keys.numel() else torch.ones_like(valid_keys, dtype=torch.bool)
    valid_keys = valid_keys[fresh & (valid_keys % n_items != 0)]
    vu, vi = valid_keys // n_items, valid_keys % n_items
    keep = n_train[vu] > 0  # a user without training rows never gets a negative
    vu, vi = vu[keep], vi[keep]
    users = torch.unique(vu)
    if users.numel() > max_users:
        pick = torch.randperm(users.numel(), generator=torch.Generator().manual_seed(int(seed)))[:max_users]
        users = torch.sort(users[pick]).values
        chosen = torch.zeros(n_users, dtype=torch.bool)
        chosen[users] = True
        vu, vi = vu[chosen[vu]], vi[chosen[vu]]
    grid = [int(m) for m in grid]
    f_user = torch.zeros(len(grid), n_users, dtype=torch.float64)
    train_start = torch.searchsorted(tu, users)
    train_end = torch.searchsorted(tu, users, right=True)
    valid_start = torch.searchsorted(vu, users)
    valid_end = torch.searchsorted(vu, users, right=True)
    for lo in range(0, users.numel(), chunk):
        block = users[lo:lo + chunk]
        row_of = torch.full((n_users,), -1, dtype=torch.long)
        row_of[block] = torch.arange(block.numel())
        scores = ue.index_select(0, block) @ ie.T  # [c, n_I]
        pool = torch.ones_like(scores, dtype=torch.bool)
        pool[:, 0] = False  # padding
        t_lo, t_hi = int(train_start[lo]), int(train_end[lo + block.numel() - 1])
        t_rows = row_of[tu[t_lo:t_hi]]  # the range also holds users without validation pairs (-1)
        known = t_rows >= 0
        pool[t_rows[known], ti[t_lo:t_hi][known]] = False
        n_pool = pool.sum(dim=1).double()  # n_u
        v_lo, v_hi = int(valid_start[lo]), int(valid_end[lo + block.numel() - 1])
        rows, items = row_of[vu[v_lo:v_hi]], vi[v_lo:v_hi]
        own = scores[rows, items]
        above = ((scores.index_select(0, rows) > own.unsqueeze(1)) & pool.index_select(0, rows)).sum(dim=1).double()
        n = n_pool[rows]
        a = above / n
        for g, m in enumerate(grid):
            f_pair = (1.0 - a).pow(m) - (1.0 - a - 1.0 / n).clamp(min=0.0).pow(m)
            f_user[g].index_add_(0, vu[v_lo:v_hi], f_pair)
    weights = n_train.index_select(0, users).double()
    rates = [{"M": m, "false_negative": float((f_user[g].index_select(0, users) * weights).sum() / weights.sum())
              if users.numel() else 0.0} for g, m in enumerate(grid)]
    return CandidateCalibration(0, FALSE_NEGATIVE_BUDGET, rates, int(users.numel()), int(vu.numel()))


def calibrate_candidates(user_e: np.ndarray, item_e: np.ndarray, train_users: np.ndarray, train_items: np.ndarray,
                         valid_users: np.ndarray, valid_items: np.ndarray, seed: int = 0,
                         grid: Sequence[int] = CANDIDATE_GRID, budget: float = FALSE_NEGATIVE_BUDGET,
                         max_users: int = MAX_USERS) -> CandidateCalibration:
    """Choose :math:`M` for ``llmhni_neg_candidates: auto`` from training and validation pairs only
    (:func:`false_negative_rates`, then :func:`choose_candidates`)."""
    found = false_negative_rates(user_e, item_e, train_users, train_items, valid_users, valid_items, grid, seed, max_users)
    found.budget = float(budget)
    found.neg_candidates = choose_candidates(found.rates, budget)
    return found


def candidates_in_use(setting: object, chosen: Optional[int], topk: int, who: str) -> int:
    """The :math:`M` a run samples with: ``llmhni_neg_candidates`` if a number, else (``auto``)
    ``chosen``, the pipeline's "S3 candidates" choice; one-line errors name the key and the fix."""
    if setting == "auto":
        if chosen is None:
            raise ValueError(f"{who}: llmhni_neg_candidates=auto needs the pipeline's S3 candidates stage (run it "
                             "with the validation split) or a number, e.g. --llmhni_neg_candidates=8")
        m = int(chosen)
        if topk > m:
            raise ValueError(f"{who}: llmhni_neg_topk={topk} exceeds the M={m} that llmhni_neg_candidates=auto chose; "
                             f"use a k no larger than {m}, or set llmhni_neg_candidates to a number >= {topk}.")
        return m
    return int(setting)

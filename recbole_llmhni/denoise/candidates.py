r"""S5: the candidate pairs the LLM is asked about, chosen by ``Rec_pre``'s scores.

With :math:`\hat y_{ui} = \langle e_u, e_i \rangle` from ``Rec_pre`` and :math:`\mathcal I_u`
the training items of user :math:`u`:

* **high-score negatives** (``kind = neg``): the :math:`k_n` (``llmhni_cand_kn``) items
  :math:`i \notin \mathcal I_u` with the highest :math:`\hat y_{ui}` -- potential hard
  negatives (missing positives) the LLM may add to the graph;
* **low-score positives** (``kind = pos``): the :math:`\min(k_p, |\mathcal I_u| - 1)`
  (``llmhni_cand_kp``) items :math:`i \in \mathcal I_u` with the lowest :math:`\hat y_{ui}`
  -- potential noise the LLM may remove. Our choice: a user's best-scored training item is
  never a candidate, so no user can lose every edge (a user with one training item has no
  positive candidates).
* **liked items**: each candidate user's :math:`L + 1` (``llmhni_liked_items`` + 1)
  best-scored training items, from which S6 takes the :math:`L` best *other than* the
  candidate item for the item-centric view.

Only users with at least one training edge get candidates; the padding item 0 never is one.

Global cap (``llmhni_cand_max_pairs``; ``0`` or ``None`` = no cap). Our choice, deterministic
and fair across users: the budget is split between the kinds in proportion
:math:`k_n : k_p` (a kind with fewer candidates than its share passes the rest to the other);
within a kind, candidates are kept in order of their *rank within the user* (every user's
most extreme candidate first, then every user's second, ...), ties between users broken by
extremity (higher score first for negatives, lower score first for positives), then by raw
ids. So a cap trims the least extreme candidate of each user first instead of dropping whole
users.

Artifacts (``candidates/<key>/``): ``candidates.tsv`` (``user, item, kind, rank, score``) and
``liked.tsv`` (``user, item, rank, score``), raw ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from recbole_llmhni.artifacts import StageDir, read_tsv, write_tsv
from recbole_llmhni.config.defaults import config_get

__all__ = [
    "Candidates",
    "candidate_settings",
    "select_candidates",
    "cap_candidates",
    "save_candidates",
    "load_candidates",
]

KIND_NEG, KIND_POS = "neg", "pos"


@dataclass(frozen=True)
class Candidates:
    """Candidate pairs and liked items, internal ids (1-d arrays, one entry per row).

    ``is_pos``: True for a low-score positive, False for a high-score negative. ``rank``: the
    position within the user and kind, 0 = most extreme. ``score``: ``Rec_pre``'s score.
    ``liked_*``: each candidate user's best-scored training items, ``liked_rank`` 0 = best.
    """

    users: np.ndarray
    items: np.ndarray
    is_pos: np.ndarray
    rank: np.ndarray
    score: np.ndarray
    liked_users: np.ndarray
    liked_items: np.ndarray
    liked_rank: np.ndarray
    liked_score: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_pos(self) -> int:
        return int(self.is_pos.sum())

    @property
    def n_neg(self) -> int:
        return int(len(self) - self.is_pos.sum())

    def subset(self, keep: np.ndarray) -> "Candidates":
        """The candidate rows in ``keep`` (mask or indices); liked items of the users left."""
        users = self.users[keep]
        liked = np.isin(self.liked_users, users)
        return Candidates(
            users, self.items[keep], self.is_pos[keep], self.rank[keep], self.score[keep],
            self.liked_users[liked], self.liked_items[liked], self.liked_rank[liked], self.liked_score[liked],
        )


def candidate_settings(config: Any) -> Dict[str, int]:
    """``kn``, ``kp``, ``max_pairs`` (0 = no cap) and ``liked`` (checked when the config is built)."""
    return {
        "kn": int(config_get(config, "llmhni_cand_kn")),
        "kp": int(config_get(config, "llmhni_cand_kp")),
        "max_pairs": int(config_get(config, "llmhni_cand_max_pairs")),
        "liked": int(config_get(config, "llmhni_liked_items")),
    }


def _csr(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(indptr [n_U + 1], items)``: each user's unique training items, sorted, CSR style."""
    key = np.unique(users.astype(np.int64) * n_items + items.astype(np.int64))
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(key // n_items, minlength=n_users), out=indptr[1:])
    return indptr, key % n_items


def _topk(scores: Tensor, k: int, largest: bool) -> Tuple[Tensor, Tensor]:
    k = min(k, scores.shape[1])
    if k == 0:
        empty = scores.new_zeros((scores.shape[0], 0))
        return empty, empty.long()
    return torch.topk(scores, k, dim=1, largest=largest, sorted=True)


def _collect(
    out: Dict[str, list], keys: Tuple[str, str, str, str], batch: np.ndarray, values: Tensor, index: Tensor, valid: Tensor
) -> int:
    """Append (user, item, rank, score) of the ``valid`` top-k entries to ``out[keys]``; returns their number."""
    r, c = valid.nonzero(as_tuple=True)
    out[keys[0]].append(batch[r.cpu().numpy()])
    out[keys[1]].append(index[r, c].cpu().numpy())
    out[keys[2]].append(c.cpu().numpy())
    out[keys[3]].append(values[r, c].cpu().numpy())
    return int(r.numel())


def select_candidates(
    user_e: Tensor,
    item_e: Tensor,
    train_users: np.ndarray,
    train_items: np.ndarray,
    kn: int,
    kp: int,
    liked: int,
    batch_size: int = 1024,
    show_progress: bool = False,
) -> Candidates:
    """Per-user candidates by ``Rec_pre`` score, vectorised over batches of users.

    Args:
        user_e, item_e: ``Rec_pre``'s propagated embeddings ``[n_U, d]``, ``[n_I, d]``.
        train_users, train_items: the training edges of G (internal ids, duplicates allowed).
        kn, kp, liked: :math:`k_n`, :math:`k_p`, :math:`L` (see the module docstring).
        batch_size: users scored at once (a ``[batch, n_I]`` score block).
    """
    from tqdm.auto import tqdm

    n_users, n_items = user_e.shape[0], item_e.shape[0]
    indptr, cols = _csr(train_users, train_items, n_users, n_items)
    degree = np.diff(indptr)
    active = np.flatnonzero(degree > 0)
    out: Dict[str, list] = {k: [] for k in ("u", "i", "pos", "rank", "score", "lu", "li", "lr", "ls")}
    batches = range(0, len(active), batch_size)
    device = user_e.device
    padding = torch.zeros(n_items, dtype=torch.bool, device=device)
    padding[0] = True
    for start in tqdm(batches, desc="S5 scoring users", unit="batch", disable=not show_progress):
        batch = active[start : start + batch_size]
        b = len(batch)
        scores = user_e[torch.from_numpy(batch).to(device)] @ item_e.T  # [b, n_I]
        # users between two active users have no edges, so the batch's edges are one slice
        rows = torch.from_numpy(np.repeat(np.arange(b), degree[batch])).to(device)
        taken = torch.from_numpy(cols[indptr[batch[0]] : indptr[batch[-1] + 1]]).to(device)
        is_train = torch.zeros((b, n_items), dtype=torch.bool, device=device)
        is_train[rows, taken] = True
        deg = torch.from_numpy(degree[batch]).to(device)

        if kn:
            values, index = _topk(scores.masked_fill(is_train | padding, float("-inf")), kn, largest=True)
            n = _collect(out, ("u", "i", "rank", "score"), batch, values, index, torch.isfinite(values))
            out["pos"].append(np.zeros(n, dtype=bool))
        if kp:
            values, index = _topk(scores.masked_fill(~is_train, float("inf")), kp, largest=False)
            ranks = torch.arange(values.shape[1], device=device).unsqueeze(0)
            valid = torch.isfinite(values) & (ranks < (deg - 1).unsqueeze(1))  # best item never a candidate
            n = _collect(out, ("u", "i", "rank", "score"), batch, values, index, valid)
            out["pos"].append(np.ones(n, dtype=bool))
        if liked:
            values, index = _topk(scores.masked_fill(~is_train, float("-inf")), liked + 1, largest=True)
            _collect(out, ("lu", "li", "lr", "ls"), batch, values, index, torch.isfinite(values))

    def cat(key: str, dtype: Any) -> np.ndarray:
        return np.concatenate(out[key]).astype(dtype) if out[key] else np.zeros(0, dtype=dtype)

    cands = Candidates(
        cat("u", np.int64), cat("i", np.int64), cat("pos", bool), cat("rank", np.int64), cat("score", np.float32),
        cat("lu", np.int64), cat("li", np.int64), cat("lr", np.int64), cat("ls", np.float32),
    )
    return cands.subset(np.arange(len(cands)))  # liked items only of users with candidates


def cap_candidates(
    cands: Candidates, max_pairs: Optional[int], kn: int, kp: int, tiebreak: Optional[np.ndarray] = None
) -> Candidates:
    """Keep at most ``max_pairs`` candidates (module docstring: shares, rank, extremity).

    ``tiebreak``: a final sort key per row (e.g. raw-id strings) so the result does not depend
    on row order; ``None`` keeps the row order for full ties.
    """
    if not max_pairs or len(cands) <= max_pairs:
        return cands
    n_pos_all, n_neg_all = cands.n_pos, cands.n_neg
    quota_neg = int(round(max_pairs * kn / (kn + kp)))
    quota_neg = min(quota_neg, n_neg_all)
    quota_pos = min(max_pairs - quota_neg, n_pos_all)
    quota_neg = min(max_pairs - quota_pos, n_neg_all)
    extremity = np.where(cands.is_pos, -cands.score.astype(np.float64), cands.score.astype(np.float64))
    keys = [np.arange(len(cands))] if tiebreak is None else [tiebreak]
    order = np.lexsort(keys + [-extremity, cands.rank])  # last key is primary
    keep = np.zeros(len(cands), dtype=bool)
    for is_pos, quota in ((False, quota_neg), (True, quota_pos)):
        rows = order[cands.is_pos[order] == is_pos][:quota]
        keep[rows] = True
    return cands.subset(keep)


def save_candidates(
    stage: StageDir, cands: Candidates, user_tokens: np.ndarray, item_tokens: np.ndarray, material: Dict[str, Any]
) -> None:
    """``candidates.tsv`` and ``liked.tsv`` by raw id, then the manifest (atomic, manifest last)."""
    write_tsv(
        stage.file("candidates.tsv"),
        {
            "user": user_tokens[cands.users],
            "item": item_tokens[cands.items],
            "kind": np.where(cands.is_pos, KIND_POS, KIND_NEG),
            "rank": cands.rank,
            "score": cands.score,
        },
    )
    write_tsv(
        stage.file("liked.tsv"),
        {
            "user": user_tokens[cands.liked_users],
            "item": item_tokens[cands.liked_items],
            "rank": cands.liked_rank,
            "score": cands.liked_score,
        },
    )
    stage.complete(material, n_neg=cands.n_neg, n_pos=cands.n_pos, n_users=int(len(np.unique(cands.users))))


def load_candidates(stage: StageDir, token2id: Any) -> Candidates:
    """Read the stage's TSVs back; ``token2id(kind, tokens)`` maps raw ids (kind: user / item)."""
    c = read_tsv(stage.file("candidates.tsv"), {"rank": np.int64, "score": np.float32})
    liked = read_tsv(stage.file("liked.tsv"), {"rank": np.int64, "score": np.float32})
    return Candidates(
        token2id("user", c["user"]), token2id("item", c["item"]), c["kind"] == KIND_POS, c["rank"], c["score"],
        token2id("user", liked["user"]), token2id("item", liked["item"]), liked["rank"], liked["score"],
    )

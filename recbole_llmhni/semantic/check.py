r"""The alignment check: does S2 earn its keep? Recall@K of four rankers on a held-out split.

Each ranker scores every item for every user; the user's known interactions (training, and
for ``split="test"`` also validation) and RecBole's padding item are masked; the top ``K``
are compared with the user's items of the split:

.. math::
    \mathrm{Recall@}K = \frac{1}{|U_s|} \sum_{u \in U_s}
        \frac{|\operatorname{top-}K(u) \cap \mathcal I^{s}_u|}{|\mathcal I^{s}_u|},

over the users :math:`U_s` with at least one item in the split (RecBole's definition).

Rankers:

* ``popularity``: number of training interactions of the item;
* ``raw_profile``: :math:`\cos(e_u, e_i)`, user profile vs item profile (S1);
* ``raw_history``: :math:`\cos(\bar e_u, e_i)`, :math:`\bar e_u` = mean of the user's training
  items' embeddings (S1);
* ``aligned``: :math:`s(u, i) = \cos(z'_u, z'_i)` (S2).

Beside Recall@K, the user-matched AUC of each ranker (:func:`recbole_llmhni.semantic.calibration.heldout_auc`):
the probability that a held-out positive :math:`(u, i)` outscores a random item :math:`j`
unobserved by :math:`u` (outside the known and held-out items), ties half, 10 draws per
positive, seed 0. S3's false-negative filter relies on exactly this separation for the
aligned relevance: with AUC 0.5 it drops candidates at random.

DESIGN.md section 4 measured on amazon-books (test split): raw_profile 0.018, raw_history
0.029, popularity 0.032. Alignment is trained on training interactions only, so the split is
unseen by every ranker.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import scipy.sparse as sp

from recbole_llmhni.semantic.alignment import l2_normalize
from recbole_llmhni.semantic.calibration import heldout_auc
from recbole_llmhni.semantic.store import SemanticInputs, TextEncoder, aligned_embeddings, encode_profiles

__all__ = ["AlignmentCheck", "RANKERS", "alignment_check_on_splits", "recall_at_k", "format_check"]

#: ranker name -> description (printed by :func:`format_check`)
RANKERS: Dict[str, str] = {
    "popularity": "popularity (training interactions)",
    "raw_profile": "raw cosine(user profile, item profile)",
    "raw_history": "raw cosine(mean of training items, item)",
    "aligned": "aligned relevance s(u,i) = cos(z'_u, z'_i)",
}


@dataclass
class AlignmentCheck:
    """Result of :func:`alignment_check_on_splits`."""

    dataset: str
    split: str
    k: int
    n_users: int  #: users with at least one item in the split
    recall: Dict[str, float]  #: ranker -> Recall@k (keys of :data:`RANKERS`)
    encoder: str
    artifact: str  #: the aligned-embeddings file
    reused: bool  #: whether that file was reused
    seconds: Dict[str, float] = field(default_factory=dict)  #: per stage
    auc: Dict[str, float] = field(default_factory=dict)  #: ranker -> held-out positives vs random unobserved items

    @property
    def gain(self) -> float:
        """Recall of ``aligned`` over ``raw_profile`` (``inf`` when the latter is 0)."""
        raw = self.recall["raw_profile"]
        return self.recall["aligned"] / raw if raw > 0 else float("inf")


def _interaction_matrix(split, n_users: int, n_items: int) -> sp.csr_matrix:
    users = split.inter_feat[split.uid_field].numpy()
    items = split.inter_feat[split.iid_field].numpy()
    matrix = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def recall_at_k(
    score_rows: Callable[[np.ndarray], np.ndarray],
    truth: sp.csr_matrix,
    known: sp.csr_matrix,
    k: int,
    chunk: int = 1024,
) -> float:
    """Mean Recall@k over users with a non-empty ``truth`` row.

    Args:
        score_rows: ``users [c] -> scores [c, n_items]`` (higher is better).
        truth: ``[n_users, n_items]`` held-out interactions (nonzero = relevant).
        known: ``[n_users, n_items]`` interactions to mask (never recommended).
        k: cutoff.
        chunk: users scored at once (memory: ``chunk * n_items`` floats).
    """
    truth = sp.csr_matrix(truth)
    known = sp.csr_matrix(known)
    counts = np.diff(truth.indptr)
    users = np.flatnonzero(counts)
    total = 0.0
    for start in range(0, users.size, chunk):
        batch = users[start : start + chunk]
        scores = np.array(score_rows(batch), dtype=np.float32, copy=True)
        sub = known[batch]
        scores[np.repeat(np.arange(batch.size), np.diff(sub.indptr)), sub.indices] = -np.inf
        scores[:, 0] = -np.inf  # RecBole's padding item
        top = np.argpartition(-scores, kth=min(k, scores.shape[1] - 1) - 1, axis=1)[:, :k]
        hits = np.asarray(truth[batch].toarray()[np.arange(batch.size)[:, None], top] > 0).sum(axis=1)
        total += float((hits / counts[batch]).sum())
    return total / max(users.size, 1)


def alignment_check_on_splits(
    train, held_out, extra_known: Optional[List[Any]] = None, k: int = 20, encoder: Optional[TextEncoder] = None,
    split_name: str = "valid",
) -> AlignmentCheck:
    """Recall@k of the four rankers on ``held_out`` (``train`` is the training split; S1-S2 reused when cached)."""
    seconds: Dict[str, float] = {}
    n_users, n_items = train.user_num, train.item_num
    truth = _interaction_matrix(held_out, n_users, n_items)
    train_matrix = _interaction_matrix(train, n_users, n_items)
    known = train_matrix
    for other in extra_known or ():
        known = known + _interaction_matrix(other, n_users, n_items)

    inputs = SemanticInputs.from_dataset(train)
    started = time.perf_counter()
    owned = encoder is None
    if owned:
        from recbole_llmhni.llm import make_encoder

        encoder = make_encoder(train.config)
    try:
        raw = encode_profiles(train.config, inputs, encoder)
    finally:
        if owned and hasattr(encoder, "close"):
            encoder.close()
    seconds["encode"] = time.perf_counter() - started
    started = time.perf_counter()
    aligned = aligned_embeddings(train.config, inputs, raw)
    seconds["align"] = time.perf_counter() - started

    started = time.perf_counter()
    popularity = np.asarray(train_matrix.sum(axis=0)).ravel().astype(np.float32)
    history = l2_normalize(np.asarray(train_matrix @ raw.item))  # mean direction of the training items
    rankers: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "popularity": lambda users: np.broadcast_to(popularity, (users.size, n_items)),
        "raw_profile": lambda users: raw.user[users] @ raw.item.T,
        "raw_history": lambda users: history[users] @ raw.item.T,
        "aligned": lambda users: aligned.user[users] @ aligned.item.T,
    }
    recall = {name: recall_at_k(fn, truth, known, k) for name, fn in rankers.items()}
    seconds["rank"] = time.perf_counter() - started
    started = time.perf_counter()
    factors = {  # every ranker is bilinear: score(u, i) = <a_u, b_i>
        "popularity": (np.ones((n_users, 1), dtype=np.float32), popularity[:, None]),
        "raw_profile": (raw.user, raw.item),
        "raw_history": (history, raw.item),
        "aligned": (aligned.user, aligned.item),
    }
    held = truth.tocoo()
    seen = known.tocoo()
    auc = {name: heldout_auc(a, b, held.row, held.col, seen.row, seen.col) for name, (a, b) in factors.items()}
    seconds["auc"] = time.perf_counter() - started
    return AlignmentCheck(
        dataset=str(train.dataset_name),
        split=split_name,
        k=k,
        n_users=int(np.count_nonzero(np.diff(truth.indptr))),
        recall=recall,
        encoder=raw.encoder_name,
        artifact=str(aligned.stage.path),
        reused=aligned.reused,
        seconds=seconds,
        auc=auc,
    )


def format_check(result: AlignmentCheck) -> str:
    """The table the ``align-check`` command prints."""
    masked = "training items masked" if result.split == "valid" else "training and validation items masked"
    lines = [
        f"alignment check: {result.dataset}, {result.split} split, {result.n_users} users, {masked}",
        f"  encoder: {result.encoder}; aligned embeddings {'reused from' if result.reused else 'computed, saved to'} "
        f"{result.artifact}",
        "",
        f"  {'ranker':<46} {'Recall@' + str(result.k):>10} {'AUC':>7}",
    ]
    for name, text in RANKERS.items():
        auc = result.auc.get(name)
        lines.append(f"  {text:<46} {result.recall[name]:>10.4f} {'-' if auc is None else f'{auc:.4f}':>7}")
    lines.append("")
    verdict = "beats" if result.recall["aligned"] > result.recall["raw_profile"] else "does NOT beat"
    lines.append(
        f"  alignment {verdict} raw cosine: {result.recall['aligned']:.4f} vs {result.recall['raw_profile']:.4f} "
        f"(x{result.gain:.2f})"
    )
    lines.append("  AUC: P(held-out positive > random unobserved item of the same user); S3's "
                 "false-negative filter relies on it (0.5 = no separation)")
    lines.append("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items()))
    return "\n".join(lines)

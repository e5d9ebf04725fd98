r"""S6: dual rating of every candidate pair through the LLM layer.

For a candidate :math:`(u, i)` the rater (``recbole_llmhni.llm.make_rater``) judges two views,
each ``High`` / ``Medium`` / ``Low`` (or ``unparsed`` when an LLM answer never parsed):

* user-centric: :math:`P_u` against :math:`P_i`;
* item-centric: the profiles of the user's :math:`L` (``llmhni_liked_items``) best-scored
  training items by ``Rec_pre`` score, :math:`i` itself excluded, against :math:`P_i`.

Label of a pair (:func:`pair_label`): ``hard`` iff both views are ``High``; ``noisy`` iff a
view is ``Medium`` or ``Low``; otherwise (a view ``unparsed`` and no view below ``High``)
``undetermined`` -- our choice: a failed answer is not evidence either way, so S7 leaves
such a pair as it is (it stays an edge if it is one, and is not added if it is not). This
agrees with :attr:`Rating.is_hard` whenever the answers decide the label.

Semantic relevance (for the offline ``semantic`` rater, which derives both views from it):
``relevance`` is anything :func:`as_relevance` accepts -- most simply the pair
``(user_vectors, item_vectors)`` of unit rows indexed by internal id (what
S1-S2 give, ``PipelineResult.semantic_user`` / ``semantic_item``), or an object with the :class:`Relevance`
methods. Then :math:`\mathrm{user\_relevance} = s(u, i)` and
:math:`\mathrm{item\_relevance} = \frac{1}{|L_u|}\sum_{j \in L_u} s(j, i)` over the liked items
:math:`L_u` shown in the item-centric view.

Batch mode (``llmhni_llm_mode: batch``) changes how the rater asks, not what: the same cache
keys, so ratings and the stage key are the same either way (:mod:`recbole_llmhni.llm.batch`).

Reuse: the stage key is a digest of the rater's identity (backend, model, sampling
parameters, prompt templates; thresholds for the stand-in) and of every request's content
(raw ids, profile texts, liked profiles, relevance values). If ``ratings.tsv`` for that key
exists, the rater is not even constructed. A run killed while rating loses nothing paid for:
the rater's SQLite cache holds every answer the moment it arrives.

Artifact (``ratings/<key>/ratings.tsv``): ``user, item, kind, rank, score, user_view,
item_view, label`` (+ ``user_relevance, item_relevance`` when given), raw ids.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

from recbole_llmhni.denoise.candidates import KIND_NEG, KIND_POS, Candidates
from recbole_llmhni.artifacts import StageDir, read_tsv, write_tsv

__all__ = [
    "LABEL_HARD",
    "LABEL_NOISY",
    "LABEL_UNDETERMINED",
    "Relevance",
    "EmbeddingRelevance",
    "as_relevance",
    "RatedCandidates",
    "liked_lists",
    "build_requests",
    "requests_digest",
    "rater_identity",
    "pair_label",
    "rate_candidates",
    "save_ratings",
    "load_ratings",
]

LABEL_HARD, LABEL_NOISY, LABEL_UNDETERMINED = "hard", "noisy", "undetermined"


# ----------------------------------------------------------------------------- relevance
@runtime_checkable
class Relevance(Protocol):
    """Semantic relevance on internal ids, vectorised over aligned 1-d arrays."""

    def user_item(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """:math:`s(u_k, i_k)` for every k, float array of the same length."""
        ...

    def item_item(self, items_a: np.ndarray, items_b: np.ndarray) -> np.ndarray:
        """:math:`s(j_k, i_k)` between items, for every k."""
        ...


@dataclass(frozen=True)
class EmbeddingRelevance:
    r""":math:`s(u, i) = \langle z_u, z_i \rangle`, :math:`s(j, i) = \langle z_j, z_i \rangle`.

    With unit rows (S2's aligned :math:`z'`) both are cosines. Rows are indexed by internal id.
    """

    user_vectors: np.ndarray
    item_vectors: np.ndarray

    def user_item(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.einsum("kd,kd->k", self.user_vectors[users], self.item_vectors[items]).astype(np.float64)

    def item_item(self, items_a: np.ndarray, items_b: np.ndarray) -> np.ndarray:
        return np.einsum("kd,kd->k", self.item_vectors[items_a], self.item_vectors[items_b]).astype(np.float64)


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def as_relevance(relevance: Any) -> Optional[Relevance]:
    """``None``, a :class:`Relevance`, or ``(user_vectors, item_vectors)`` (numpy or torch)."""
    if relevance is None or isinstance(relevance, Relevance):
        return relevance
    if isinstance(relevance, (tuple, list)) and len(relevance) == 2:
        return EmbeddingRelevance(_as_numpy(relevance[0]), _as_numpy(relevance[1]))
    raise TypeError(
        "relevance must be None, (user_vectors, item_vectors), or an object with "
        f"user_item(users, items) and item_item(items_a, items_b); got {type(relevance).__name__}"
    )


# ----------------------------------------------------------------------------- requests
def liked_lists(cands: Candidates, n_liked: int) -> np.ndarray:
    """``[len(cands), n_liked]`` liked item ids per candidate row (best first, -1 = none).

    Row k holds the :math:`L` best-scored training items of ``users[k]`` other than ``items[k]``.
    """
    n = len(cands)
    if n == 0 or n_liked == 0:
        return np.full((n, n_liked), -1, dtype=np.int64)
    width = int(cands.liked_rank.max(initial=-1)) + 1
    users = np.unique(cands.users)
    table = np.full((len(users), max(width, 1)), -1, dtype=np.int64)
    table[np.searchsorted(users, cands.liked_users), cands.liked_rank] = cands.liked_items
    rows = table[np.searchsorted(users, cands.users)]
    valid = (rows >= 0) & (rows != cands.items[:, None])
    keep = valid & (np.cumsum(valid, axis=1) <= n_liked)
    # compact the kept entries to the left, preserving order
    order = np.argsort(~keep, axis=1, kind="stable")
    compact = np.take_along_axis(np.where(keep, rows, -1), order, axis=1)
    out = np.full((n, n_liked), -1, dtype=np.int64)
    w = min(n_liked, compact.shape[1])
    out[:, :w] = compact[:, :w]
    return out


def _relevance_values(
    relevance: Optional[Relevance], cands: Candidates, liked: np.ndarray
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    if relevance is None:
        return None, None
    user_rel = np.asarray(relevance.user_item(cands.users, cands.items), dtype=np.float64)
    valid = liked >= 0
    pair_rows = np.nonzero(valid)
    sims = np.asarray(relevance.item_item(liked[pair_rows], cands.items[pair_rows[0]]), dtype=np.float64)
    total = np.zeros(len(cands))
    np.add.at(total, pair_rows[0], sims)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        item_rel = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return user_rel, item_rel


def build_requests(
    cands: Candidates,
    n_liked: int,
    user_profiles: Sequence[str],
    item_profiles: Sequence[str],
    user_tokens: np.ndarray,
    item_tokens: np.ndarray,
    relevance: Optional[Relevance] = None,
) -> Tuple[list, Optional[np.ndarray], Optional[np.ndarray]]:
    """One ``RatingRequest`` per candidate row, plus the relevance values used (or ``None``)."""
    from recbole_llmhni.llm import RatingRequest

    liked = liked_lists(cands, n_liked)
    user_rel, item_rel = _relevance_values(relevance, cands, liked)
    requests = []
    for k in range(len(cands)):
        u, i = int(cands.users[k]), int(cands.items[k])
        requests.append(
            RatingRequest(
                user_id=str(user_tokens[u]),
                item_id=str(item_tokens[i]),
                user_profile=user_profiles[u],
                item_profile=item_profiles[i],
                liked_item_profiles=[item_profiles[j] for j in liked[k] if j >= 0],
                user_relevance=None if user_rel is None else float(user_rel[k]),
                item_relevance=None if item_rel is None or np.isnan(item_rel[k]) else float(item_rel[k]),
            )
        )
    return requests, user_rel, item_rel


def requests_digest(requests: Sequence[Any]) -> str:
    """sha256 of every request's full content, in order (relevance rounded to 1e-6)."""
    h = hashlib.sha256()
    for r in requests:
        doc = [
            r.user_id,
            r.item_id,
            r.user_profile,
            r.item_profile,
            list(r.liked_item_profiles),
            None if r.user_relevance is None else round(r.user_relevance, 6),
            None if r.item_relevance is None else round(r.item_relevance, 6),
        ]
        h.update(json.dumps(doc, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def rater_identity(config: Any) -> Dict[str, Any]:
    """What a rater's answers depend on, from the config alone (no rater is constructed)."""
    from recbole_llmhni.llm import LLMSettings
    from recbole_llmhni.llm.prompts import PromptSet

    s = LLMSettings.from_config(config)
    if s.rater == "semantic":
        return {"rater": "semantic", "high": s.semantic_high, "low": s.semantic_low}
    prompts = PromptSet.load(s.prompt_dir)
    texts = [prompts.system, prompts.user_centric.template, prompts.item_centric.template, prompts.repair]
    return {
        "rater": s.rater,
        "model": s.rater_model,
        "temperature": s.temperature,
        "max_tokens": s.max_tokens,
        "response_format": s.response_format,
        "unparsed_retries": s.unparsed_retries,
        "prompts": hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16],
    }


# ----------------------------------------------------------------------------- labels
def pair_label(user_view: np.ndarray, item_view: np.ndarray) -> np.ndarray:
    """``hard`` / ``noisy`` / ``undetermined`` per pair (see the module docstring), vectorised."""
    user_view, item_view = np.asarray(user_view, dtype=str), np.asarray(item_view, dtype=str)
    hard = (user_view == "High") & (item_view == "High")
    below = np.isin(user_view, ("Medium", "Low")) | np.isin(item_view, ("Medium", "Low"))
    return np.where(hard, LABEL_HARD, np.where(below, LABEL_NOISY, LABEL_UNDETERMINED))


@dataclass(frozen=True)
class RatedCandidates:
    """Candidates with both views and their label (arrays aligned with ``cands``)."""

    cands: Candidates
    user_view: np.ndarray
    item_view: np.ndarray
    label: np.ndarray
    rater: str
    is_stand_in: bool
    user_relevance: Optional[np.ndarray] = None
    item_relevance: Optional[np.ndarray] = None

    def count(self, label: str, pos: Optional[bool] = None) -> int:
        mask = self.label == label
        if pos is not None:
            mask &= self.cands.is_pos == pos
        return int(mask.sum())


def rate_candidates(
    rater: Any,
    cands: Candidates,
    requests: Sequence[Any],
    user_rel: Optional[np.ndarray] = None,
    item_rel: Optional[np.ndarray] = None,
) -> RatedCandidates:
    """Ask ``rater`` for both views of every request (one batch; its cache makes reruns free)."""
    ratings = rater.rate(list(requests)) if len(requests) else []
    if len(ratings) != len(requests):
        raise RuntimeError(f"rater {rater.name} returned {len(ratings)} ratings for {len(requests)} requests")
    for request, rating in zip(requests, ratings):
        if (rating.user_id, rating.item_id) != (request.user_id, request.item_id):
            raise RuntimeError(
                f"rater {rater.name} answered ({rating.user_id}, {rating.item_id}) for "
                f"({request.user_id}, {request.item_id}): ratings out of order"
            )
    user_view = np.asarray([r.user_view for r in ratings], dtype=str) if ratings else np.zeros(0, dtype=str)
    item_view = np.asarray([r.item_view for r in ratings], dtype=str) if ratings else np.zeros(0, dtype=str)
    return RatedCandidates(
        cands, user_view, item_view, pair_label(user_view, item_view), str(rater.name),
        bool(getattr(rater, "is_stand_in", False)), user_rel, item_rel,
    )


# ----------------------------------------------------------------------------- artifact
def save_ratings(
    stage: StageDir, rated: RatedCandidates, user_tokens: np.ndarray, item_tokens: np.ndarray, material: Dict[str, Any]
) -> None:
    """``ratings.tsv`` by raw id, then the manifest (with the rater's name and the label counts)."""
    c = rated.cands
    columns: Dict[str, Any] = {
        "user": user_tokens[c.users],
        "item": item_tokens[c.items],
        "kind": np.where(c.is_pos, KIND_POS, KIND_NEG),
        "rank": c.rank,
        "score": c.score,
        "user_view": rated.user_view,
        "item_view": rated.item_view,
        "label": rated.label,
    }
    if rated.user_relevance is not None and rated.item_relevance is not None:
        columns["user_relevance"] = rated.user_relevance
        columns["item_relevance"] = rated.item_relevance
    write_tsv(stage.file("ratings.tsv"), columns)
    counts = {f"{label}_{kind}": rated.count(label, kind == KIND_POS)
              for label in (LABEL_HARD, LABEL_NOISY, LABEL_UNDETERMINED) for kind in (KIND_NEG, KIND_POS)}
    stage.complete(material, rater=rated.rater, is_stand_in=rated.is_stand_in, counts=counts)


def load_ratings(
    stage: StageDir, token2id: Callable[[str, np.ndarray], np.ndarray], liked: Optional[Candidates] = None
) -> RatedCandidates:
    """Read ``ratings.tsv`` back (internal ids through ``token2id``); ``liked`` supplies liked rows."""
    t = read_tsv(
        stage.file("ratings.tsv"),
        {"rank": np.int64, "score": np.float32, "user_relevance": np.float64, "item_relevance": np.float64},
    )
    manifest = stage.manifest()
    empty = np.zeros(0, dtype=np.int64)
    cands = Candidates(
        token2id("user", t["user"]), token2id("item", t["item"]), t["kind"] == KIND_POS, t["rank"], t["score"],
        liked.liked_users if liked is not None else empty,
        liked.liked_items if liked is not None else empty,
        liked.liked_rank if liked is not None else empty,
        liked.liked_score if liked is not None else np.zeros(0, dtype=np.float32),
    )
    return RatedCandidates(
        cands, t["user_view"], t["item_view"], t["label"], str(manifest.get("rater", "")),
        bool(manifest.get("is_stand_in", False)), t.get("user_relevance"), t.get("item_relevance"),
    )

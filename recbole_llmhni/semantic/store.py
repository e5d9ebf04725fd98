r"""S1 + S2 as one cached stage: encode profiles, align, store by raw id, load by internal id.

:func:`semantic_embeddings` is what :meth:`LLMHNIDataset.semantic_embeddings
<recbole_llmhni.data.dataset.LLMHNIDataset.semantic_embeddings>` calls on the training split:

1. **Encode** (S1): the user and item profiles, as ``{raw token: text}`` mappings, go through
   the configured encoder (:func:`recbole_llmhni.llm.make_encoder`), which caches every
   vector by text hash. Rows are L2-normalised; row 0 (padding) is zero.
2. **Align** (S2): :func:`recbole_llmhni.semantic.alignment.train_alignment` on the training
   interactions, or reuse of an earlier result.

Artifact (``artifact_dir(config, "semantic")/aligned-<key>.npz``):

========================  ================================================================
``user_ids``/``item_ids``  raw id tokens (str), the row order of the two matrices
``user_z``/``item_z``      float32 aligned vectors :math:`z'`, unit rows
``mlp.<param>``            the projection weights (float32)
``meta``                   JSON: the key, what it was computed from, the losses, the time
========================  ================================================================

The key is the SHA-256 of a JSON document holding the encoder's name, a hash of the user
profiles and of the item profiles (each as sorted ``(raw token, text)`` pairs), a hash of the
training interactions (sorted raw ``(user, item)`` pairs) and the alignment hyperparameters.
Everything is keyed by raw tokens, so the artifact stays valid when RecBole numbers ids
differently; any change of input gives a new key and the stage recomputes. A JSON sidecar
with the same stem holds ``meta`` for people.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

from recbole_llmhni.artifacts import artifact_dir
from recbole_llmhni.semantic.alignment import AlignmentSettings, l2_normalize, train_alignment

__all__ = [
    "TextEncoder",
    "RawEmbeddings",
    "AlignedEmbeddings",
    "encode_profiles",
    "aligned_embeddings",
    "semantic_embeddings",
    "artifact_key",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class TextEncoder(Protocol):
    """What S1 needs of an encoder (:func:`recbole_llmhni.llm.make_encoder` returns one)."""

    name: str

    def encode(self, texts: Mapping[str, str], kind: Optional[str] = None) -> np.ndarray:
        """One float32 row per entry of ``texts`` (``{raw token: text}``), in mapping order;
        ``kind`` is ``"user"`` or ``"item"`` (a precomputed encoder keeps one file per kind)."""
        ...


@dataclass
class RawEmbeddings:
    """S1 output, indexed by internal id (row 0 = padding = zeros), unit rows."""

    user: np.ndarray
    item: np.ndarray
    encoder_name: str
    user_texts_hash: str
    item_texts_hash: str
    seconds: float


@dataclass
class AlignedEmbeddings:
    """S2 output, indexed by internal id (row 0 = padding = zeros), unit rows."""

    user: np.ndarray
    item: np.ndarray
    path: Path
    reused: bool
    seconds: float
    meta: Dict[str, Any]


def _config_get(config: Any, key: str, default: Any = None) -> Any:
    try:
        value = config[key] if key in config else None
    except (KeyError, TypeError):
        value = None
    return default if value is None else value


def _sha256_lines(lines: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _texts_hash(tokens: Sequence[str], texts: Sequence[str]) -> str:
    return _sha256_lines(f"{t}\x01{x}" for t, x in sorted(zip(tokens, texts)))


def _edges_hash(user_tokens: np.ndarray, item_tokens: np.ndarray) -> str:
    pairs = sorted(set(zip(user_tokens.tolist(), item_tokens.tolist())))
    return _sha256_lines(f"{u}\x01{i}" for u, i in pairs)


def _make_encoder(config: Any) -> TextEncoder:
    from recbole_llmhni.llm import make_encoder

    return make_encoder(config)


def _encode_side(encoder: TextEncoder, tokens: Sequence[str], texts: Sequence[str], kind: str) -> np.ndarray:
    """Encode ``texts`` keyed by raw token; returns ``[1 + len(tokens), d]`` with a zero row 0."""
    vectors = np.asarray(encoder.encode(dict(zip(tokens, texts)), kind=kind), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(tokens):
        raise ValueError(
            f"encoder {encoder.name!r} returned shape {vectors.shape} for {len(tokens)} texts"
        )
    out = np.zeros((len(tokens) + 1, vectors.shape[1]), dtype=np.float32)
    out[1:] = l2_normalize(vectors)
    return out


def _tokens(dataset, field: str) -> list:
    return [str(t) for t in dataset.field2id_token[field][1:]]


def encode_profiles(dataset, encoder: Optional[TextEncoder] = None) -> RawEmbeddings:
    """S1: raw text embeddings of every user and item profile of the training split ``dataset``.

    Args:
        dataset: an :class:`~recbole_llmhni.data.dataset.LLMHNIDataset` training split.
        encoder: default ``make_encoder(dataset.config)`` (opened and closed here).
    """
    started = time.perf_counter()
    user_tokens, item_tokens = _tokens(dataset, dataset.uid_field), _tokens(dataset, dataset.iid_field)
    user_texts, item_texts = list(dataset.user_profiles()[1:]), list(dataset.item_profiles()[1:])
    owned = encoder is None
    encoder = _make_encoder(dataset.config) if owned else encoder
    try:
        user = _encode_side(encoder, user_tokens, user_texts, "user")
        item = _encode_side(encoder, item_tokens, item_texts, "item")
    finally:
        if owned and hasattr(encoder, "close"):
            encoder.close()
    if user.shape[1] != item.shape[1]:
        raise ValueError(f"user and item embeddings differ in width: {user.shape[1]} vs {item.shape[1]}")
    seconds = time.perf_counter() - started
    logger.info(
        f"semantic S1: {len(user_tokens)} user and {len(item_tokens)} item profiles encoded by "
        f"{encoder.name} (dim {user.shape[1]}) in {seconds:.1f} s"
    )
    return RawEmbeddings(
        user=user,
        item=item,
        encoder_name=str(encoder.name),
        user_texts_hash=_texts_hash(user_tokens, user_texts),
        item_texts_hash=_texts_hash(item_tokens, item_texts),
        seconds=seconds,
    )


def artifact_key(raw: RawEmbeddings, edges_hash: str, settings: AlignmentSettings) -> Tuple[str, Dict[str, Any]]:
    """``(sha256 hex, the document hashed)`` of the inputs of S2."""
    document = {
        "format": 1,
        "encoder": raw.encoder_name,
        "user_profiles_sha256": raw.user_texts_hash,
        "item_profiles_sha256": raw.item_texts_hash,
        "train_edges_sha256": edges_hash,
        "alignment": settings.as_dict(),
    }
    text = json.dumps(document, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), document


def _rows_by_internal_id(dataset, field: str, tokens: np.ndarray, matrix: np.ndarray, n_rows: int) -> np.ndarray:
    out = np.zeros((n_rows, matrix.shape[1]), dtype=np.float32)
    internal = np.asarray(dataset.token2id(field, [str(t) for t in tokens]), dtype=np.int64)
    out[internal] = matrix
    return out


def _save_npz(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    """Write atomically: a killed run leaves the old file or none, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".npz.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def aligned_embeddings(
    dataset,
    encoder: Optional[TextEncoder] = None,
    raw: Optional[RawEmbeddings] = None,
    settings: Optional[AlignmentSettings] = None,
) -> AlignedEmbeddings:
    """S2: the aligned vectors :math:`z'` of the training split ``dataset``, reused when cached.

    Args:
        dataset: an :class:`~recbole_llmhni.data.dataset.LLMHNIDataset` training split.
        encoder: for S1 when ``raw`` is not given (default ``make_encoder(config)``).
        raw: S1's output, if the caller already has it.
        settings: default from the dataset's config (``llmhni_align_*``, ``seed``).
    """
    config = dataset.config
    settings = settings or AlignmentSettings.from_config(config)
    raw = raw or encode_profiles(dataset, encoder)
    started = time.perf_counter()
    users, items = dataset.train_edges()
    uid, iid = dataset.uid_field, dataset.iid_field
    edges_hash = _edges_hash(dataset.id2token(uid, users), dataset.id2token(iid, items))
    key, document = artifact_key(raw, edges_hash, settings)
    path = artifact_dir(config, "semantic") / f"aligned-{key[:20]}.npz"

    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            if meta.get("key") == key:
                user = _rows_by_internal_id(dataset, uid, stored["user_ids"], stored["user_z"], raw.user.shape[0])
                item = _rows_by_internal_id(dataset, iid, stored["item_ids"], stored["item_z"], raw.item.shape[0])
                seconds = time.perf_counter() - started
                logger.info(f"semantic S2: aligned embeddings reused from {path} ({seconds:.2f} s)")
                return AlignedEmbeddings(user, item, path, True, seconds, meta)
        logger.warning(f"semantic S2: {path} holds another key; recomputing")

    show_progress = bool(_config_get(config, "show_progress", False))
    device = _config_get(config, "device", "cpu")  # RecBole's training device
    result = train_alignment(raw.user, raw.item, users, items, settings, show_progress=show_progress, device=device)
    seconds = time.perf_counter() - started
    meta = {
        "key": key,
        "inputs": document,
        "n_pseudo_pairs": result.n_pairs,
        "losses": result.losses,
        "seconds": seconds,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    user_tokens = np.asarray(_tokens(dataset, uid))
    item_tokens = np.asarray(_tokens(dataset, iid))
    arrays = {
        "user_ids": user_tokens,
        "item_ids": item_tokens,
        "user_z": result.user_z[1:],
        "item_z": result.item_z[1:],
        "meta": np.asarray(json.dumps(meta)),
    }
    arrays.update({f"mlp.{name}": value.astype(np.float32) for name, value in result.state_dict.items()})
    _save_npz(path, arrays)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    logger.info(
        f"semantic S2: aligned embeddings computed in {seconds:.1f} s ({settings.epochs} epochs on "
        f"{result.n_pairs} pseudo-labels, InfoNCE {result.losses[0]:.4f} -> {result.losses[-1]:.4f}); "
        f"saved to {path}"
    )
    return AlignedEmbeddings(result.user_z, result.item_z, path, False, seconds, meta)


def semantic_embeddings(
    dataset, aligned: Optional[bool] = None, encoder: Optional[TextEncoder] = None
) -> Tuple[np.ndarray, np.ndarray]:
    r"""``(user [n_users, d], item [n_items, d])`` whose inner product is :math:`s(u, i)`.

    ``aligned`` (default: config ``llmhni_use_alignment``, ``True``) selects S2's :math:`z'`;
    ``False`` gives S1's raw embeddings (the ablation without alignment). Rows are unit
    vectors indexed by internal id; row 0 (padding) is zero.
    """
    if aligned is None:
        aligned = bool(_config_get(dataset.config, "llmhni_use_alignment", True))
    started = time.perf_counter()
    raw = encode_profiles(dataset, encoder)
    if not aligned:
        return raw.user, raw.item
    result = aligned_embeddings(dataset, raw=raw)
    logger.info(f"semantic stage (S1+S2) ready in {time.perf_counter() - started:.1f} s")
    return result.user, result.item

r"""S1 and S2 as cached stages: encode profiles, align, store by raw id, load by internal id.

Both stages keep their output in a stage directory of :mod:`recbole_llmhni.artifacts.store`
(``<llmhni_artifact_dir>/<dataset>/<stage>/<key>/``, manifest written last), keyed by raw ids
so the artifacts stay valid when RecBole numbers ids differently:

=========  ==========================================  =======================================
stage      files                                       key digests
=========  ==========================================  =======================================
S1 encode  ``user.npz``, ``item.npz`` (vector files:    the encoder's name, the user and the
           raw ids + unit rows)                        item profiles (``{raw id: text}``)
S2 align   ``aligned.npz``: ``user_ids``/``item_ids``,  S1's key, the training edges (raw
           ``user_z``/``item_z`` (:math:`z'`, unit      ids), the ``llmhni_align_*`` settings
           rows), ``mlp.<param>`` (the projection)     and the seed
=========  ==========================================  =======================================

With ``llmhni_profileless_users: item_mean``, a user whose profile was composed (no text in
the profile file) and who has training items is not encoded: their S1 vector is the mean of
their training items' unit vectors, renormalised,
:math:`e_u = \bar e / \lVert \bar e \rVert_2` with :math:`\bar e = \frac{1}{|I_u|}\sum_{i \in I_u} e_i`
(the ``raw_history`` direction of the alignment check); the stage key then also digests the
training edges.

S1 also goes through the encoder's own per-text cache (SQLite, :mod:`recbole_llmhni.llm.cache`),
so a changed profile re-encodes only that text. A reused stage does not call the encoder.

The functions here take the training split's texts and edges as arrays
(:class:`SemanticInputs`) and return arrays indexed by internal id (row 0, RecBole's padding,
is zero); :class:`recbole_llmhni.pipeline.LLMHNIPipeline` runs them before any model is built.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from recbole_llmhni.artifacts import StageDir, atomic_writer, digest, edges_fingerprint, texts_fingerprint
from recbole_llmhni.artifacts.vectors import read_vector_file, write_vector_npz
from recbole_llmhni.config.defaults import config_get
from recbole_llmhni.config.validate import validate
from recbole_llmhni.semantic.alignment import AlignmentSettings, l2_normalize, train_alignment

__all__ = [
    "TextEncoder",
    "SemanticInputs",
    "RawEmbeddings",
    "AlignedEmbeddings",
    "encode_profiles",
    "item_mean_vectors",
    "aligned_embeddings",
]


@runtime_checkable
class TextEncoder(Protocol):
    """What S1 needs of an encoder (:func:`recbole_llmhni.llm.make_encoder` returns one)."""

    name: str

    def encode(self, texts: Mapping[str, str], kind: Optional[str] = None) -> np.ndarray:
        """One float32 row per entry of ``texts`` (``{raw token: text}``), in mapping order;
        ``kind`` is ``"user"`` or ``"item"`` (a precomputed encoder keeps one file per kind)."""
        ...


@dataclass(frozen=True)
class SemanticInputs:
    """What S1-S2 read of a training split: texts and edges, tokens in internal-id order.

    ``user_tokens[k]`` is the raw id of internal id ``k + 1`` (RecBole's id 0 is padding);
    ``train_users`` / ``train_items`` are internal ids of the training interactions.
    """

    user_tokens: List[str]
    user_texts: List[str]
    item_tokens: List[str]
    item_texts: List[str]
    train_users: np.ndarray
    train_items: np.ndarray
    #: per user token: whether its text came from the profile file (``None``: all did)
    user_given: Optional[Sequence[bool]] = None

    @classmethod
    def from_dataset(cls, train: Any) -> "SemanticInputs":
        """From an :class:`~recbole_llmhni.data.dataset.LLMHNIDataset` training split."""
        users, items = train.train_edges()  # refuses anything but the training split
        return cls(
            user_tokens=[str(t) for t in train.field2id_token[train.uid_field][1:]],
            user_texts=list(train.user_profiles()[1:]),
            item_tokens=[str(t) for t in train.field2id_token[train.iid_field][1:]],
            item_texts=list(train.item_profiles()[1:]),
            train_users=users,
            train_items=items,
            user_given=list(train.user_profile_given()[1:]) if hasattr(train, "user_profile_given") else None,
        )

    def profileless_users(self) -> np.ndarray:
        """Positions (in ``user_tokens``) of users with a composed profile and at least one training item."""
        given = np.ones(len(self.user_tokens), dtype=bool) if self.user_given is None else np.asarray(self.user_given, bool)
        trained = np.zeros(len(self.user_tokens), dtype=bool)
        trained[np.asarray(self.train_users, dtype=np.int64) - 1] = True
        return np.flatnonzero(~given & trained)

    def edges_fingerprint(self) -> str:
        tokens_u, tokens_i = np.asarray(["<pad>"] + self.user_tokens), np.asarray(["<pad>"] + self.item_tokens)
        return edges_fingerprint(tokens_u[self.train_users], tokens_i[self.train_items])


@dataclass
class RawEmbeddings:
    """S1 output, indexed by internal id (row 0 = padding = zeros), unit rows."""

    user: np.ndarray
    item: np.ndarray
    encoder_name: str
    key: str
    stage: StageDir
    reused: bool


@dataclass
class AlignedEmbeddings:
    """S2 output, indexed by internal id (row 0 = padding = zeros), unit rows."""

    user: np.ndarray
    item: np.ndarray
    stage: StageDir
    reused: bool
    meta: Dict[str, Any]


def _by_internal_id(stored_ids: Sequence[str], matrix: np.ndarray, tokens: Sequence[str], where: Any) -> np.ndarray:
    """``[1 + len(tokens), d]``: the stored rows in this dataset's id order, row 0 zero."""
    row = {str(t): r for r, t in enumerate(stored_ids)}
    missing = [t for t in tokens if t not in row]
    if missing:
        raise ValueError(f"{where}: no vector for {len(missing)} ids (first: {missing[0]!r}); delete the folder to recompute it.")
    out = np.zeros((len(tokens) + 1, matrix.shape[1]), dtype=np.float32)
    out[1:] = matrix[np.fromiter((row[t] for t in tokens), dtype=np.int64, count=len(tokens))]
    return out


def _encode_side(encoder: TextEncoder, tokens: Sequence[str], texts: Sequence[str], kind: str) -> np.ndarray:
    """Encode ``texts`` keyed by raw token; unit rows ``[len(tokens), d]``."""
    vectors = np.asarray(encoder.encode(dict(zip(tokens, texts)), kind=kind), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(tokens):
        raise ValueError(f"encoder {encoder.name!r} returned shape {vectors.shape} for {len(tokens)} texts")
    return l2_normalize(vectors)


def item_mean_vectors(item: np.ndarray, users: np.ndarray, train_users: np.ndarray, train_items: np.ndarray) -> np.ndarray:
    """Unit mean of each user's training items' rows: ``[len(users), d]``.

    ``item`` holds one row per item token (internal id ``k + 1`` at row ``k``); ``users`` are
    positions in the user tokens (internal id ``u + 1``); every one must have a training item.
    """
    position = np.full(int(max(train_users.max(initial=0), users.max(initial=-1) + 1)) + 1, -1, dtype=np.int64)
    position[users + 1] = np.arange(users.size)
    rows = position[train_users]
    keep = rows >= 0
    sums = np.zeros((users.size, item.shape[1]), dtype=np.float64)
    np.add.at(sums, rows[keep], item[train_items[keep] - 1])
    counts = np.bincount(rows[keep], minlength=users.size)
    if (counts == 0).any():
        raise ValueError(f"{int((counts == 0).sum())} users have no training item to average")
    return l2_normalize((sums / counts[:, None]).astype(np.float32))


def encode_profiles(config: Any, inputs: SemanticInputs, encoder: TextEncoder) -> RawEmbeddings:
    """S1: unit embeddings of every user and item profile, from the stage directory or ``encoder``."""
    mode = validate({"llmhni_profileless_users": config_get(config, "llmhni_profileless_users", "compose")})[
        "llmhni_profileless_users"]
    material = {
        "format": 2,
        "encoder": str(encoder.name),
        "user_profiles": texts_fingerprint(inputs.user_tokens, inputs.user_texts),
        "item_profiles": texts_fingerprint(inputs.item_tokens, inputs.item_texts),
    }
    averaged = inputs.profileless_users() if mode == "item_mean" else np.zeros(0, dtype=np.int64)
    if averaged.size:  # the default leaves the key (and every stored S1 stage) as it was
        material.update(profileless_users=mode, train_edges=inputs.edges_fingerprint())
    stage = StageDir(config, "encode", digest(material))
    reused = stage.is_complete()
    if not reused:
        item = _encode_side(encoder, inputs.item_tokens, inputs.item_texts, "item")
        encoded = np.setdiff1d(np.arange(len(inputs.user_tokens)), averaged)
        user = np.zeros((len(inputs.user_tokens), item.shape[1]), dtype=np.float32)
        if encoded.size:
            vectors = _encode_side(encoder, [inputs.user_tokens[k] for k in encoded],
                                   [inputs.user_texts[k] for k in encoded], "user")
            if vectors.shape[1] != item.shape[1]:
                raise ValueError(f"user and item embeddings differ in width: {vectors.shape[1]} vs {item.shape[1]}")
            user[encoded] = vectors
        if averaged.size:
            user[averaged] = item_mean_vectors(item, averaged, np.asarray(inputs.train_users), np.asarray(inputs.train_items))
        write_vector_npz(stage.file("user.npz"), inputs.user_tokens, user)
        write_vector_npz(stage.file("item.npz"), inputs.item_tokens, item)
        stage.complete(material, dim=int(user.shape[1]), users=len(inputs.user_tokens), items=len(inputs.item_tokens))
    sides = {}
    for kind, tokens in (("user", inputs.user_tokens), ("item", inputs.item_tokens)):
        matrix, ids = read_vector_file(stage.file(f"{kind}.npz"))
        sides[kind] = _by_internal_id(ids, matrix, tokens, stage.path)
    return RawEmbeddings(sides["user"], sides["item"], str(encoder.name), stage.key, stage, reused)


def aligned_embeddings(
    config: Any, inputs: SemanticInputs, raw: RawEmbeddings, settings: Optional[AlignmentSettings] = None
) -> AlignedEmbeddings:
    """S2: the aligned vectors :math:`z'`, from the stage directory or trained on the training edges."""
    settings = settings or AlignmentSettings.from_config(config)
    material = {"format": 2, "encode": raw.key, "train_edges": inputs.edges_fingerprint(), "alignment": settings.as_dict()}
    stage = StageDir(config, "align", digest(material))
    path = stage.file("aligned.npz")
    if stage.is_complete():
        meta = stage.manifest().get("meta", {})
        with np.load(path, allow_pickle=False) as stored:
            user = _by_internal_id(stored["user_ids"].tolist(), stored["user_z"], inputs.user_tokens, path)
            item = _by_internal_id(stored["item_ids"].tolist(), stored["item_z"], inputs.item_tokens, path)
        return AlignedEmbeddings(user, item, stage, True, meta)

    started = time.perf_counter()
    result = train_alignment(
        raw.user, raw.item, inputs.train_users, inputs.train_items, settings,
        show_progress=bool(config_get(config, "show_progress", False)), device=config_get(config, "device", "cpu"),
    )
    meta = {"n_pseudo_pairs": result.n_pairs, "losses": result.losses, "seconds": time.perf_counter() - started}
    arrays = {
        "user_ids": np.asarray(inputs.user_tokens),
        "item_ids": np.asarray(inputs.item_tokens),
        "user_z": result.user_z[1:],
        "item_z": result.item_z[1:],
    }
    arrays.update({f"mlp.{name}": value.astype(np.float32) for name, value in result.state_dict.items()})
    with atomic_writer(path, binary=True) as fh:
        np.savez(fh, **arrays)
    stage.complete(material, meta=meta)
    return AlignedEmbeddings(result.user_z, result.item_z, stage, False, meta)

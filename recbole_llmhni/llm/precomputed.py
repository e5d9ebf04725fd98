"""Vectors computed elsewhere (e.g. RLMRec's ada-002 embeddings), looked up by raw id.

Accepted files:

``.npz``, ``.npy`` or RLMRec's ``usr_emb_np.pkl`` / ``itm_emb_np.pkl``, read and checked by
:mod:`recbole_llmhni.artifacts.vectors` (pickles through the allow-list unpickler: a pickle
cannot run code here).

Nothing is cached: the file *is* the cache. The encoder's :attr:`name` includes a hash of
the files' contents, so artifacts keyed by it change when the vectors do.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

import numpy as np

from recbole_llmhni.artifacts.files import sha256_file
from recbole_llmhni.artifacts.vectors import read_vector_file
from recbole_llmhni.llm.encoders import Encoder
from recbole_llmhni.llm.ledger import CallPlan, Prices

__all__ = ["VectorFile", "load_vector_file", "PrecomputedEncoder"]

logger = logging.getLogger("recbole_llmhni.llm")

PathLike = Union[str, Path]


class VectorFile:
    """One loaded vector file: ``lookup(raw ids) -> float32 [len(ids), d]``."""

    def __init__(self, path: Path, matrix: np.ndarray, ids: Optional[List[str]]) -> None:
        self.path = path
        self.matrix = matrix
        self.ids = ids
        self._row: Optional[Dict[str, int]] = None
        if ids is not None:
            row: Dict[str, int] = {}
            for r, raw_id in enumerate(ids):
                if raw_id in row:
                    raise ValueError(f"{path}: id {raw_id!r} appears twice (rows {row[raw_id]} and {r}); keep one row per id.")
                row[raw_id] = r
            self._row = row
        self.sha256 = sha256_file(path)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def lookup(self, raw_ids: List[str]) -> np.ndarray:
        rows: List[int] = []
        missing: List[str] = []
        n = self.matrix.shape[0]
        for raw_id in raw_ids:
            if self._row is not None:
                r = self._row.get(raw_id)
            else:
                try:
                    r = int(raw_id)
                except ValueError:
                    r = None
                if r is not None and not (0 <= r < n and str(r) == raw_id):
                    r = None
            if r is None:
                missing.append(raw_id)
            else:
                rows.append(r)
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            how = (
                f"its {len(self.ids)} ids" if self.ids is not None
                else f"row r = raw id 'r' for r in 0..{n - 1}"
            )
            raise ValueError(
                f"{self.path}: no vector for {len(missing)} of {len(raw_ids)} ids ({shown}"
                f"{', ...' if len(missing) > 5 else ''}); the file covers {how}. Use the vector file "
                "of this dataset, or convert it to .npz with arrays 'ids' and 'embeddings'."
            )
        return np.ascontiguousarray(self.matrix[np.asarray(rows, dtype=np.int64)], dtype=np.float32).reshape(
            len(rows), self.dim
        )


def load_vector_file(path: PathLike) -> VectorFile:
    """Load a ``.npz``, ``.npy`` or RLMRec pickle of vectors (:mod:`recbole_llmhni.artifacts.vectors`).

    Raises:
        FileNotFoundError: ``path`` (or nothing) is there.
        ValueError: the content is not a 2-D finite numeric matrix, or ids do not match rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: vector file not found. Set llmhni_precomputed_user_emb / "
            "llmhni_precomputed_item_emb to existing .npz, .npy or RLMRec .pkl files."
        )
    matrix, ids = read_vector_file(path)
    return VectorFile(path, matrix, ids)


class PrecomputedEncoder(Encoder):
    """Encoder over vector files: ``encode(texts, kind)`` returns the rows of ``texts``' ids.

    The text values are ignored (the vectors were computed from the profiles elsewhere).
    ``kind`` (``"user"`` or ``"item"``) picks the file; it may be omitted when only one file
    is configured.
    """

    backend = "precomputed"

    def __init__(self, user_file: Optional[PathLike] = None, item_file: Optional[PathLike] = None) -> None:
        super().__init__()
        if user_file is None and item_file is None:
            raise ValueError(
                "llmhni_encoder=precomputed needs llmhni_precomputed_user_emb and/or "
                "llmhni_precomputed_item_emb (paths of .npz, .npy or RLMRec .pkl vector files)."
            )
        self.paths: Dict[str, Optional[Path]] = {
            "user": Path(user_file) if user_file else None,
            "item": Path(item_file) if item_file else None,
        }
        self._files: Dict[str, VectorFile] = {}

    def _file(self, kind: str) -> VectorFile:
        if kind not in self._files:
            path = self.paths[kind]
            if path is None:
                raise ValueError(f"no precomputed {kind} vectors: set llmhni_precomputed_{kind}_emb.")
            self._files[kind] = load_vector_file(path)
            logger.info("precomputed %s vectors: %s (%d x %d)", kind, path, *self._files[kind].matrix.shape)
        return self._files[kind]

    def _kind(self, kind: Optional[str]) -> str:
        if kind is None:
            configured = [k for k, p in self.paths.items() if p is not None]
            if len(configured) != 1:
                raise ValueError("precomputed encoder has user and item vectors: call encode(texts, kind='user' or 'item').")
            return configured[0]
        if kind not in ("user", "item"):
            raise ValueError(f"kind must be 'user' or 'item', not {kind!r}")
        return kind

    @property
    def model(self) -> str:  # type: ignore[override]
        parts = [f"{k}:{self._file(k).sha256[:12]}" for k in ("user", "item") if self.paths[k] is not None]
        return "+".join(parts)

    @property
    def name(self) -> str:
        """``precomputed/user:<hash>+item:<hash>`` -- changes when a file's content does."""
        return f"{self.backend}/{self.model}"

    def encode(self, texts: Mapping[str, str], kind: Optional[str] = None) -> np.ndarray:
        raw_ids = [str(k) for k in texts]
        vectors = self._file(self._kind(kind)).lookup(raw_ids)
        self.stats = {"requested": len(raw_ids), "unique": len(set(raw_ids)), "cache_hits": len(raw_ids), "encoded": 0}
        return vectors

    def plan(self, texts: Mapping[str, str], kind: Optional[str] = None) -> CallPlan:
        self._file(self._kind(kind)).lookup([str(k) for k in texts])  # fails early on missing ids
        return CallPlan(
            stage="encode", backend=self.backend, model=self.model, items=len(texts), cached=len(texts),
            calls=0, est_prompt_tokens=0, est_completion_tokens=0, prices=Prices(0.0, 0.0),
            notes=("vectors are read from files: no API calls, no cost",),
        )

"""Vectors computed elsewhere (e.g. RLMRec's ada-002 embeddings), looked up by raw id.

Accepted files:

``.npz``            arrays ``ids`` (raw id tokens, strings) and ``embeddings`` (float [n, d]);
                    what ``prepare rlmrec`` and ``python -m recbole_llmhni encode`` write.
``.npy``            a float [n, d] array. Row order from ``<file>.ids.txt`` beside it (one raw
                    id per line) if present, else row r belongs to the raw id ``"r"``.
``.pkl``/``.pickle``  RLMRec's ``usr_emb_np.pkl`` / ``itm_emb_np.pkl``: a numpy array, row r
                    belongs to raw id ``"r"``. Loaded by :func:`recbole_llmhni.data.safe_pickle.safe_load`,
                    which admits numpy arrays only -- a pickle cannot run code here.

Nothing is cached: the file *is* the cache. The encoder's :attr:`name` includes a hash of
the files' contents, so artifacts keyed by it change when the vectors do.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

import numpy as np

from recbole_llmhni.llm.encoders import Encoder
from recbole_llmhni.llm.ledger import CallPlan, Prices

__all__ = ["VectorFile", "load_vector_file", "PrecomputedEncoder"]

logger = logging.getLogger("recbole_llmhni.llm")

PathLike = Union[str, Path]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        self.sha256 = _sha256(path)

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
    """Load a ``.npz``, ``.npy`` or RLMRec pickle of vectors (see the module docstring).

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
    suffix = path.suffix.lower()
    ids: Optional[List[str]] = None
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "ids" not in data.files or "embeddings" not in data.files:
                raise ValueError(f"{path}: an .npz vector file needs arrays 'ids' and 'embeddings' (found {data.files}).")
            ids = [str(x) for x in data["ids"].tolist()]
            matrix = data["embeddings"]
    elif suffix == ".npy":
        matrix = np.load(path, allow_pickle=False)
        sidecar = path.with_name(path.name + ".ids.txt")
        if not sidecar.is_file():
            sidecar = path.with_suffix(".ids.txt")
        if sidecar.is_file():
            ids = [line.strip() for line in sidecar.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif suffix in (".pkl", ".pickle"):
        from recbole_llmhni.data.safe_pickle import safe_load

        matrix = safe_load(path)
    else:
        raise ValueError(f"{path}: unknown vector file type {suffix!r}; use .npz, .npy or an RLMRec .pkl.")
    if isinstance(matrix, (list, tuple)):
        matrix = np.asarray(matrix)
    if not isinstance(matrix, np.ndarray) or matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number):
        raise ValueError(
            f"{path}: expected a 2-D numeric matrix (one row per id), found "
            f"{type(matrix).__name__} {getattr(matrix, 'shape', '')} {getattr(matrix, 'dtype', '')}."
        )
    if ids is not None and len(ids) != matrix.shape[0]:
        raise ValueError(f"{path}: {len(ids)} ids for {matrix.shape[0]} rows; they must match one to one.")
    matrix = matrix.astype(np.float32, copy=False)
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        label = ids[where] if ids is not None else str(where)
        raise ValueError(f"{path}: {int(bad.sum())} rows contain NaN or inf (first: id {label!r}); recompute them.")
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

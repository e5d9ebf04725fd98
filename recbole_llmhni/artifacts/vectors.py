"""Vector files: one reader and one set of checks for every file of per-id vectors.

Accepted files:

``.npz``            arrays ``ids`` (raw id tokens, strings) and ``embeddings`` (float ``[n, d]``);
                    what ``prepare rlmrec`` and ``python -m recbole_llmhni encode`` write.
``.npy``            a float ``[n, d]`` array. Row order from ``<file>.ids.txt`` beside it (one raw
                    id per line) if present, else row r belongs to the raw id ``"r"``.
``.pkl``/``.pickle``  RLMRec's ``usr_emb_np.pkl`` / ``itm_emb_np.pkl``: a numpy array, row r
                    belongs to raw id ``"r"``; read by :func:`~recbole_llmhni.artifacts.safe_pickle.safe_load`.

:func:`check_matrix` is the one validator (2-D, numeric, finite rows, ids matching rows);
errors name the file, the first bad row's id and the fix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from recbole_llmhni.artifacts.files import atomic_writer
from recbole_llmhni.artifacts.safe_pickle import safe_load

__all__ = ["check_matrix", "read_vector_file", "write_vector_npz"]

PathLike = Union[str, Path]


def check_matrix(data: Any, path: PathLike, ids: Optional[Sequence[str]] = None, what: str = "id") -> np.ndarray:
    """``data`` as a float32 ``[n, d]`` matrix, or ``ValueError`` naming ``path`` and the problem.

    ``ids`` (one per row) name rows in errors; without them row r is ``what`` r.
    """
    if isinstance(data, (list, tuple)):
        data = np.asarray(data)
    if not isinstance(data, np.ndarray) or data.ndim != 2 or not np.issubdtype(data.dtype, np.number):
        shape = getattr(data, "shape", None)
        dtype = f" ({data.dtype})" if isinstance(data, np.ndarray) else ""
        raise ValueError(
            f"{path}: holds a {type(data).__name__}{'' if shape is None else f' of shape {shape}'}{dtype}; "
            f"expected a 2-D numeric matrix with one row per {what}."
        )
    if ids is not None and len(ids) != data.shape[0]:
        raise ValueError(f"{path}: {len(ids)} ids for {data.shape[0]} rows; they must match one to one.")
    matrix = data.astype(np.float32, copy=False)
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        label = ids[where] if ids is not None else str(where)
        raise ValueError(f"{path}: {int(bad.sum())} rows contain NaN or inf (first: {what} {label!r}); recompute them.")
    return matrix


def read_vector_file(path: PathLike) -> Tuple[np.ndarray, Optional[List[str]]]:
    """``(float32 [n, d], raw ids or None)`` of a vector file (module docstring), checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: vector file not found")
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
        matrix = safe_load(path)
    else:
        raise ValueError(f"{path}: unknown vector file type {suffix!r}; use .npz, .npy or an RLMRec .pkl.")
    return check_matrix(matrix, path, ids), ids


def write_vector_npz(path: PathLike, ids: Sequence[str], vectors: np.ndarray) -> Path:
    """Write ``ids`` and ``vectors`` as an ``.npz`` vector file, atomically."""
    with atomic_writer(path, binary=True) as fh:
        np.savez(fh, ids=np.asarray([str(i) for i in ids], dtype=str), embeddings=np.asarray(vectors, dtype=np.float32))
    return Path(path)

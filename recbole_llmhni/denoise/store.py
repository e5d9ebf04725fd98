"""Content-keyed, atomically written stage artifacts of the denoising pipeline (S4-S7).

Layout: ``<llmhni_artifact_dir>/<dataset>/<stage>/<key>/`` holding the stage's files and a
``manifest.json`` written *last*. A stage directory counts as complete only if its manifest
exists and names the same key, so a run killed mid-stage leaves an incomplete directory that
the next run simply recomputes (every file is written to a temporary name and renamed, so a
file that exists is whole).

The key of a stage is :func:`digest` of everything its output depends on (the upstream
stage's key, its own config values, the training edges by raw id), so a changed input
selects a different directory instead of silently reusing a stale one, and several
configurations of one dataset live side by side.

TSV files hold raw id tokens (never RecBole's internal ids); a header line names the columns.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from recbole_llmhni.artifacts import artifact_dir

__all__ = [
    "MANIFEST",
    "StageDir",
    "digest",
    "edges_fingerprint",
    "atomic_write_text",
    "atomic_write_bytes",
    "write_tsv",
    "read_tsv",
]

MANIFEST = "manifest.json"
KEY_LENGTH = 16


def digest(material: Any) -> str:
    """First 16 hex digits of the sha256 of ``material`` as canonical JSON (sorted keys)."""
    text = json.dumps(material, sort_keys=True, default=_jsonable, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def edges_fingerprint(user_tokens: np.ndarray, item_tokens: np.ndarray) -> str:
    """Digest of a multiset of (raw user, raw item) pairs, independent of row order."""
    pairs = np.sort(np.char.add(np.char.add(np.asarray(user_tokens, dtype=str), "\t"), np.asarray(item_tokens, dtype=str)))
    h = hashlib.sha256()
    h.update(str(len(pairs)).encode("ascii"))
    h.update("\n".join(pairs.tolist()).encode("utf-8"))
    return h.hexdigest()[:KEY_LENGTH]


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace`` (all or nothing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # one per writer
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _check_field(value: str, column: str) -> None:
    if "\t" in value or "\n" in value:
        raise ValueError(f"column {column}: value {value!r} contains a tab or newline")


def write_tsv(path: Path, columns: Mapping[str, Sequence[Any]]) -> Path:
    """Write equal-length columns as a TSV with a header line, atomically.

    Floats are written with ``repr`` precision (``%.9g``, enough for float32 round trips).
    """
    names = list(columns)
    cols = []
    n = None
    for name in names:
        values = np.asarray(columns[name])
        if n is None:
            n = len(values)
        elif len(values) != n:
            raise ValueError(f"column {name} has {len(values)} rows, expected {n}")
        if values.dtype.kind == "f":
            cols.append([f"{v:.9g}" for v in values.tolist()])
        else:
            text = [str(v) for v in values.tolist()]
            if values.dtype.kind in "UOS":
                for v in text:
                    _check_field(v, name)
            cols.append(text)
    lines = ["\t".join(names)]
    lines.extend("\t".join(row) for row in zip(*cols))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def read_tsv(path: Path, dtypes: Optional[Mapping[str, Any]] = None) -> Dict[str, np.ndarray]:
    """Read a TSV written by :func:`write_tsv` into ``{column: array}`` (str unless in ``dtypes``)."""
    with Path(path).open("r", encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in fh if line.strip()]
    dtypes = dict(dtypes or {})
    out: Dict[str, np.ndarray] = {}
    for index, name in enumerate(header):
        values = [row[index] for row in rows]
        out[name] = np.asarray(values, dtype=dtypes.get(name, str)) if values else np.zeros(0, dtype=dtypes.get(name, str))
    return out


class StageDir:
    """The artifact directory of one stage for one key: ``<artifact_dir>/<stage>/<key>/``."""

    def __init__(self, config: Any, stage: str, key: str) -> None:
        self.stage = stage
        self.key = key
        self.path: Path = artifact_dir(config, stage) / key

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def is_complete(self) -> bool:
        """True if ``manifest.json`` exists, parses, and names this key."""
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(manifest, dict) and manifest.get("key") == self.key

    def manifest(self) -> Dict[str, Any]:
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def complete(self, material: Mapping[str, Any], **extra: Any) -> Path:
        """Mark the stage complete: write the manifest (key, its material, ``extra``) last."""
        payload = {"key": self.key, "stage": self.stage, "material": dict(material), **extra}
        return atomic_write_text(
            self.manifest_path, json.dumps(payload, indent=2, sort_keys=True, default=_jsonable) + "\n"
        )

    def __repr__(self) -> str:
        return f"StageDir({self.path})"

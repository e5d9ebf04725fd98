"""Writing and reading the plugin's files: atomically, with errors that name the file and line.

Every file the plugin writes goes through :func:`atomic_writer`: the content goes to a
temporary file in the target's folder, is flushed and ``fsync``-ed, gets mode 0644 (readable
like any data file, whatever ``mkstemp`` chose) and replaces the target in one
``os.replace``. A crash or kill leaves the old file or none, never half of one, and the
temporary file is removed when writing fails.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "atomic_writer",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "sha256_file",
    "read_jsonl",
    "write_tsv",
    "read_tsv",
    "jsonable",
]

PathLike = Union[str, Path]
FILE_MODE = 0o644


@contextlib.contextmanager
def atomic_writer(path: PathLike, binary: bool = False) -> Iterator[IO]:
    """``with atomic_writer(path) as fh: fh.write(...)``: all or nothing (module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    with atomic_writer(path, binary=True) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str) -> Path:
    with atomic_writer(path) as fh:
        fh.write(text)
    return Path(path)


def jsonable(value: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays; anything else as ``str``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def atomic_write_json(path: PathLike, document: Any) -> Path:
    """``document`` as indented JSON (sorted keys, numpy values converted), atomically."""
    return atomic_write_text(path, json.dumps(document, indent=2, sort_keys=True, default=jsonable) + "\n")


def sha256_file(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_jsonl(path: PathLike, what: str, example: str, error: type = ValueError) -> Iterator[Tuple[int, Dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSON-lines file.

    ``what`` names the file's kind in errors (``"profile file"``) and ``example`` shows a valid
    line. Raises ``FileNotFoundError`` for a missing file and ``error`` (a ``ValueError``
    subclass) naming the file and line for a line that is not a JSON object; checking the
    fields is the caller's job.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}, line {lineno}: not valid JSON ({exc.msg}). Each line must be {example}.") from None
            if not isinstance(record, dict):
                raise error(f"{path}, line {lineno}: expected an object with keys like {example}.")
            yield lineno, record


def _check_field(value: str, column: str) -> None:
    if "\t" in value or "\n" in value:
        raise ValueError(f"column {column}: value {value!r} contains a tab or newline")


def write_tsv(path: PathLike, columns: Mapping[str, Sequence[Any]]) -> Path:
    """Equal-length columns as a TSV with a header line, atomically.

    Floats are written with ``%.9g`` (enough for float32 round trips).
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


def read_tsv(path: PathLike, dtypes: Optional[Mapping[str, Any]] = None) -> Dict[str, np.ndarray]:
    """A TSV written by :func:`write_tsv` as ``{column: array}`` (``str`` unless in ``dtypes``)."""
    with Path(path).open("r", encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in fh if line.strip()]
    dtypes = dict(dtypes or {})
    out: Dict[str, np.ndarray] = {}
    for index, name in enumerate(header):
        values = [row[index] for row in rows]
        out[name] = np.asarray(values, dtype=dtypes.get(name, str)) if values else np.zeros(0, dtype=dtypes.get(name, str))
    return out

"""One persistent SQLite cache for every LLM answer, every embedding and the spending ledger.

Why SQLite: one file, no server, atomic transactions, and in WAL mode many readers plus
writers from several threads *and processes* at once. A run killed at any instant (SIGKILL
included) leaves a consistent database: each answer is committed in its own transaction the
moment it arrives, so a restarted run finds every answer that was paid for and asks only for
the missing ones. ``synchronous=NORMAL`` in WAL mode survives a killed process (only an OS
crash can lose the last commits, never corrupt the file).

Tables:

``calls``       one row per completed chat call: key, backend, model, the request (messages
                and parameters, never credentials), the answer text, tokens.
``embeddings``  one row per embedded text: key, backend, model, dimension, float32 bytes.
``usage``       the ledger: one row per paid API request (run id, backend, model, tokens,
                cost). A chat answer and its usage row are written in one transaction.
``batches``     one row per submitted Batch API job (:mod:`.batch`): its id, the requests it
                carries (keyed by cache key), ``open`` until its results are joined into
                ``calls`` / ``embeddings``; the raw output and error files are stored here the
                moment they are downloaded, before a line is parsed. A run killed while a
                batch is pending finds the id here and polls it instead of submitting again.

Keys are :func:`cache_key` hashes of (backend, model, prompt, parameters); the texts
themselves are not needed to look an answer up. The key of a call never includes the API
key or the server URL: the same model asked the same question is the same answer, whichever
endpoint served it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["LLMCache", "CachedCall", "UsageRecord", "StoredBatch", "cache_key", "CACHE_FILENAME"]

CACHE_FILENAME = "llm_cache.sqlite3"
SCHEMA_VERSION = "1"
_CHUNK = 500  # keys per SELECT ... IN (...)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    created REAL NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    n_inputs INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    usage_reported INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    requests TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT,
    output TEXT,
    errors TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
"""


def cache_key(*parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts`` (sorted keys, no whitespace)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedCall:
    """A stored chat answer."""

    key: str
    response: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class UsageRecord:
    """One paid API request, as the ledger records it."""

    run_id: str
    backend: str
    model: str
    kind: str  # "chat" | "embedding"
    n_inputs: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    usage_reported: bool  # False: the server sent no usage; tokens are estimates


@dataclass(frozen=True)
class StoredBatch:
    """A submitted Batch API job as the cache keeps it (see :mod:`.batch`)."""

    id: str
    kind: str  # "chat" | "embedding"
    endpoint: str
    requests: Dict[str, Any]  # cache key -> what to store with the answer (messages, text)
    state: str  # "open" | "joined"
    status: Optional[str]  # the server's last status
    output: Optional[str]  # raw output file, once downloaded
    errors: Optional[str]  # raw error file, once downloaded


def _chunks(seq: Sequence[str], size: int = _CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


class LLMCache:
    """The SQLite cache at ``path`` (created with its folder if missing). Thread-safe.

    One connection per instance, guarded by a lock; other processes may open the same file
    at the same time (WAL mode, ``busy_timeout``). Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: Union[str, Path], timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        with self._transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._conn.execute(statement)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta(name, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
            )
        version = self._conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"{self.path}: cache schema version {version}, this recbole-llmhni expects "
                f"{SCHEMA_VERSION}. Point llmhni_cache_dir at a new folder (the old cache stays "
                "readable by the version that wrote it)."
            )

    @classmethod
    def in_dir(cls, cache_dir: Union[str, Path]) -> "LLMCache":
        """The cache file :data:`CACHE_FILENAME` inside ``cache_dir``."""
        return cls(Path(cache_dir) / CACHE_FILENAME)

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), holding the instance lock.

        IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading
        a read transaction; ``busy_timeout`` makes the second writer wait instead of failing.
        """
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "LLMCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ chat calls
    def get_calls(self, keys: Sequence[str]) -> Dict[str, CachedCall]:
        """The stored answers among ``keys``, as ``{key: CachedCall}``."""
        found: Dict[str, CachedCall] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for chunk in _chunks(unique):
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, response, prompt_tokens, completion_tokens FROM calls WHERE key IN ({marks})",
                    tuple(chunk),
                ).fetchall()
                for key, response, pt, ct in rows:
                    found[key] = CachedCall(key, response, int(pt), int(ct))
        return found

    def get_call(self, key: str) -> Optional[CachedCall]:
        return self.get_calls([key]).get(key)

    def put_call(
        self,
        key: str,
        backend: str,
        model: str,
        request: Mapping[str, Any],
        response: str,
        usage: UsageRecord,
    ) -> None:
        """Store one answer and its ledger row atomically. The first answer for a key wins."""
        now = time.time()
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO calls(key, backend, model, request, response, prompt_tokens, "
                "completion_tokens, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    backend,
                    model,
                    json.dumps(request, ensure_ascii=False, sort_keys=True),
                    response,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    now,
                ),
            )
            self._insert_usage(conn, usage, now)

    def put_calls(self, rows: Sequence[Tuple[str, str, str, Mapping[str, Any], str, UsageRecord]]) -> None:
        """Store many ``(key, backend, model, request, response, usage)`` rows in one transaction."""
        now = time.time()
        with self._transaction() as conn:
            for key, backend, model, request, response, usage in rows:
                conn.execute(
                    "INSERT OR IGNORE INTO calls(key, backend, model, request, response, prompt_tokens, "
                    "completion_tokens, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, backend, model, json.dumps(request, ensure_ascii=False, sort_keys=True), response,
                     usage.prompt_tokens, usage.completion_tokens, now),
                )
                self._insert_usage(conn, usage, now)

    # ------------------------------------------------------------------ embeddings
    def get_embeddings(self, keys: Sequence[str]) -> Dict[str, np.ndarray]:
        """The stored vectors among ``keys``, as ``{key: float32 vector}``."""
        found: Dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for chunk in _chunks(unique):
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, dim, vector FROM embeddings WHERE key IN ({marks})", tuple(chunk)
                ).fetchall()
                for key, dim, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.shape[0] != dim:  # never written that way; refuse rather than guess
                        raise ValueError(f"{self.path}: embedding row {key} is damaged; delete the cache file.")
                    found[key] = vector
        return found

    def put_embeddings(
        self,
        rows: Sequence[Tuple[str, np.ndarray]],
        backend: str,
        model: str,
        usage: Optional[UsageRecord] = None,
    ) -> None:
        """Store ``(key, vector)`` rows (and the request's ledger row) in one transaction."""
        now = time.time()
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings(key, backend, model, dim, vector, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (key, backend, model, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes(), now)
                    for key, v in rows
                ],
            )
            if usage is not None:
                self._insert_usage(conn, usage, now)

    # ------------------------------------------------------------------ ledger
    @staticmethod
    def _insert_usage(conn: sqlite3.Connection, usage: UsageRecord, now: float) -> None:
        conn.execute(
            "INSERT INTO usage(run_id, created, backend, model, kind, n_inputs, prompt_tokens, "
            "completion_tokens, cost_usd, usage_reported) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                usage.run_id,
                now,
                usage.backend,
                usage.model,
                usage.kind,
                usage.n_inputs,
                usage.prompt_tokens,
                usage.completion_tokens,
                float(usage.cost_usd),
                int(usage.usage_reported),
            ),
        )

    def usage_totals(self, run_id: Optional[str] = None) -> Dict[str, Any]:
        """Sum of the ledger (all runs, or one ``run_id``): requests, tokens, cost in USD."""
        where, args = ("WHERE run_id = ?", (run_id,)) if run_id else ("", ())
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
                f"COALESCE(SUM(cost_usd), 0.0) FROM usage {where}",
                args,
            ).fetchone()
        return {
            "requests": int(row[0]),
            "prompt_tokens": int(row[1]),
            "completion_tokens": int(row[2]),
            "cost_usd": float(row[3]),
        }

    # ------------------------------------------------------------------ batches
    def add_batch(self, batch_id: str, kind: str, endpoint: str, requests: Mapping[str, Any], status: str) -> None:
        """Record a submitted batch (``open``) with the requests it carries."""
        now = time.time()
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO batches(id, kind, endpoint, requests, state, status, output, errors, "
                "created, updated) VALUES (?, ?, ?, ?, 'open', ?, NULL, NULL, ?, ?)",
                (batch_id, kind, endpoint, json.dumps(dict(requests), ensure_ascii=False), status, now, now),
            )

    def batches(self, kind: Optional[str] = None, state: Optional[str] = None) -> List[StoredBatch]:
        """Stored batches, oldest first, optionally of one ``kind`` / ``state``."""
        where, args = [], []
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if state is not None:
            where.append("state = ?")
            args.append(state)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, kind, endpoint, requests, state, status, output, errors FROM batches "
                f"{clause} ORDER BY created, id", tuple(args),
            ).fetchall()
        return [StoredBatch(i, k, e, json.loads(r), st, s, o, er) for i, k, e, r, st, s, o, er in rows]

    def update_batch(self, batch_id: str, status: str, output: Optional[str] = None,
                     errors: Optional[str] = None, state: Optional[str] = None) -> None:
        """Set a batch's status; store downloaded files (never overwriting one already stored); close it."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE batches SET status = ?, output = COALESCE(output, ?), errors = COALESCE(errors, ?), "
                "state = COALESCE(?, state), updated = ? WHERE id = ?",
                (status, output, errors, state, time.time(), batch_id),
            )

    def count(self, table: str) -> int:
        """Rows in ``calls``, ``embeddings``, ``usage`` or ``batches``."""
        if table not in ("calls", "embeddings", "usage", "batches"):
            raise ValueError(f"unknown cache table {table!r}")
        with self._lock:
            return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def stored_requests(self) -> List[Dict[str, Any]]:
        """Every stored chat request (messages and parameters) with its answer; for audits."""
        with self._lock:
            rows = self._conn.execute("SELECT key, backend, model, request, response FROM calls").fetchall()
        return [
            {"key": k, "backend": b, "model": m, "request": json.loads(r), "response": resp}
            for k, b, m, r, resp in rows
        ]

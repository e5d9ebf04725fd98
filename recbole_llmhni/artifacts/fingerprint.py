"""Content digests that key the plugin's artifacts.

Everything is keyed by raw id tokens, never RecBole's internal ids, so a digest stays the same
when RecBole numbers ids differently (another filter, another split seed).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import numpy as np

from recbole_llmhni.artifacts.files import jsonable

__all__ = ["KEY_LENGTH", "digest", "edges_fingerprint", "texts_fingerprint"]

KEY_LENGTH = 16


def digest(material: Any) -> str:
    """First 16 hex digits of the SHA-256 of ``material`` as canonical JSON (sorted keys)."""
    text = json.dumps(material, sort_keys=True, default=jsonable, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def edges_fingerprint(user_tokens: Sequence[str], item_tokens: Sequence[str]) -> str:
    """Digest of a multiset of (raw user, raw item) pairs, independent of row order."""
    pairs = np.sort(np.char.add(np.char.add(np.asarray(user_tokens, dtype=str), "\t"), np.asarray(item_tokens, dtype=str)))
    h = hashlib.sha256()
    h.update(str(len(pairs)).encode("ascii"))
    h.update("\n".join(pairs.tolist()).encode("utf-8"))
    return h.hexdigest()[:KEY_LENGTH]


def texts_fingerprint(tokens: Sequence[str], texts: Sequence[str]) -> str:
    """Digest of a ``{raw id: text}`` table, independent of row order."""
    h = hashlib.sha256()
    for token, text in sorted(zip(map(str, tokens), texts)):
        h.update(f"{token}\x01{text}\x00".encode("utf-8"))
    return h.hexdigest()[:KEY_LENGTH]

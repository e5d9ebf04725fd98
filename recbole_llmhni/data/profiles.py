"""Text profiles of users and items: the side files LLMHNI reads next to RecBole's atomic files.

Format (one JSON object per line, UTF-8), in the dataset directory next to the ``.inter`` files::

    dataset/<name>/<name>.user_profile.jsonl   {"id": "<raw user token>", "profile": "<text>"}
    dataset/<name>/<name>.item_profile.jsonl   {"id": "<raw item token>", "profile": "<text>"}

Ids are RecBole's *raw* tokens (the strings in the ``.inter`` files), never internal ids, so a
profile file stays valid whatever RecBole's remapping does. Extra keys (e.g. ``"source_id"``,
the original Amazon ASIN) are kept out of the way and ignored. JSON lines are used rather
than TSV because profile text contains tabs and newlines.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Tuple, Union

from recbole_llmhni.artifacts.files import atomic_writer, read_jsonl

__all__ = [
    "ProfileFormatError",
    "profile_path",
    "read_profiles",
    "write_profiles",
]

PathLike = Union[str, Path]
EXAMPLE = '{"id": "<raw id>", "profile": "<text>"}'


class ProfileFormatError(ValueError):
    """A profile file is malformed; the message names the file, the line and the fix."""


def profile_path(data_dir: PathLike, dataset: str, kind: str) -> Path:
    """Path of the ``kind`` (``"user"`` or ``"item"``) profile file of ``dataset`` in ``data_dir``."""
    if kind not in ("user", "item"):
        raise ValueError(f"kind must be 'user' or 'item', not {kind!r}")
    return Path(data_dir) / f"{dataset}.{kind}_profile.jsonl"


def read_profiles(path: PathLike) -> Dict[str, str]:
    """Read a profile file into ``{raw id: profile text}``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ProfileFormatError: a line is not a JSON object with a string ``id`` and ``profile``,
            or an id occurs twice. The message names ``path`` and the 1-based line number.
    """
    profiles: Dict[str, str] = {}
    for lineno, record in read_jsonl(path, "profile file", EXAMPLE, ProfileFormatError):
        if "id" not in record or "profile" not in record:
            raise ProfileFormatError(f"{path}, line {lineno}: expected an object with keys 'id' and 'profile'.")
        raw_id, text = record["id"], record["profile"]
        if isinstance(raw_id, int) and not isinstance(raw_id, bool):
            raw_id = str(raw_id)
        if not isinstance(raw_id, str) or not isinstance(text, str):
            raise ProfileFormatError(
                f"{path}, line {lineno}: 'id' and 'profile' must be strings "
                f"(got {type(raw_id).__name__} and {type(text).__name__})."
            )
        if raw_id in profiles:
            raise ProfileFormatError(f"{path}, line {lineno}: id {raw_id!r} appears twice; keep one line per id.")
        profiles[raw_id] = text
    return profiles


def write_profiles(
    path: PathLike,
    profiles: Union[Mapping[str, str], Iterable[Tuple[str, str]]],
    extra: Optional[Mapping[str, Mapping[str, str]]] = None,
) -> Path:
    """Write ``{raw id: text}`` to ``path`` atomically (temp file + rename).

    ``extra`` optionally maps a raw id to additional string fields stored on its line.
    """
    items = profiles.items() if isinstance(profiles, Mapping) else profiles
    with atomic_writer(path) as fh:
        for raw_id, text in items:
            record = {"id": str(raw_id), "profile": text}
            if extra and str(raw_id) in extra:
                record.update(extra[str(raw_id)])
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return Path(path)

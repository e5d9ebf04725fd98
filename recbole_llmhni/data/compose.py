"""Compose text profiles where a dataset has none, from side features and *training* history.

Two sources, both leakage-free:

* RecBole's side-feature atomic files (``<name>.item``, ``<name>.user``): ml-100k's titles,
  release years and genres, and its users' age, gender and occupation;
* a user's *training* items (never valid/test): a user without a profile is described by
  the profiles of the items they interacted with in the training split.

The result is plain English text such as
``"Title: Toy Story. Year: 1995. Genres: Animation Children's Comedy."``.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

__all__ = ["read_side_features", "describe_features", "item_name", "compose_user_profile", "snippet"]

# Friendlier labels for the side features of RecBole's bundled / common datasets.
_FIELD_LABELS = {
    "movie_title": "Title",
    "title": "Title",
    "release_year": "Year",
    "class": "Genres",
    "genre": "Genres",
    "categories": "Categories",
    "brand": "Brand",
    "age": "Age",
    "gender": "Gender",
    "occupation": "Occupation",
}
# Fields that name an item, in order of preference.
_NAME_FIELDS = ("movie_title", "title", "name")
# Fields that identify rather than describe (not useful to a text encoder).
_SKIP_FIELDS = {"zip_code"}


def read_side_features(path: Union[str, Path], id_field: str) -> Dict[str, Dict[str, str]]:
    """Read a RecBole atomic feature file into ``{raw id: {field: value}}``.

    Only token / token_seq / float fields are read, as text; the header's ``:type``
    suffixes are stripped. A missing file yields ``{}``.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    features: Dict[str, Dict[str, str]] = {}
    with path.open("r", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            return {}
        names = [column.split(":", 1)[0] for column in header]
        if id_field not in names:
            raise ValueError(
                f"{path}, line 1: no '{id_field}' column in header {header}; the id column must be "
                f"named '{id_field}:token'."
            )
        id_index = names.index(id_field)
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(names):
                raise ValueError(
                    f"{path}, line {lineno}: {len(row)} tab-separated fields, header has {len(names)}."
                )
            features[row[id_index]] = {
                name: value
                for index, (name, value) in enumerate(zip(names, row))
                if index != id_index and value != ""
            }
    return features


def describe_features(features: Mapping[str, str]) -> str:
    """``{"movie_title": "Toy Story", "release_year": "1995"}`` -> ``"Title: Toy Story. Year: 1995."``"""
    parts = []
    for name, value in features.items():
        if name in _SKIP_FIELDS or name.endswith("_id"):
            continue
        label = _FIELD_LABELS.get(name, name.replace("_", " ").capitalize())
        parts.append(f"{label}: {value}.")
    return " ".join(parts)


def snippet(text: str, max_chars: int = 120) -> str:
    """``text`` on one line, cut at a word boundary to at most ``max_chars`` characters."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text.rfind(" ", 0, max_chars)
    return text[: cut if cut > 0 else max_chars].rstrip(" ,;:") + "…"


def item_name(features: Optional[Mapping[str, str]], profile: str) -> str:
    """A short name for an item in a user's history: its title feature, else its profile's start."""
    for field in _NAME_FIELDS:
        if features and features.get(field):
            return features[field]
    return snippet(profile)


def compose_user_profile(
    own_features: Optional[Mapping[str, str]],
    history_item_names: Sequence[str],
) -> str:
    """A user described by their side features and the items of their *training* history."""
    parts: List[str] = []
    if own_features:
        described = describe_features(own_features)
        if described:
            parts.append(described)
    names = [name for name in history_item_names if name]
    if names:
        parts.append(f"Items this user interacted with: {'; '.join(names)}.")
    return " ".join(parts)


"""Noise injection for robustness studies (DESIGN.md section 5).

``llmhni_noise_ratio = r`` adds ``round(r * |train|)`` random *non-interacted* user-item pairs
to the training split only; validation and test are untouched. Each injected pair starts
from a random training row (so users keep their activity distribution and the row's other
columns, e.g. rating and timestamp, stay plausible) whose item is replaced by an item drawn
uniformly from those the user has in no split. The injected pairs are saved by raw id so a
later identification report can score the "noisy" label against them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Tuple, Union

import numpy as np

from recbole_llmhni.artifacts.files import atomic_write_text

__all__ = ["sample_noise_pairs", "write_pairs", "read_pairs"]


def sample_noise_pairs(
    train_users: np.ndarray,
    all_users: np.ndarray,
    all_items: np.ndarray,
    n_items: int,
    ratio: float,
    seed: int,
    first_item_id: int = 1,
) -> Tuple[np.ndarray, np.ndarray]:
    """Draw noisy training pairs.

    Args:
        train_users: user id of every training row (the rows a noisy pair is copied from).
        all_users, all_items: every observed pair of every split (never drawn as noise).
        n_items: size of the item id space; items are drawn from ``[first_item_id, n_items)``
            (RecBole reserves internal id 0 for padding).
        ratio: noise pairs per training row, ``0 <= ratio``.
        seed: seed of the numpy generator (the result depends only on the inputs and seed).

    Returns:
        ``(source_rows, items)``: for each noisy pair, the training row index it copies
        (its user is ``train_users[source_rows]``) and the new item. All pairs are distinct
        and none is observed in any split.
    """
    if ratio < 0:
        raise ValueError(f"llmhni_noise_ratio must be >= 0, got {ratio}")
    n_noise = int(round(ratio * len(train_users)))
    if n_noise == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    n_candidates = n_items - first_item_id
    taken = np.unique(all_users.astype(np.int64) * n_items + all_items.astype(np.int64))
    free = len(np.unique(train_users)) * n_candidates - len(taken)
    if n_noise > free:
        raise ValueError(
            f"llmhni_noise_ratio={ratio} asks for {n_noise} noisy pairs but only about {free} "
            "non-interacted pairs exist; use a smaller ratio."
        )
    rng = np.random.default_rng(seed)
    rows = np.zeros(0, dtype=np.int64)
    items = np.zeros(0, dtype=np.int64)
    keys = np.zeros(0, dtype=np.int64)
    while len(rows) < n_noise:
        need = n_noise - len(rows)
        draw_rows = rng.integers(0, len(train_users), size=need * 2 + 16)
        draw_items = rng.integers(first_item_id, n_items, size=len(draw_rows))
        draw_keys = train_users[draw_rows].astype(np.int64) * n_items + draw_items
        fresh = ~np.isin(draw_keys, taken) & ~np.isin(draw_keys, keys)
        draw_rows, draw_items, draw_keys = draw_rows[fresh], draw_items[fresh], draw_keys[fresh]
        _, first = np.unique(draw_keys, return_index=True)  # no duplicates within the draw
        first = np.sort(first)[:need]
        rows = np.concatenate([rows, draw_rows[first]])
        items = np.concatenate([items, draw_items[first]])
        keys = np.concatenate([keys, draw_keys[first]])
    return rows, items


def write_pairs(path: Union[str, Path], users, items, header: Tuple[str, str] = ("user_id", "item_id")) -> Path:
    """Write raw-id pairs as a two-column TSV with a header.

    Atomic, also against another process writing the same file (two runs on one dataset
    and noise ratio): each writer fills its own temporary file, then renames it into place.
    """
    lines = ["\t".join(header)] + [f"{user}\t{item}" for user, item in zip(users, items)]
    return atomic_write_text(Path(path), "\n".join(lines) + "\n")


def read_pairs(path: Union[str, Path]) -> Tuple[list, list]:
    """Read a TSV written by :func:`write_pairs` back into two lists of raw ids."""
    users, items = [], []
    with Path(path).open("r", encoding="utf-8") as fh:
        next(fh, None)
        for line in fh:
            if line.strip():
                user, item = line.rstrip("\n").split("\t")
                users.append(user)
                items.append(item)
    return users, items

"""Convert a dataset in RLMRec's layout into RecBole benchmark atomic files plus LLMHNI side files.

RLMRec (Ren et al., WWW 2024) ships each dataset as a folder::

    trn_mat.pkl  val_mat.pkl  tst_mat.pkl     pickled scipy sparse matrices, (n_users, n_items)
    usr_prf.pkl  itm_prf.pkl                  {int id: {"profile": text, "reasoning": text}}
    usr_emb_np.pkl  itm_emb_np.pkl            optional numpy arrays, row = int id

The profiles may instead come as the CSV export ``*user_profiles.csv`` /
``*item_profiles.csv`` (columns ``user_id_int,user_id_raw,profile_text`` and
``item_id_int,item_id_raw,profile_text``). User profiles are optional (RLMRec's Steam and
Yelp may lack them); item profiles are required.

:func:`prepare_rlmrec` validates everything first (shapes, id ranges, matrix values,
duplicate and overlapping interactions) and only then writes, file by file through
:func:`recbole_llmhni.artifacts.files.atomic_writer` (temporary file, ``fsync``, rename),
into ``<out>/<dataset>/``::

    <dataset>.train.inter / .valid.inter / .test.inter   user_id:token<TAB>item_id:token
    <dataset>.user_profile.jsonl   (if user profiles exist)
    <dataset>.item_profile.jsonl
    <dataset>.user_emb.npz / .item_emb.npz   (if the embedding pickles exist)
    <dataset>.yaml                 RecBole dataset config: benchmark split, no filtering
    PREPARED.json                  manifest, written last

Tokens are RLMRec's integer ids written as strings, so the CSV and pickle formats give the
same files. Every problem with the input raises :class:`RLMRecFormatError` (a
``ValueError``) or ``FileNotFoundError`` whose message names the file and the fix.

Matrix values. RLMRec stores implicit feedback: every interaction is a 1. The value of a
(user, item) cell is read the way scipy reads a COO matrix: the *sum* of the entries stored
for that cell (a COO matrix may hold one cell several times; ``tocsr()`` and ``toarray()``
add them up, and so does this converter). Then, per cell:

* ``1`` -- an interaction;
* ``0`` (a stored zero, or entries that cancel) -- no interaction: sparse storage means
  "absent", so it is dropped, counted and reported as a warning, never read as an
  interaction;
* anything else (a negative value, ``2.0``, ``0.5``, a rating) -- an error naming the file,
  the number of such cells and an example ``(row, column) = value``, because reading it as an
  interaction would be a guess. With ``binarize=True`` (``--binarize``) a positive value
  counts as one interaction and a negative one is dropped; both are counted in the summary
  and the manifest (``matrix_values``);
* NaN or infinity -- always an error.

So two stored entries of 1 for the same cell make a 2: an error without ``--binarize``, one
interaction with it; entries 0.5 and 0.5 make one interaction.
"""
from __future__ import annotations

import contextlib
import csv
import logging
import pickle
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.sparse as sp

from recbole_llmhni.artifacts.files import atomic_write_json, atomic_write_text, atomic_writer, sha256_file
from recbole_llmhni.artifacts.safe_pickle import safe_load
from recbole_llmhni.artifacts.vectors import check_matrix, write_vector_npz
from recbole_llmhni.data.profiles import profile_path, write_profiles

__all__ = [
    "RLMRecFormatError",
    "RLMRecSource",
    "PreparedDataset",
    "find_rlmrec_files",
    "prepare_rlmrec",
    "dataset_config_text",
    "inter_path",
    "embedding_path",
    "SPLITS",
    "MANIFEST_NAME",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]

SPLITS: Tuple[str, ...] = ("train", "valid", "test")
KINDS: Tuple[str, ...] = ("user", "item")
MATRIX_FILES: Dict[str, str] = {"train": "trn_mat.pkl", "valid": "val_mat.pkl", "test": "tst_mat.pkl"}
PROFILE_PICKLES: Dict[str, str] = {"user": "usr_prf.pkl", "item": "itm_prf.pkl"}
PROFILE_CSV_GLOBS: Dict[str, str] = {"user": "*user_profiles.csv", "item": "*item_profiles.csv"}
CSV_COLUMNS: Dict[str, Tuple[str, str, str]] = {
    kind: (f"{kind}_id_int", f"{kind}_id_raw", "profile_text") for kind in KINDS
}
EMBEDDING_PICKLES: Dict[str, str] = {"user": "usr_emb_np.pkl", "item": "itm_emb_np.pkl"}
INTER_HEADER = "user_id:token\titem_id:token"
MANIFEST_NAME = "PREPARED.json"
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_NON_NEGATIVE_INT = re.compile(r"^\s*\d+\s*$")
# what happened to the stored values of a split (module docstring, "Matrix values")
VALUE_COUNTS: Tuple[str, ...] = ("binarized", "dropped_negative", "dropped_zero", "summed_duplicates")


class RLMRecFormatError(ValueError):
    """The RLMRec input is malformed; the message names the file and what to do about it."""


# --------------------------------------------------------------------------------------
# data classes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RLMRecSource:
    """The files of one RLMRec dataset folder that the converter will read."""

    directory: Path
    matrices: Dict[str, Path]
    profiles: Dict[str, Optional[Path]]
    embeddings: Dict[str, Optional[Path]]
    ignored: Tuple[Tuple[str, Path], ...] = ()  # (kind, CSV passed over for the pickle)

    def used_files(self) -> List[Path]:
        """Every input file, in a stable order."""
        files = [self.matrices[s] for s in SPLITS]
        files += [p for p in (self.profiles[k] for k in KINDS) if p is not None]
        files += [p for p in (self.embeddings[k] for k in KINDS) if p is not None]
        return files


@dataclass(frozen=True)
class _Split:
    """The distinct (user, item) interactions of one split, sorted by (user, item).

    ``values`` counts cells (not stored entries) by :data:`VALUE_COUNTS`: positive values
    other than 1 read as 1 (``binarized``), negative and zero cells dropped, cells stored more
    than once whose entries were summed.
    """

    name: str
    source: Path
    users: np.ndarray
    items: np.ndarray
    values: Dict[str, int]

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def keys(self, n_items: int) -> np.ndarray:
        """One int64 per pair (user * n_items + item), sorted."""
        return self.users * np.int64(n_items) + self.items


@dataclass(frozen=True)
class _ProfileEntry:
    """One profile as read, with where it came from (for error messages)."""

    id: int
    text: str
    source_id: Optional[str]
    where: str


@dataclass(frozen=True)
class PreparedDataset:
    """Summary of a prepared dataset (also stored as ``PREPARED.json``)."""

    dataset: str
    directory: Path
    source: Path
    n_users: int
    n_items: int
    counts: Dict[str, int]
    split_users: Dict[str, int]
    split_items: Dict[str, int]
    profiles: Dict[str, int]
    profile_sources: Dict[str, Optional[str]]
    embeddings: Dict[str, Tuple[int, int]]
    files: Tuple[Path, ...]
    warnings: Tuple[str, ...] = field(default_factory=tuple)
    binarize: bool = False
    # {split: {count: cells}} for the counts of VALUE_COUNTS (module docstring, "Matrix values")
    matrix_values: Dict[str, Dict[str, int]] = field(default_factory=dict)

    @property
    def config_file(self) -> Path:
        """The dataset YAML to pass to RecBole's ``config_file_list``."""
        return self.directory / f"{self.dataset}.yaml"

    @property
    def data_path(self) -> Path:
        """RecBole's ``data_path`` for this dataset (the folder that holds ``<dataset>/``)."""
        return self.directory.parent


# --------------------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------------------


def inter_path(data_dir: PathLike, dataset: str, split: str) -> Path:
    """``<data_dir>/<dataset>.<split>.inter`` (the name RecBole's ``benchmark_filename`` reads)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return Path(data_dir) / f"{dataset}.{split}.inter"


def embedding_path(data_dir: PathLike, dataset: str, kind: str) -> Path:
    """``<data_dir>/<dataset>.<kind>_emb.npz`` (arrays ``ids`` and ``embeddings``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be 'user' or 'item', not {kind!r}")
    return Path(data_dir) / f"{dataset}.{kind}_emb.npz"


def _check_dataset_name(dataset: str) -> None:
    if not _DATASET_NAME.match(dataset or ""):
        raise ValueError(
            f"dataset name {dataset!r} cannot be used: it becomes a folder and a file prefix, so "
            "use letters, digits, '.', '_' or '-' only, starting with a letter or digit "
            "(e.g. --dataset amazon-book)."
        )


def find_rlmrec_files(src: PathLike) -> RLMRecSource:
    """Locate the matrices, profiles and optional embeddings in an RLMRec dataset folder.

    Raises:
        FileNotFoundError: ``src`` is not a folder, a matrix is missing, or there are no item
            profiles.
        RLMRecFormatError: several CSVs could be the profile file of the same kind.
    """
    directory = Path(src)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"{directory}: no such directory. Pass the RLMRec dataset folder that holds "
            "trn_mat.pkl, val_mat.pkl and tst_mat.pkl as --src."
        )
    matrices = {s: directory / name for s, name in MATRIX_FILES.items()}
    missing = [p.name for p in matrices.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{directory}: missing {', '.join(missing)}. An RLMRec dataset folder holds "
            "trn_mat.pkl, val_mat.pkl and tst_mat.pkl (e.g. RLMRec's data/amazon/); pass that "
            "folder as --src."
        )
    profiles: Dict[str, Optional[Path]] = {}
    ignored: List[Tuple[str, Path]] = []
    for kind in KINDS:
        profiles[kind], skipped = _find_profile_file(directory, kind)
        ignored.extend((kind, path) for path in skipped)
    if profiles["item"] is None:
        raise FileNotFoundError(
            f"{directory}: no item profiles. Put RLMRec's itm_prf.pkl, or a CSV named "
            f"*item_profiles.csv with columns {','.join(CSV_COLUMNS['item'])}, in that folder."
        )
    embeddings = {
        kind: (directory / name if (directory / name).is_file() else None)
        for kind, name in EMBEDDING_PICKLES.items()
    }
    return RLMRecSource(directory, matrices, profiles, embeddings, tuple(ignored))


def _find_profile_file(directory: Path, kind: str) -> Tuple[Optional[Path], List[Path]]:
    """The profile file of ``kind`` (the pickle wins over CSVs) and the files passed over."""
    csvs = sorted(p for p in directory.glob(PROFILE_CSV_GLOBS[kind]) if p.is_file())
    pickled = directory / PROFILE_PICKLES[kind]
    if pickled.is_file():
        return pickled, csvs
    if len(csvs) > 1:
        raise RLMRecFormatError(
            f"{directory}: several {kind} profile files ({', '.join(p.name for p in csvs)}); "
            f"keep exactly one *{kind}_profiles.csv in the folder."
        )
    return (csvs[0] if csvs else None), []


# --------------------------------------------------------------------------------------
# interaction matrices
# --------------------------------------------------------------------------------------


def _load_pickle(path: Path) -> Any:
    """:func:`safe_load`, with pickle errors turned into :class:`RLMRecFormatError`."""
    try:
        return safe_load(path)
    except pickle.UnpicklingError as exc:  # includes UnsafePickleError
        raise RLMRecFormatError(str(exc)) from None


def _load_matrix(path: Path) -> sp.coo_matrix:
    """Load one split matrix as COO; it must be a 2-D scipy sparse matrix."""
    matrix = _load_pickle(path)
    if not sp.issparse(matrix):
        raise RLMRecFormatError(
            f"{path}: holds a {type(matrix).__module__}.{type(matrix).__name__}, not a scipy sparse "
            "matrix. RLMRec stores each split as a pickled scipy.sparse coo_matrix/csr_matrix of "
            "shape (n_users, n_items); re-export it in that form."
        )
    if len(matrix.shape) != 2:
        raise RLMRecFormatError(
            f"{path}: sparse array of shape {matrix.shape}; expected a 2-D (n_users, n_items) matrix."
        )
    try:
        coo = matrix if isinstance(matrix, sp.coo_matrix) else sp.coo_matrix(matrix)
        consistent = len(coo.row) == len(coo.col) == len(coo.data)
    except (ValueError, IndexError, TypeError, AttributeError) as exc:
        raise RLMRecFormatError(
            f"{path}: corrupt sparse matrix ({exc}); re-export it from the source data."
        ) from None
    if not consistent:
        raise RLMRecFormatError(
            f"{path}: corrupt sparse matrix (row, column and value arrays differ in length); "
            "re-export it from the source data."
        )
    return coo


def _check_shapes(matrices: Mapping[str, sp.coo_matrix], source: RLMRecSource) -> Tuple[int, int]:
    """All splits must share one shape (n_users, n_items), both > 0."""
    shape = tuple(int(d) for d in matrices["train"].shape)
    train_file = source.matrices["train"].name
    for split in SPLITS[1:]:
        other = tuple(int(d) for d in matrices[split].shape)
        if other != shape:
            raise RLMRecFormatError(
                f"{source.matrices[split]}: shape {other} differs from {train_file} {shape}. All three "
                "matrices must be (n_users, n_items) over the same id space; re-export this split "
                "with the training matrix's shape, or check that the files belong to one dataset."
            )
    if shape[0] < 1 or shape[1] < 1:
        raise RLMRecFormatError(
            f"{source.matrices['train']}: shape {shape} has no users or no items; expected "
            "(n_users, n_items) with both > 0."
        )
    return shape[0], shape[1]


def _refuse_entries(
    path: Path, bad: np.ndarray, rows: np.ndarray, cols: np.ndarray, problem: str,
    detail: Callable[[int], str], fix: str,
) -> None:
    """Raise, naming how many stored entries are ``bad``, the first one and the fix; or nothing."""
    if not bad.any():
        return
    first = int(np.flatnonzero(bad)[0])
    raise RLMRecFormatError(
        f"{path}: {int(bad.sum())} entries {problem}, e.g. ({rows[first]}, {cols[first]}){detail(first)}. {fix}"
    )


def _split_pairs(name: str, path: Path, matrix: sp.coo_matrix, binarize: bool = False) -> _Split:
    """The (user, item) cells of ``matrix`` that are interactions, range- and value-checked.

    A cell's value is the sum of its stored entries; 1 is an interaction, 0 is dropped, any
    other value is an error unless ``binarize`` (then > 0 is an interaction and < 0 is
    dropped). See the module docstring, "Matrix values".
    """
    rows = np.asarray(matrix.row, dtype=np.int64)
    cols = np.asarray(matrix.col, dtype=np.int64)
    values = np.asarray(matrix.data)
    n_users, n_items = (int(d) for d in matrix.shape)
    for what, ids, n, axis in (("user", rows, n_users, "row"), ("item", cols, n_items, "column")):
        _refuse_entries(
            path, (ids < 0) | (ids >= n), rows, cols,
            f"have a {axis} ({what} id) outside 0..{n - 1}", lambda i: f" in a {n_users} x {n_items} matrix",
            "The file is corrupt or was built with another id map; re-export it from the source data.",
        )
    if values.dtype.kind not in "biuf":
        raise RLMRecFormatError(
            f"{path}: stores values of type {values.dtype}; expected numbers (1 for an interaction). "
            "Re-export the matrix with float or integer ones."
        )
    values = values.astype(np.float64, copy=False)
    _refuse_entries(
        path, ~np.isfinite(values), rows, cols, "are NaN or infinite", lambda i: f" = {values[i]}",
        "Re-export the matrix with 1 for each interaction (--binarize does not repair these).",
    )
    # one value per cell: the sum of the cell's stored entries, as scipy reads a COO matrix
    cells, inverse, stored = np.unique(rows * np.int64(n_items) + cols, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse.ravel(), weights=values, minlength=cells.size)
    zero, negative, one = sums == 0, sums < 0, sums == 1
    other = ~(zero | negative | one)  # positive, but not 1
    if not binarize and (negative.any() or other.any()):
        odd = np.flatnonzero(negative | other)
        first = int(odd[0])
        summed = f" (the sum of its {int(stored[first])} stored entries)" if stored[first] > 1 else ""
        raise RLMRecFormatError(
            f"{path}: {odd.size} entries hold a value other than 1 ({int(negative.sum())} negative, "
            f"{int(other.sum())} positive), e.g. (row {int(cells[first] // n_items)}, column "
            f"{int(cells[first] % n_items)}) = {sums[first]:g}{summed}. Only 1 marks an interaction: "
            "re-export the matrix with ones, or pass --binarize (binarize=True) to read every "
            "positive value as 1 and drop negative ones."
        )
    keep = one | other
    return _Split(
        name=name,
        source=path,
        users=cells[keep] // n_items,
        items=cells[keep] % n_items,
        values={
            "binarized": int(other.sum()),
            "dropped_negative": int(negative.sum()),
            "dropped_zero": int(zero.sum()),
            "summed_duplicates": int((stored > 1).sum()),
        },
    )


def _check_disjoint(splits: Mapping[str, _Split], n_items: int) -> None:
    """No (user, item) pair may be in two splits."""
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1 :]:
            a, b = splits[first], splits[second]
            shared = np.intersect1d(a.keys(n_items), b.keys(n_items), assume_unique=True)
            if shared.size:
                user, item = int(shared[0] // n_items), int(shared[0] % n_items)
                raise RLMRecFormatError(
                    f"{a.source.name} and {b.source.name} share {shared.size} (user, item) "
                    f"pairs, e.g. ({user}, {item}) (in {a.source.parent}). RLMRec's splits must be "
                    f"disjoint: remove the shared pairs from one of the two matrices (usually "
                    f"{b.source.name}) and run prepare again."
                )


def _coverage_warnings(splits: Mapping[str, _Split], n_users: int, n_items: int) -> List[str]:
    """Users/items of valid/test that training never saw, and ids that occur nowhere."""
    warnings: List[str] = []
    train = splits["train"]
    for kind, attr, n in (("user", "users", n_users), ("item", "items", n_items)):
        known = np.zeros(n, dtype=bool)
        known[getattr(train, attr)] = True
        seen_anywhere = known.copy()
        for split in SPLITS[1:]:
            ids = getattr(splits[split], attr)
            seen_anywhere[ids] = True
            cold = ~known[ids]
            if cold.any():
                warnings.append(
                    f"{splits[split].source.name}: {int(np.unique(ids[cold]).size)} {kind}s "
                    f"({int(cold.sum())} interactions) do not occur in training; models cannot "
                    "learn them and will score them from their initial embeddings."
                )
        never = int((~seen_anywhere).sum())
        if never:
            warnings.append(
                f"{never} of {n} {kind}s in the matrices have no interaction in any split "
                f"(e.g. {kind} {int(np.flatnonzero(~seen_anywhere)[0])}); RecBole will not know them."
            )
    for split in SPLITS:
        counts, name = splits[split].values, splits[split].source.name
        if counts["summed_duplicates"]:
            warnings.append(
                f"{name}: {counts['summed_duplicates']} (user, item) cells are stored more than once; "
                "their entries were summed (as scipy reads a COO matrix) before checking the value."
            )
        if counts["dropped_zero"]:
            warnings.append(
                f"{name}: {counts['dropped_zero']} explicitly stored zero entries were dropped "
                "(a stored 0 is no interaction)."
            )
    return warnings


def _value_note(split: _Split) -> str:
    """What ``--binarize`` did to a split, or ``""``."""
    counts = split.values
    if not counts["binarized"] and not counts["dropped_negative"]:
        return ""
    return (
        f"{split.source.name}: --binarize read {counts['binarized']} positive values other than 1 "
        f"as 1 and dropped {counts['dropped_negative']} negative entries"
    )


def load_splits(source: RLMRecSource, binarize: bool = False) -> Tuple[Dict[str, _Split], int, int]:
    """Load and validate the three matrices: ``({split: pairs}, n_users, n_items)``.

    ``binarize``: read positive values other than 1 as 1 and drop negative ones instead of
    failing on them (module docstring, "Matrix values").
    """
    matrices = {split: _load_matrix(source.matrices[split]) for split in SPLITS}
    n_users, n_items = _check_shapes(matrices, source)
    splits = {s: _split_pairs(s, source.matrices[s], m, binarize) for s, m in matrices.items()}
    if len(splits["train"]) == 0:
        raise RLMRecFormatError(
            f"{source.matrices['train']}: no interactions (no entry of value "
            f"{'> 0' if binarize else '1'}), so there is nothing to train on; check that this is "
            "the training matrix."
        )
    for split in SPLITS:
        note = _value_note(splits[split])
        if note:
            logger.info("%s", note)
    _check_disjoint(splits, n_items)
    return splits, n_users, n_items


# --------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------


def _csv_records(reader: Any, path: Path) -> Iterator[Tuple[int, List[str]]]:
    """Yield ``(first line of the record, fields)``; CSV / encoding errors name the line."""
    end = 0
    while True:
        start = end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RLMRecFormatError(
                f"{path}, line {start}: malformed CSV ({exc}). Quote profile text that holds "
                'commas, quotes or line breaks with double quotes, doubling inner quotes ("").'
            ) from None
        except UnicodeDecodeError as exc:
            raise RLMRecFormatError(
                f"{path}, line {start}: not UTF-8 text ({exc.reason}). Re-save the file as UTF-8."
            ) from None
        end = reader.line_num
        yield start, row


def _check_csv_header(path: Path, kind: str, header: Optional[List[str]]) -> None:
    expected = list(CSV_COLUMNS[kind])
    if header is None:
        raise RLMRecFormatError(
            f"{path}: empty file. Expected a header line {','.join(expected)} and one row per {kind}."
        )
    if [h.strip() for h in header] != expected:
        raise RLMRecFormatError(
            f"{path}, line 1: header is {','.join(header)!r}; expected {','.join(expected)}. "
            f"Fix the header (is this the {kind} profile file?)."
        )


def read_profile_csv(path: PathLike, kind: str, progress: bool = False) -> List[_ProfileEntry]:
    """Parse RLMRec's profile CSV export (header ``<kind>_id_int,<kind>_id_raw,profile_text``)."""
    path = Path(path)
    columns = ",".join(CSV_COLUMNS[kind])
    entries: List[_ProfileEntry] = []
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        records = _csv_records(csv.reader(fh, strict=True), path)
        first = next(records, None)
        _check_csv_header(path, kind, first[1] if first else None)
        for line, row in _progress(records, progress, f"{path.name}", "rows"):
            if not row:  # blank line
                continue
            if len(row) != 3:
                raise RLMRecFormatError(
                    f"{path}, line {line}: expected 3 fields ({columns}), found {len(row)}. Quote "
                    "profile text that holds commas or line breaks with double quotes."
                )
            if not _NON_NEGATIVE_INT.match(row[0]):
                raise RLMRecFormatError(
                    f"{path}, line {line}: {CSV_COLUMNS[kind][0]} {row[0]!r} is not a non-negative "
                    f"integer. The first column must be RLMRec's integer {kind} id (the matrix index)."
                )
            source_id = row[1].strip() or None
            entries.append(_ProfileEntry(int(row[0]), row[2], source_id, f"line {line}"))
    return entries


def _as_int_id(key: Any) -> Optional[int]:
    """An int id from an int, numpy integer or digit string key; ``None`` otherwise."""
    if isinstance(key, (bool, np.bool_)):
        return None
    if isinstance(key, (int, np.integer)):
        return int(key)
    if isinstance(key, str) and _NON_NEGATIVE_INT.match(key):
        return int(key)
    return None


def _record_text(path: Path, kind: str, key: Any, record: Any) -> str:
    """The profile text of one pickle record: a dict with 'profile', or a plain string."""
    if isinstance(record, str):
        return str(record)
    if isinstance(record, Mapping):
        text = record.get("profile")
        if isinstance(text, str):
            return str(text)
        raise RLMRecFormatError(
            f"{path}: the record of {kind} {key!r} has no 'profile' text (keys: "
            f"{sorted(map(str, record))}). Each record must be {{'profile': text, ...}} or a string."
        )
    raise RLMRecFormatError(
        f"{path}: the record of {kind} {key!r} is a {type(record).__name__}; expected a dict with "
        "a 'profile' string (RLMRec's format) or a plain string."
    )


def read_profile_pickle(path: PathLike, kind: str) -> List[_ProfileEntry]:
    """Parse RLMRec's ``usr_prf.pkl`` / ``itm_prf.pkl``: ``{int id: {'profile': text, ...}}``."""
    path = Path(path)
    data = _load_pickle(path)
    if isinstance(data, Mapping):
        items = list(data.items())
    elif isinstance(data, (list, tuple)):
        items = list(enumerate(data))
    else:
        raise RLMRecFormatError(
            f"{path}: holds a {type(data).__name__}; expected a dict {{int {kind} id: "
            "{'profile': text, 'reasoning': text}}, as RLMRec writes it."
        )
    entries: List[_ProfileEntry] = []
    for key, record in items:
        pid = _as_int_id(key)
        if pid is None:
            raise RLMRecFormatError(
                f"{path}: key {key!r} is not an integer {kind} id. Keys must be the matrix index "
                f"of the {kind} (0..n-1)."
            )
        entries.append(_ProfileEntry(pid, _record_text(path, kind, key, record), None, f"key {key!r}"))
    return entries


def _index_profiles(
    entries: Sequence[_ProfileEntry], path: Path, kind: str, n: int
) -> Tuple[Dict[int, _ProfileEntry], List[str]]:
    """Check the id range and uniqueness; drop empty texts. Returns (profiles, warnings)."""
    seen: Dict[int, _ProfileEntry] = {}
    for entry in entries:
        if not 0 <= entry.id < n:
            raise RLMRecFormatError(
                f"{path}, {entry.where}: {kind} id {entry.id} is out of range; the interaction "
                f"matrices have {n} {kind}s (ids 0..{n - 1}). Check that this profile file belongs "
                "to the same dataset as trn_mat.pkl, or drop that entry."
            )
        if entry.id in seen:
            raise RLMRecFormatError(
                f"{path}, {entry.where}: {kind} id {entry.id} appears twice (first at "
                f"{seen[entry.id].where}); keep one profile per {kind}."
            )
        seen[entry.id] = entry
    profiles = {i: e for i, e in sorted(seen.items()) if e.text.strip()}
    warnings: List[str] = []
    missing = sorted(set(range(n)) - set(profiles))
    if missing:
        consequence = (
            "their profiles will be composed from their training items' profiles"
            if kind == "user"
            else "LLM stages will see them without text"
        )
        warnings.append(
            f"{path.name}: {len(missing)} of {n} {kind}s have no (or an empty) profile, e.g. "
            f"{kind} {missing[0]}; {consequence}."
        )
    return profiles, warnings


def load_profiles(
    path: Path, kind: str, n: int, progress: bool = False
) -> Tuple[Dict[int, _ProfileEntry], List[str]]:
    """Read and validate a profile file (pickle or CSV) for ``n`` ids of ``kind``."""
    if path.suffix == ".pkl":
        entries = read_profile_pickle(path, kind)
    else:
        entries = read_profile_csv(path, kind, progress=progress)
    return _index_profiles(entries, path, kind, n)


# --------------------------------------------------------------------------------------
# embeddings
# --------------------------------------------------------------------------------------


def load_embeddings(path: PathLike, kind: str, n: int) -> np.ndarray:
    """Load ``usr_emb_np.pkl`` / ``itm_emb_np.pkl`` as float32 ``[n, d]`` (row = int id).

    Checked by :func:`recbole_llmhni.artifacts.vectors.check_matrix` (2-D, numeric, finite)
    and against ``n``; every problem is an :class:`RLMRecFormatError`.
    """
    path = Path(path)
    data = _load_pickle(path)
    try:
        vectors = check_matrix(data, path, what=kind)
    except ValueError as exc:
        raise RLMRecFormatError(f"{exc} Row i must be the vector of {kind} i.") from None
    if vectors.shape[0] != n:
        raise RLMRecFormatError(
            f"{path}: {vectors.shape[0]} rows, but the interaction matrices have {n} {kind}s; row i "
            f"must be the vector of {kind} i. Use the embedding file that belongs to this dataset."
        )
    return vectors


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------


def _progress(iterable: Any, enabled: bool, desc: str, unit: str) -> Any:
    """Wrap ``iterable`` in a tqdm bar on stderr when ``enabled`` and stderr is a terminal."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit=unit, file=sys.stderr, leave=False, disable=None)


def _write_inter(path: Path, split: _Split) -> Path:
    """RecBole atomic ``.inter`` file, rows sorted by (user, item)."""
    with atomic_writer(path) as fh:
        fh.write(INTER_HEADER + "\n")
        chunk = 100_000
        for start in range(0, len(split), chunk):
            users = split.users[start : start + chunk].tolist()
            items = split.items[start : start + chunk].tolist()
            fh.write("".join(f"{u}\t{i}\n" for u, i in zip(users, items)))
    return path


def dataset_config_text(dataset: str, source: PathLike) -> str:
    """The RecBole dataset YAML that uses RLMRec's split as is (no filtering)."""
    origin = " ".join(str(Path(source).resolve()).splitlines())
    return f"""\
# RecBole dataset config for '{dataset}', written by `python -m recbole_llmhni prepare rlmrec`.
# Source: RLMRec layout in {origin}
# RLMRec's own train/valid/test split is used as is (benchmark_filename); nothing is filtered.
# Re-running prepare overwrites this file.
USER_ID_FIELD: user_id
ITEM_ID_FIELD: item_id
load_col:
  inter: [user_id, item_id]
benchmark_filename: [train, valid, test]
user_inter_num_interval: "[0,inf)"
item_inter_num_interval: "[0,inf)"
eval_args:
  group_by: user
  order: RO
  split: {{RS: [0.8, 0.1, 0.1]}}  # ignored with benchmark files, but RecBole wants one
  mode: full
metrics: [Recall, NDCG]
topk: [10, 20]
valid_metric: Recall@20
"""


def _manifest(summary: PreparedDataset, source: RLMRecSource) -> Dict[str, Any]:
    from recbole_llmhni._version import __version__

    return {
        "format": "rlmrec",
        "dataset": summary.dataset,
        "source_dir": str(source.directory.resolve()),
        "source_files": {
            p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in source.used_files()
        },
        "counts": summary.counts,
        "binarize": summary.binarize,
        "matrix_values": summary.matrix_values,
        "n_users": summary.n_users,
        "n_items": summary.n_items,
        "split_users": summary.split_users,
        "split_items": summary.split_items,
        "profiles": summary.profiles,
        "embeddings": {k: list(v) for k, v in summary.embeddings.items()},
        "files": [p.name for p in summary.files],
        "warnings": list(summary.warnings),
        "recbole_llmhni_version": __version__,
    }


def _remove_stale(paths: Sequence[Path]) -> None:
    """Delete outputs of an earlier run that this run does not produce."""
    for path in paths:
        if path.exists():
            path.unlink()
            logger.info("removed %s (left by an earlier run; not in this source)", path)


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------


def prepare_rlmrec(
    src: PathLike, dataset: str, out: PathLike = "dataset", *, progress: bool = False, binarize: bool = False
) -> PreparedDataset:
    """Convert the RLMRec dataset folder ``src`` into ``<out>/<dataset>/`` (see module doc).

    Only cells of value 1 are interactions; any other nonzero value is an error unless
    ``binarize`` (CLI ``--binarize``): then positive values count as 1 and negative ones are
    dropped. Zero cells are never interactions. :attr:`PreparedDataset.matrix_values` and the
    manifest say how many cells were binarised or dropped (module docstring, "Matrix values").

    All input is read and validated before anything is written; each output file is written
    atomically and ``PREPARED.json`` last, so a killed run never leaves a half file and a
    folder with a manifest is complete. Re-running overwrites (and removes optional outputs
    that the new source no longer provides). Warnings are logged on this module's logger and
    returned in :attr:`PreparedDataset.warnings`.

    Raises:
        FileNotFoundError: ``src`` or a required file is missing.
        RLMRecFormatError: the input is malformed (the message names the file and the fix).
        ValueError: ``dataset`` is not a usable name.
    """
    _check_dataset_name(dataset)
    source = find_rlmrec_files(src)
    warnings: List[str] = [
        f"{path.name}: ignored, {PROFILE_PICKLES[kind]} is used for the {kind} profiles"
        for kind, path in source.ignored
    ]
    logger.info("reading interaction matrices from %s", source.directory)
    splits, n_users, n_items = load_splits(source, binarize)
    warnings += _coverage_warnings(splits, n_users, n_items)

    profiles: Dict[str, Dict[int, _ProfileEntry]] = {}
    for kind, n in (("user", n_users), ("item", n_items)):
        path = source.profiles[kind]
        if path is None:
            warnings.append(
                f"no user profiles in {source.directory} (usr_prf.pkl or *user_profiles.csv); "
                "LLMHNI composes them from the user's training items' profiles."
            )
            continue
        logger.info("reading %s profiles from %s", kind, path.name)
        profiles[kind], found = load_profiles(path, kind, n, progress=progress)
        warnings += found

    embeddings: Dict[str, np.ndarray] = {}
    for kind, n in (("user", n_users), ("item", n_items)):
        path = source.embeddings[kind]
        if path is not None:
            logger.info("reading %s embeddings from %s", kind, path.name)
            embeddings[kind] = load_embeddings(path, kind, n)

    for message in warnings:
        logger.warning(message)
    target = Path(out) / dataset
    files = _write_outputs(target, dataset, source, splits, profiles, embeddings)
    summary = PreparedDataset(
        dataset=dataset,
        directory=target,
        source=source.directory,
        n_users=n_users,
        n_items=n_items,
        counts={s: len(splits[s]) for s in SPLITS},
        split_users={s: int(np.unique(splits[s].users).size) for s in SPLITS},
        split_items={s: int(np.unique(splits[s].items).size) for s in SPLITS},
        profiles={k: len(v) for k, v in profiles.items()},
        profile_sources={k: (p.name if p else None) for k, p in source.profiles.items()},
        embeddings={k: (int(v.shape[0]), int(v.shape[1])) for k, v in embeddings.items()},
        files=tuple(files),
        warnings=tuple(warnings),
        binarize=binarize,
        matrix_values={s: dict(splits[s].values) for s in SPLITS},
    )
    manifest = _manifest(summary, source)
    atomic_write_json(target / MANIFEST_NAME, manifest)
    logger.info("wrote %s", target / MANIFEST_NAME)
    return summary


def _write_outputs(
    target: Path,
    dataset: str,
    source: RLMRecSource,
    splits: Mapping[str, _Split],
    profiles: Mapping[str, Mapping[int, _ProfileEntry]],
    embeddings: Mapping[str, np.ndarray],
) -> List[Path]:
    """Write every output except the manifest; returns the paths written."""
    target.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):  # the manifest marks a complete folder
        (target / MANIFEST_NAME).unlink()
    files: List[Path] = []
    for split in SPLITS:
        files.append(_write_inter(inter_path(target, dataset, split), splits[split]))
        logger.info("wrote %s (%s interactions)", files[-1], f"{len(splits[split]):,}")
    stale: List[Path] = []
    for kind in KINDS:
        path = profile_path(target, dataset, kind)
        if kind not in profiles:
            stale.append(path)
            continue
        texts = {str(i): e.text for i, e in profiles[kind].items()}
        extra = {str(i): {"source_id": e.source_id} for i, e in profiles[kind].items() if e.source_id}
        files.append(write_profiles(path, texts, extra=extra or None))  # atomic, mode 0644
        logger.info("wrote %s (%s profiles)", path, f"{len(texts):,}")
    for kind in KINDS:
        path = embedding_path(target, dataset, kind)
        if kind not in embeddings:
            stale.append(path)
            continue
        ids = [str(i) for i in range(embeddings[kind].shape[0])]  # row i = RLMRec's id i
        files.append(write_vector_npz(path, ids, embeddings[kind]))
        logger.info("wrote %s %s", path, tuple(embeddings[kind].shape))
    config = target / f"{dataset}.yaml"
    files.append(atomic_write_text(config, dataset_config_text(dataset, source.directory)))
    logger.info("wrote %s", config)
    _remove_stale(stale)
    return files

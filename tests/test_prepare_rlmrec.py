"""Tests of ``prepare rlmrec``: RLMRec layout -> RecBole benchmark atomic files + side files.

Tiny RLMRec folders are built in ``tmp_path``; one test runs on the shared Amazon-book data
(``shared/data/rlmrec-amazon-book`` beside the repository; skipped, with the path it looked
at, when the checkout has no ``shared/`` beside it) and one loads a prepared dataset with
RecBole's BPR.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

import recbole_llmhni  # noqa: F401  (numpy-2 compat shims before RecBole is imported)
from recbole_llmhni.__main__ import main
from recbole_llmhni.data.profiles import read_profiles
from recbole_llmhni.prepare import PreparedDataset, RLMRecFormatError, prepare_rlmrec

Pair = Tuple[int, int]

N_USERS, N_ITEMS = 4, 5
TRAIN: List[Pair] = [(0, 0), (0, 1), (0, 4), (1, 1), (1, 2), (2, 2), (2, 3), (3, 3), (3, 4)]
VALID: List[Pair] = [(0, 2), (1, 3), (2, 4)]
TEST: List[Pair] = [(1, 0), (3, 0)]
USER_ROWS = [
    ["0", "A1", 'Likes "cozy" mysteries,\nand long series.'],
    ["1", "A2", "Reads thrillers, fast."],
    ["2", "A3", "Poetry and essays."],
    ["3", "A4", "Cookbooks; baking in particular."],
]
ITEM_ROWS = [
    ["3", "B03", "A baking book."],  # unordered, as in the real export
    ["0", "B00", "A cozy mystery,\nbook one."],
    ["1", "B01", "A thriller."],
    ["2", "B02", "Essays."],
    ["4", "B04", "A cookbook."],
]
# The shared data sits beside the repository (<parent>/shared/data/..., see its PROVENANCE.md);
# it is never copied into the repository. A fresh clone without it skips the real-data test.
REAL_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rlmrec-amazon-book").resolve()


# ----------------------------------------------------------------------------- fixtures


def write_matrix(
    path: Path,
    pairs: Sequence[Pair],
    shape: Tuple[int, int] = (N_USERS, N_ITEMS),
    values: Optional[Sequence[float]] = None,
    fmt: str = "coo",
) -> None:
    """Pickle a scipy sparse matrix the way RLMRec does."""
    rows = [u for u, _ in pairs]
    cols = [i for _, i in pairs]
    data = np.ones(len(pairs)) if values is None else np.asarray(values, dtype=float)
    matrix = sp.coo_matrix((data, (rows, cols)), shape=shape)
    with path.open("wb") as fh:
        pickle.dump(matrix.tocsr() if fmt == "csr" else matrix, fh)


def write_csv(path: Path, kind: str, rows: Iterable[Sequence[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([f"{kind}_id_int", f"{kind}_id_raw", "profile_text"])
        writer.writerows(rows)


def write_pickle(path: Path, obj: object) -> None:
    with path.open("wb") as fh:
        pickle.dump(obj, fh)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A valid tiny RLMRec folder with CSV profiles."""
    folder = tmp_path / "rlmrec"
    folder.mkdir()
    write_matrix(folder / "trn_mat.pkl", TRAIN)
    write_matrix(folder / "val_mat.pkl", VALID)
    write_matrix(folder / "tst_mat.pkl", TEST)
    write_csv(folder / "tiny_user_profiles.csv", "user", USER_ROWS)
    write_csv(folder / "tiny_item_profiles.csv", "item", ITEM_ROWS)
    return folder


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "dataset"


def read_inter(path: Path) -> Tuple[str, List[Pair]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0], [tuple(int(x) for x in line.split("\t")) for line in lines[1:]]  # type: ignore[misc]


def expect_error(src: Path, out: Path, *fragments: str) -> str:
    """prepare must fail with RLMRecFormatError (a ValueError) whose message has ``fragments``."""
    with pytest.raises(RLMRecFormatError) as info:
        prepare_rlmrec(src, "tiny", out)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not (out / "tiny").exists(), "nothing may be written when the input is invalid"
    return message


# ----------------------------------------------------------------------------- happy path


def test_prepare_writes_benchmark_files_profiles_yaml_and_manifest(src: Path, out: Path) -> None:
    summary = prepare_rlmrec(src, "tiny", out)
    target = out / "tiny"
    assert isinstance(summary, PreparedDataset)
    assert summary.directory == target and summary.data_path == out
    assert (summary.n_users, summary.n_items) == (N_USERS, N_ITEMS)
    assert summary.counts == {"train": len(TRAIN), "valid": len(VALID), "test": len(TEST)}
    assert summary.warnings == ()

    for split, pairs in (("train", TRAIN), ("valid", VALID), ("test", TEST)):
        header, rows = read_inter(target / f"tiny.{split}.inter")
        assert header == "user_id:token\titem_id:token"
        assert rows == sorted(pairs)

    users = read_profiles(target / "tiny.user_profile.jsonl")
    items = read_profiles(target / "tiny.item_profile.jsonl")
    assert users == {row[0]: row[2] for row in USER_ROWS}  # multi-line, quoted text survives
    assert items == {row[0]: row[2] for row in ITEM_ROWS}
    first = json.loads((target / "tiny.item_profile.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first == {"id": "0", "profile": "A cozy mystery,\nbook one.", "source_id": "B00"}

    config = yaml.safe_load(summary.config_file.read_text(encoding="utf-8"))
    assert summary.config_file.read_text(encoding="utf-8").startswith("# RecBole dataset config")
    assert str(src.resolve()) in summary.config_file.read_text(encoding="utf-8")
    assert config == {
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "load_col": {"inter": ["user_id", "item_id"]},
        "benchmark_filename": ["train", "valid", "test"],
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "eval_args": {"group_by": "user", "order": "RO", "split": {"RS": [0.8, 0.1, 0.1]}, "mode": "full"},
        "metrics": ["Recall", "NDCG"],
        "topk": [10, 20],
        "valid_metric": "Recall@20",
    }

    manifest = json.loads((target / "PREPARED.json").read_text(encoding="utf-8"))
    assert manifest["counts"] == summary.counts
    assert (manifest["n_users"], manifest["n_items"]) == (N_USERS, N_ITEMS)
    for name, entry in manifest["source_files"].items():
        assert entry["sha256"] == hashlib.sha256((src / name).read_bytes()).hexdigest()
    assert set(manifest["source_files"]) == {
        "trn_mat.pkl", "val_mat.pkl", "tst_mat.pkl", "tiny_user_profiles.csv", "tiny_item_profiles.csv"
    }
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [f"tiny.{s}.inter" for s in ("train", "valid", "test")]
        + ["tiny.user_profile.jsonl", "tiny.item_profile.jsonl", "tiny.yaml", "PREPARED.json"]
    ), "no temporary files may be left behind"


def test_pickle_profiles_and_embeddings(src: Path, out: Path) -> None:
    for path in src.glob("*.csv"):
        path.unlink()
    write_pickle(src / "usr_prf.pkl", {u: {"profile": f"user {u}", "reasoning": "r"} for u in range(N_USERS)})
    # records may be plain strings; keys may be numpy integers
    write_pickle(src / "itm_prf.pkl", {np.int64(i): f"item {i}" for i in range(N_ITEMS)})
    user_vectors = np.arange(N_USERS * 3, dtype=np.float64).reshape(N_USERS, 3)
    write_pickle(src / "usr_emb_np.pkl", user_vectors)
    write_pickle(src / "itm_emb_np.pkl", np.ones((N_ITEMS, 3), dtype=np.float32))

    summary = prepare_rlmrec(src, "tiny", out)
    target = out / "tiny"
    assert read_profiles(target / "tiny.user_profile.jsonl") == {str(u): f"user {u}" for u in range(N_USERS)}
    assert read_profiles(target / "tiny.item_profile.jsonl") == {str(i): f"item {i}" for i in range(N_ITEMS)}
    assert "source_id" not in (target / "tiny.item_profile.jsonl").read_text(encoding="utf-8")
    assert summary.embeddings == {"user": (N_USERS, 3), "item": (N_ITEMS, 3)}
    with np.load(target / "tiny.user_emb.npz", allow_pickle=False) as npz:
        assert npz["ids"].tolist() == [str(u) for u in range(N_USERS)]
        assert npz["embeddings"].dtype == np.float32
        np.testing.assert_array_equal(npz["embeddings"], user_vectors.astype(np.float32))
    with np.load(target / "tiny.item_emb.npz", allow_pickle=False) as npz:
        assert npz["embeddings"].shape == (N_ITEMS, 3)


def test_csv_and_pickle_profiles_give_the_same_files(src: Path, tmp_path: Path) -> None:
    prepare_rlmrec(src, "tiny", tmp_path / "a")
    write_pickle(src / "usr_prf.pkl", {int(r[0]): {"profile": r[2]} for r in USER_ROWS})
    write_pickle(src / "itm_prf.pkl", {int(r[0]): {"profile": r[2]} for r in ITEM_ROWS})
    summary = prepare_rlmrec(src, "tiny", tmp_path / "b")  # the pickles win over the CSVs
    assert summary.profile_sources == {"user": "usr_prf.pkl", "item": "itm_prf.pkl"}
    assert "tiny_item_profiles.csv: ignored, itm_prf.pkl is used for the item profiles" in summary.warnings
    for name in ("tiny.train.inter", "tiny.valid.inter", "tiny.test.inter", "tiny.yaml"):
        assert (tmp_path / "a/tiny" / name).read_bytes() == (tmp_path / "b/tiny" / name).read_bytes()
    for kind in ("user", "item"):
        a = read_profiles(tmp_path / f"a/tiny/tiny.{kind}_profile.jsonl")
        assert a == read_profiles(tmp_path / f"b/tiny/tiny.{kind}_profile.jsonl")


def test_user_profiles_are_optional(src: Path, out: Path) -> None:
    (src / "tiny_user_profiles.csv").unlink()
    summary = prepare_rlmrec(src, "tiny", out)
    assert not (out / "tiny/tiny.user_profile.jsonl").exists()
    assert "user" not in summary.profiles
    assert any("no user profiles" in w for w in summary.warnings)


def test_item_profiles_are_required(src: Path, out: Path) -> None:
    (src / "tiny_item_profiles.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"no item profiles.*itm_prf\.pkl.*item_profiles\.csv"):
        prepare_rlmrec(src, "tiny", out)


def test_rerun_overwrites_and_removes_stale_outputs(src: Path, out: Path) -> None:
    write_pickle(src / "itm_emb_np.pkl", np.ones((N_ITEMS, 2)))
    prepare_rlmrec(src, "tiny", out)
    assert (out / "tiny/tiny.item_emb.npz").exists()
    (src / "itm_emb_np.pkl").unlink()
    (src / "tiny_user_profiles.csv").unlink()
    write_matrix(src / "tst_mat.pkl", TEST[:1])
    summary = prepare_rlmrec(src, "tiny", out)
    assert summary.counts["test"] == 1
    assert read_inter(out / "tiny/tiny.test.inter")[1] == TEST[:1]
    assert not (out / "tiny/tiny.item_emb.npz").exists()
    assert not (out / "tiny/tiny.user_profile.jsonl").exists()


def test_values_other_than_one_are_an_error(src: Path, out: Path) -> None:
    # -3.0 at (0, 2), 2.0 at (1, 3), a stored zero at (2, 4) and one at (3, 1)
    write_matrix(src / "val_mat.pkl", VALID + [(3, 1)], values=[-3.0, 2.0, 0.0, 0.0])
    message = expect_error(
        src, out, "val_mat.pkl", "2 entries hold a value other than 1", "1 negative, 1 positive",
        "e.g. (row 0, column 2) = -3", "--binarize",
    )
    assert "\n" not in message


def test_a_positive_value_other_than_one_is_an_error_in_any_split(src: Path, out: Path) -> None:
    write_matrix(src / "trn_mat.pkl", TRAIN, values=[1.0] * (len(TRAIN) - 1) + [2.0], fmt="csr")
    expect_error(src, out, "trn_mat.pkl", "1 entries hold a value other than 1", "(row 3, column 4) = 2")


def test_explicit_zeros_are_dropped_with_a_warning(src: Path, out: Path) -> None:
    write_matrix(src / "tst_mat.pkl", TEST + [(2, 0)], values=[1.0, 1.0, 0.0])
    summary = prepare_rlmrec(src, "tiny", out)
    assert summary.counts["test"] == len(TEST)
    assert read_inter(out / "tiny/tiny.test.inter")[1] == sorted(TEST)
    assert "tst_mat.pkl: 1 explicitly stored zero entries were dropped (a stored 0 is no interaction)." in summary.warnings
    assert summary.matrix_values["test"] == {
        "binarized": 0, "dropped_negative": 0, "dropped_zero": 1, "summed_duplicates": 0
    }


def test_binarize_reads_positive_values_as_one_and_drops_the_rest(src: Path, out: Path) -> None:
    # valid: -3.0 and 2.0 and a stored zero; test: 5.0 and 0.5 (csr)
    write_matrix(src / "val_mat.pkl", VALID + [(3, 1)], values=[-3.0, 2.0, 1.0, 0.0])
    write_matrix(src / "tst_mat.pkl", TEST, values=[5.0, 0.5], fmt="csr")
    summary = prepare_rlmrec(src, "tiny", out, binarize=True)
    assert read_inter(out / "tiny/tiny.valid.inter")[1] == [(1, 3), (2, 4)]  # -3.0 and 0.0 are no interactions
    assert read_inter(out / "tiny/tiny.test.inter")[1] == sorted(TEST)
    assert summary.counts == {"train": len(TRAIN), "valid": 2, "test": 2}
    assert summary.binarize is True
    assert summary.matrix_values == {
        "train": {"binarized": 0, "dropped_negative": 0, "dropped_zero": 0, "summed_duplicates": 0},
        "valid": {"binarized": 1, "dropped_negative": 1, "dropped_zero": 1, "summed_duplicates": 0},
        "test": {"binarized": 2, "dropped_negative": 0, "dropped_zero": 0, "summed_duplicates": 0},
    }
    manifest = json.loads((out / "tiny/PREPARED.json").read_text(encoding="utf-8"))
    assert manifest["binarize"] is True and manifest["matrix_values"] == summary.matrix_values


def test_binarize_never_makes_a_training_set_of_negatives(src: Path, out: Path) -> None:
    write_matrix(src / "trn_mat.pkl", TRAIN, values=[-1.0] * len(TRAIN))
    with pytest.raises(RLMRecFormatError, match=r"trn_mat\.pkl: no interactions \(no entry of value > 0\)"):
        prepare_rlmrec(src, "tiny", out, binarize=True)


def test_duplicate_entries_are_summed_before_the_check(src: Path, out: Path) -> None:
    # (0, 2) stored twice as 1.0: the cell holds 2 (scipy's reading), which is not an interaction of value 1
    write_matrix(src / "val_mat.pkl", VALID + [VALID[0]])
    expect_error(src, out, "val_mat.pkl", "(row 0, column 2) = 2 (the sum of its 2 stored entries)", "--binarize")
    summary = prepare_rlmrec(src, "tiny", out, binarize=True)
    assert summary.counts["valid"] == len(VALID)
    assert summary.matrix_values["valid"]["binarized"] == 1
    assert summary.matrix_values["valid"]["summed_duplicates"] == 1
    assert any("val_mat.pkl: 1 (user, item) cells are stored more than once" in w for w in summary.warnings)
    # entries that add up to 1 are one interaction, without --binarize
    write_matrix(src / "val_mat.pkl", VALID + [VALID[0]], values=[0.5, 1.0, 1.0, 0.5])
    assert prepare_rlmrec(src, "tiny", out).counts["valid"] == len(VALID)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_values_are_an_error_even_with_binarize(src: Path, out: Path, bad: float) -> None:
    write_matrix(src / "tst_mat.pkl", TEST, values=[1.0, bad])
    with pytest.raises(RLMRecFormatError, match=r"tst_mat\.pkl: 1 entries are NaN or infinite, e\.g\. \(3, 0\)"):
        prepare_rlmrec(src, "tiny", out, binarize=True)
    assert not (out / "tiny").exists()


def test_failed_write_leaves_no_partial_files(
    src: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare_rlmrec(src, "tiny", out)
    write_pickle(src / "itm_emb_np.pkl", np.ones((N_ITEMS, 2)))

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare_rlmrec(src, "tiny", out)
    names = {p.name for p in (out / "tiny").iterdir()}
    assert "tiny.item_emb.npz" not in names
    assert not [n for n in names if n.endswith(".tmp")]
    assert "PREPARED.json" not in names, "an interrupted run must not leave a manifest"


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "content, line, fragment",
    [
        ('0,B0,ok\n1,B1,"fine, quoted"\n2,B2,too,many\n', 4, "expected 3 fields"),
        ("0,B0,ok\n1,B1\n", 3, "expected 3 fields"),
        ('0,B0,"multi\nline"\nx1,B1,text\n', 4, "not a non-negative integer"),
        ('0,B0,"ok"\n1,B1,"bad" quote\n', 3, "malformed CSV"),
        ('0,B0,ok\n1,B1,"never closed\nmore\n', 3, "malformed CSV"),
    ],
)
def test_malformed_csv_line(src: Path, out: Path, content: str, line: int, fragment: str) -> None:
    """``content`` follows the header line; ``line`` is where the bad record starts."""
    path = src / "tiny_item_profiles.csv"
    path.write_text("item_id_int,item_id_raw,profile_text\n" + content, encoding="utf-8")
    expect_error(src, out, "tiny_item_profiles.csv", f"line {line}", fragment)


def test_csv_with_wrong_header(src: Path, out: Path) -> None:
    (src / "tiny_item_profiles.csv").write_text("id,text\n0,x\n", encoding="utf-8")
    expect_error(src, out, "tiny_item_profiles.csv", "line 1", "expected item_id_int,item_id_raw,profile_text")


def test_csv_that_is_not_utf8(src: Path, out: Path) -> None:
    (src / "tiny_item_profiles.csv").write_bytes(b"item_id_int,item_id_raw,profile_text\n0,B0,caf\xe9\n")
    expect_error(src, out, "tiny_item_profiles.csv", "UTF-8")


def test_matrix_of_the_wrong_shape(src: Path, out: Path) -> None:
    write_matrix(src / "val_mat.pkl", VALID, shape=(N_USERS, N_ITEMS + 1))
    expect_error(src, out, "val_mat.pkl", f"({N_USERS}, {N_ITEMS + 1})", "trn_mat.pkl", "re-export")


def test_matrix_that_is_not_sparse(src: Path, out: Path) -> None:
    write_pickle(src / "trn_mat.pkl", np.ones((N_USERS, N_ITEMS)))
    expect_error(src, out, "trn_mat.pkl", "not a scipy sparse matrix", "re-export")


def test_empty_training_matrix(src: Path, out: Path) -> None:
    write_matrix(src / "trn_mat.pkl", [])
    expect_error(src, out, "trn_mat.pkl", "no interactions (no entry of value 1)")


def test_matrix_index_out_of_range(src: Path, out: Path) -> None:
    rows, cols = [u for u, _ in TEST], [i for _, i in TEST]
    matrix = sp.coo_matrix((np.ones(len(TEST)), (rows, cols)), shape=(N_USERS, N_ITEMS))
    matrix.col[0] = N_ITEMS + 7  # a tampered pickle: scipy would refuse to build this
    write_pickle(src / "tst_mat.pkl", matrix)
    expect_error(src, out, "tst_mat.pkl", f"outside 0..{N_ITEMS - 1}", "re-export")


@pytest.mark.parametrize("bad_id", [N_ITEMS, 99])
def test_profile_id_out_of_range(src: Path, out: Path, bad_id: int) -> None:
    write_csv(src / "tiny_item_profiles.csv", "item", ITEM_ROWS + [[str(bad_id), "BX", "stray"]])
    expect_error(
        src, out, "tiny_item_profiles.csv", "line 8",  # item 0's text spans lines 3-4
        f"item id {bad_id} is out of range",
        f"ids 0..{N_ITEMS - 1}",
    )


def test_pickle_profile_id_out_of_range(src: Path, out: Path) -> None:
    write_pickle(src / "usr_prf.pkl", {u: {"profile": "x"} for u in range(N_USERS + 1)})
    expect_error(src, out, "usr_prf.pkl", f"key {N_USERS}", "out of range")


def test_duplicate_profile_id(src: Path, out: Path) -> None:
    write_csv(src / "tiny_item_profiles.csv", "item", ITEM_ROWS + [["1", "B01", "again"]])
    # item 0's text spans lines 3-4, so item 1 starts on line 5 and the duplicate is on line 8
    expect_error(src, out, "tiny_item_profiles.csv", "line 8", "item id 1 appears twice", "first at line 5")


def test_embeddings_with_the_wrong_row_count(src: Path, out: Path) -> None:
    write_pickle(src / "usr_emb_np.pkl", np.ones((N_USERS + 2, 8)))
    expect_error(src, out, "usr_emb_np.pkl", f"{N_USERS + 2} rows", f"{N_USERS} users")


@pytest.mark.parametrize(
    "vectors, fragments",
    [
        (np.array([[1.0, 2.0]] * N_USERS + [[np.nan, 0.0]]), ["1 rows contain NaN or inf", f"user '{N_USERS}'"]),
        (np.ones(N_USERS), ["of shape (4,)", "2-D numeric matrix with one row per user"]),
        ({"not": "vectors"}, ["holds a dict", "Row i must be the vector of user i."]),
    ],
)
def test_bad_embeddings(src: Path, out: Path, vectors: object, fragments: List[str]) -> None:
    write_pickle(src / "usr_emb_np.pkl", vectors)
    expect_error(src, out, "usr_emb_np.pkl", *fragments)


@pytest.mark.parametrize(
    "record, fragment",
    [({"reasoning": "only"}, "no 'profile' text"), (42, "is a int"), (["a"], "is a list")],
)
def test_profile_pickle_with_a_bad_record(src: Path, out: Path, record: object, fragment: str) -> None:
    records = {i: {"profile": "ok", "reasoning": "r"} for i in range(N_ITEMS)}
    records[2] = record  # type: ignore[assignment]
    write_pickle(src / "itm_prf.pkl", records)
    expect_error(src, out, "itm_prf.pkl", "item 2", fragment)


@pytest.mark.parametrize(
    "first, second, pair",
    [
        ("trn_mat.pkl", "val_mat.pkl", VALID[0]),
        ("val_mat.pkl", "tst_mat.pkl", TEST[1]),
        ("trn_mat.pkl", "tst_mat.pkl", TEST[0]),
    ],
)
def test_overlapping_splits(src: Path, out: Path, first: str, second: str, pair: Pair) -> None:
    pairs = {"trn_mat.pkl": TRAIN, "val_mat.pkl": VALID, "tst_mat.pkl": TEST}
    write_matrix(src / first, pairs[first] + [pair])
    expect_error(src, out, first, second, "share 1 (user, item) pairs", f"e.g. {pair}", "disjoint")


class Payload:
    """Unpickling this runs ``os.mkdir(marker)``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # type: ignore[override]
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("name", ["trn_mat.pkl", "itm_prf.pkl", "usr_emb_np.pkl"])
def test_pickle_with_a_disallowed_class(src: Path, out: Path, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    write_pickle(src / name, {"x": Payload(marker)} if name != "trn_mat.pkl" else Payload(marker))
    message = expect_error(src, out, name, "posix.mkdir" if os.name == "posix" else "mkdir", "refuses to load")
    assert not marker.exists(), "the pickle's code must not run"
    assert "convert it" in message


def test_truncated_pickle(src: Path, out: Path) -> None:
    data = (src / "val_mat.pkl").read_bytes()
    (src / "val_mat.pkl").write_bytes(data[: len(data) // 2])
    expect_error(src, out, "val_mat.pkl", "not a readable pickle")


def test_missing_matrix_and_missing_folder(src: Path, out: Path, tmp_path: Path) -> None:
    (src / "tst_mat.pkl").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing tst_mat\.pkl.*--src"):
        prepare_rlmrec(src, "tiny", out)
    with pytest.raises(FileNotFoundError, match=r"no such directory.*--src"):
        prepare_rlmrec(tmp_path / "nope", "tiny", out)


@pytest.mark.parametrize("name", ["", "a/b", "../x", ".hidden", "with space"])
def test_bad_dataset_name(src: Path, out: Path, name: str) -> None:
    with pytest.raises(ValueError, match="cannot be used"):
        prepare_rlmrec(src, name, out)


def test_missing_profiles_and_cold_ids_warn_but_pass(src: Path, out: Path) -> None:
    rows = [r for r in ITEM_ROWS if r[0] != "4"] + [["4", "B04", "  "]]  # blank text = no profile
    write_csv(src / "tiny_item_profiles.csv", "item", rows)
    write_matrix(src / "trn_mat.pkl", [p for p in TRAIN if p[1] != 4])  # item 4 only in valid
    summary = prepare_rlmrec(src, "tiny", out)
    assert summary.profiles["item"] == N_ITEMS - 1
    assert "4" not in read_profiles(out / "tiny/tiny.item_profile.jsonl")
    warnings = " | ".join(summary.warnings)
    assert "1 of 5 items have no (or an empty) profile, e.g. item 4" in warnings
    assert "val_mat.pkl: 1 items (1 interactions) do not occur in training" in warnings


# ----------------------------------------------------------------------------- CLI


def test_cli_prints_summary(src: Path, out: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["prepare", "rlmrec", "--src", str(src), "--dataset", "tiny", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert "train" in captured.out and f"{len(TRAIN):>12}" in captured.out
    assert "tiny.yaml" in captured.out
    assert "matrix values:   only 1s" in captured.out
    assert "wrote" in captured.err
    assert (out / "tiny/PREPARED.json").exists()


@pytest.mark.parametrize(
    "breakage, fragment",
    [
        (lambda s: write_matrix(s / "val_mat.pkl", VALID, shape=(9, 9)), "val_mat.pkl"),
        (lambda s: write_pickle(s / "trn_mat.pkl", Payload(s / "pwned")), "refuses to load"),
        (lambda s: (s / "tiny_item_profiles.csv").write_text("item_id_int,item_id_raw,profile_text\n0\n"), "line 2"),
        (lambda s: (s / "trn_mat.pkl").unlink(), "missing trn_mat.pkl"),
        (
            lambda s: write_matrix(s / "trn_mat.pkl", TRAIN, values=[1.0] * 7 + [-3.0, 2.0]),
            "trn_mat.pkl: 2 entries hold a value other than 1 (1 negative, 1 positive), e.g. (row 3, column 3) = -3",
        ),
    ],
)
def test_cli_reports_bad_input_without_traceback(
    src: Path, out: Path, capsys: pytest.CaptureFixture, breakage, fragment: str
) -> None:
    breakage(src)
    code = main(["prepare", "rlmrec", "--src", str(src), "--dataset", "tiny", "--out", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("error: ")
    assert fragment in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_cli_binarize_flag(src: Path, out: Path, capsys: pytest.CaptureFixture) -> None:
    write_matrix(src / "val_mat.pkl", VALID + [(3, 1)], values=[-3.0, 2.0, 1.0, 0.0])
    argv = ["prepare", "rlmrec", "--src", str(src), "--dataset", "tiny", "--out", str(out), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {src / 'val_mat.pkl'}: 2 entries hold a value other than 1 ")
    assert err.count("\n") == 1, "one line"
    assert "Traceback" not in err
    assert main(argv + ["--binarize"]) == 0
    captured = capsys.readouterr()
    assert (
        "matrix values:   1 positive values read as 1 (--binarize); 1 negative entries dropped; "
        "1 stored zeros dropped"
    ) in captured.out
    assert read_inter(out / "tiny/tiny.valid.inter")[1] == [(1, 3), (2, 4)]


# ----------------------------------------------------------------------------- RecBole


def test_recbole_loads_the_prepared_dataset(
    src: Path, out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = prepare_rlmrec(src, "tiny", out)
    monkeypatch.setattr(sys, "argv", ["x"])
    monkeypatch.chdir(tmp_path)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation

    config = Config(
        model="BPR",
        dataset="tiny",
        config_file_list=[str(summary.config_file)],
        config_dict={"data_path": str(out), "epochs": 1, "train_batch_size": 4, "eval_batch_size": 64,
                     "show_progress": False, "save_dataset": False, "save_dataloaders": False},
    )
    dataset = create_dataset(config)
    assert dataset.user_num == N_USERS + 1 and dataset.item_num == N_ITEMS + 1  # + [PAD]
    train_data, valid_data, test_data = data_preparation(config, dataset)
    expected: Dict[str, List[Pair]] = {"train": TRAIN, "valid": VALID, "test": TEST}
    for name, loader in (("train", train_data), ("valid", valid_data), ("test", test_data)):
        part = loader._dataset
        assert part.inter_num == len(expected[name])
        users = part.id2token(part.uid_field, part.inter_feat[part.uid_field].numpy())
        items = part.id2token(part.iid_field, part.inter_feat[part.iid_field].numpy())
        assert sorted((int(u), int(i)) for u, i in zip(users, items)) == sorted(expected[name])


# ----------------------------------------------------------------------------- real data


@pytest.mark.skipif(
    not REAL_DATA.is_dir(),
    reason=f"shared RLMRec Amazon-book data not found at {REAL_DATA} (it sits in shared/ beside the "
    "repository; a clone without shared/ beside it skips this test)",
)
def test_real_amazon_book_counts(tmp_path: Path) -> None:
    # figures from REAL_DATA/PROVENANCE.md and the README
    summary = prepare_rlmrec(REAL_DATA, "amazon-book", tmp_path)
    assert summary.counts == {"train": 120_464, "valid": 40_290, "test": 40_106}
    assert summary.matrix_values == {
        s: {"binarized": 0, "dropped_negative": 0, "dropped_zero": 0, "summed_duplicates": 0}
        for s in ("train", "valid", "test")
    }, "RLMRec's matrices hold float64 ones only"
    assert (summary.n_users, summary.n_items) == (11_000, 9_332)
    assert summary.profiles == {"user": 11_000, "item": 9_332}
    assert summary.split_users["train"] == 11_000 and summary.split_items["train"] == 9_332
    assert summary.warnings == ()
    target = tmp_path / "amazon-book"
    for split, n in summary.counts.items():
        lines = (target / f"amazon-book.{split}.inter").read_text(encoding="utf-8").count("\n")
        assert lines == n + 1
    items = read_profiles(target / "amazon-book.item_profile.jsonl")
    assert len(items) == 9_332 and set(items) == {str(i) for i in range(9_332)}
    manifest = json.loads((target / "PREPARED.json").read_text(encoding="utf-8"))
    assert manifest["binarize"] is False
    assert {name: entry["sha256"] for name, entry in manifest["source_files"].items()} == {  # PROVENANCE.md
        "trn_mat.pkl": "535cc15f915858a64249e3a893cceac9efe8e6f1ce17c08879a3c099c510b309",
        "val_mat.pkl": "90cd52a011f9b31081461a010e9bccb98d12a1dd7a7760085facbc7d1a2c46c3",
        "tst_mat.pkl": "c279ce551d32536ed90d916212bc0b891ce4c189ea7cfa5e4051e0dbfc728d17",
        "amazon_user_profiles.csv": "1fb7c7c6c5047875e248ac9748d7f14d24ea80bb36cb927300c94dc7c2223c5c",
        "amazon_item_profiles.csv": "1c5b6b121b236f5c0dd35fbb342208160c6bf580faea9e2bea91ddfc04689b8a",
    }

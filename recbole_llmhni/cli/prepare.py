"""``python -m recbole_llmhni prepare rlmrec --src DIR --dataset NAME [--out dataset] [--binarize]``.

Converts a dataset in RLMRec's layout into RecBole benchmark atomic files, profile files and
a dataset YAML (see :mod:`recbole_llmhni.prepare.rlmrec`), then prints a summary table.
Step messages and progress bars go to stderr, the summary to stdout.

Only matrix cells of value 1 are interactions; any other nonzero value stops the run with a
one-line error, unless ``--binarize`` asks to read positive values as 1 and drop negative
ones. Stored zeros are never interactions.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, List

from recbole_llmhni.cli._logging import stderr_logging

if TYPE_CHECKING:  # the converter (numpy, scipy) is imported only when the command runs
    from recbole_llmhni.prepare.rlmrec import PreparedDataset

__all__ = ["register", "run_rlmrec", "format_summary"]

_LOGGER_NAME = "recbole_llmhni.prepare"


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Add ``prepare`` (with its ``rlmrec`` format) to the top-level sub-parsers."""
    prepare = subparsers.add_parser(
        "prepare",
        help="convert a dataset into RecBole atomic files, profiles and a dataset YAML",
        description="Convert a published dataset layout into RecBole benchmark atomic files "
        "(the source's own train/valid/test split), LLMHNI profile files and a dataset YAML.",
    )
    formats = prepare.add_subparsers(dest="format", metavar="<format>")
    formats.required = True
    rlmrec = formats.add_parser(
        "rlmrec",
        help="RLMRec layout: trn/val/tst_mat.pkl + profiles (usr_prf.pkl/itm_prf.pkl or CSV)",
        description="Convert an RLMRec dataset folder (trn_mat.pkl, val_mat.pkl, tst_mat.pkl; "
        "item profiles as itm_prf.pkl or *item_profiles.csv; optional user profiles and "
        "usr_emb_np.pkl/itm_emb_np.pkl) into <out>/<NAME>/.",
    )
    rlmrec.add_argument("--src", required=True, metavar="DIR", help="the RLMRec dataset folder")
    rlmrec.add_argument(
        "--dataset", required=True, metavar="NAME", help="RecBole dataset name (folder and file prefix)"
    )
    rlmrec.add_argument(
        "--out",
        default="dataset",
        metavar="DIR",
        help="RecBole data_path to write into; files go to DIR/NAME/ (default: dataset)",
    )
    rlmrec.add_argument(
        "--binarize",
        action="store_true",
        help="read positive matrix values other than 1 (ratings, counts, summed duplicate entries) "
        "as one interaction each and drop negative ones; without it such values are an error. "
        "Zero entries are never interactions",
    )
    rlmrec.add_argument(
        "-q", "--quiet", action="store_true", help="no step messages or progress bars (warnings still shown)"
    )
    rlmrec.set_defaults(func=run_rlmrec)


class _StepFormatter(logging.Formatter):
    """Plain messages for steps, ``warning: ...`` for warnings."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def _int(n: int) -> str:
    return f"{n:,}"


def _values_text(summary: "PreparedDataset") -> str:
    """What was binarised or dropped, over all splits: ``only 1s`` when nothing was."""
    totals = {key: sum(counts.get(key, 0) for counts in summary.matrix_values.values())
              for key in ("binarized", "dropped_negative", "dropped_zero")}
    parts = []
    if totals["binarized"]:
        parts.append(f"{_int(totals['binarized'])} positive values read as 1 (--binarize)")
    if totals["dropped_negative"]:
        parts.append(f"{_int(totals['dropped_negative'])} negative entries dropped")
    if totals["dropped_zero"]:
        parts.append(f"{_int(totals['dropped_zero'])} stored zeros dropped")
    return "; ".join(parts) if parts else "only 1s"


def format_summary(summary: "PreparedDataset", out: str) -> str:
    """The table printed after a successful run."""
    lines: List[str] = [
        f"prepared '{summary.dataset}' from {summary.source} into {summary.directory}",
        "",
        f"  {'split':<6} {'interactions':>12} {'users':>8} {'items':>8}",
    ]
    for split, count in summary.counts.items():
        lines.append(
            f"  {split:<6} {_int(count):>12} {_int(summary.split_users[split]):>8} "
            f"{_int(summary.split_items[split]):>8}"
        )
    lines.append(
        f"  {'total':<6} {_int(sum(summary.counts.values())):>12} "
        f"{_int(summary.n_users):>8} {_int(summary.n_items):>8}"
    )
    lines.append("")
    for kind, n in (("user", summary.n_users), ("item", summary.n_items)):
        found = summary.profiles.get(kind)
        text = "none" if found is None else f"{_int(found)} of {_int(n)} ({summary.profile_sources[kind]})"
        lines.append(f"  {kind} profiles:   {text}")
    for kind in ("user", "item"):
        shape = summary.embeddings.get(kind)
        text = "none" if shape is None else f"{_int(shape[0])} x {shape[1]}"
        lines.append(f"  {kind} embeddings: {text}")
    lines.append(f"  matrix values:   {_values_text(summary)}")
    lines.append(f"  warnings:        {len(summary.warnings)}")
    lines.append(f"  config:          {summary.config_file}")
    data_path = "" if Path(out) == Path("dataset") else f" --data_path={out}"
    lines.append("")
    lines.append(f"use it: --dataset={summary.dataset}{data_path}")
    return "\n".join(lines)


def run_rlmrec(args: argparse.Namespace) -> int:
    """Run ``prepare rlmrec``; input errors propagate to the dispatcher (``error: ...``, exit 2)."""
    from recbole_llmhni.prepare.rlmrec import prepare_rlmrec

    with stderr_logging(_LOGGER_NAME, args.quiet, _StepFormatter()):
        summary = prepare_rlmrec(
            args.src, args.dataset, args.out, progress=not args.quiet, binarize=args.binarize
        )
    print(format_summary(summary, args.out))
    return 0

"""``python -m recbole_llmhni pipeline --model=M --dataset=D [--key=value ...]``: S1-S7 alone.

Runs (or reuses) the offline stages a training run of ``M`` on ``D`` would run, on the same
training split, and prints one line per stage: what was reused or computed, where, how long.
``--json FILE`` also writes the stage reports as JSON. Every other ``--key=value`` is a config
key, exactly as on ``run_recbole_llmhni.py``.
"""
from __future__ import annotations

import argparse

from recbole_llmhni.cli._logging import stderr_logging
from recbole_llmhni.cli.args import isolated_argv

__all__ = ["register"]


def register(subparsers: "argparse._SubParsersAction") -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help="run (or reuse) the offline stages S1-S7 of a model on a dataset, without training",
        description="Run the offline stages S1-S7 exactly as a training run would, and report each. "
        "Other --key=value arguments are config keys (as on run_recbole_llmhni.py).",
    )
    parser.add_argument("--model", default="LLMHNI_LightGCN", help="an LLMHNI model (default: LLMHNI_LightGCN)")
    parser.add_argument("--dataset", default="ml-100k", help="dataset name (default: ml-100k)")
    parser.add_argument("--config_files", default=None, help="space-separated YAML config files")
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the stage reports as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="only the summary table")
    parser.set_defaults(func=run, config_keys=True)


def run(args: argparse.Namespace) -> int:
    from recbole_llmhni.artifacts import atomic_write_json
    from recbole_llmhni.quick_start import run_pipeline

    config_dict = dict(args.extra)
    config_dict.setdefault("show_progress", not args.quiet)
    files = args.config_files.split() if args.config_files else None
    with isolated_argv(), stderr_logging("recbole_llmhni", args.quiet):
        result = run_pipeline(args.model, args.dataset, files, config_dict)
    print(f"pipeline of {args.model} on {args.dataset}:")
    for report in result.reports:
        print("  " + report.line())
    if args.json:
        atomic_write_json(args.json, result.to_dict())
        print(f"stage reports written to {args.json}")
    return 0

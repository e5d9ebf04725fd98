"""``python -m recbole_llmhni align-check --model M --dataset D [--data_path DIR] [--set KEY=VALUE ...] [--KEY=VALUE ...]``.

Runs stages S1 (encode profiles) and S2 (alignment) exactly as training ``M`` on ``D`` would
(reusing their cached artifacts) and prints Recall@K on the validation split (``--split test``:
the test split) of popularity, raw cosine and aligned relevance
(:mod:`recbole_llmhni.semantic.check`). Progress and stage messages go to stderr, the table
to stdout.
"""
from __future__ import annotations

import argparse

from recbole_llmhni.cli._logging import stderr_logging
from recbole_llmhni.cli.args import isolated_argv, parse_key_values

__all__ = ["register", "run_align_check"]


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Add ``align-check`` to the top-level sub-parsers."""
    parser = subparsers.add_parser(
        "align-check",
        help="Recall@K of raw cosine vs aligned semantic relevance (S1-S2) on held-out items",
        description="Encode the profiles and train (or reuse) the alignment MLP as a training run "
        "of --model would, then rank the held-out items of every user by popularity, raw cosine "
        "and aligned relevance, training items masked, and print Recall@K of each.",
    )
    parser.add_argument("--model", default="LLMHNI_LightGCN", help="model whose config applies (default: LLMHNI_LightGCN)")
    parser.add_argument("--dataset", default="ml-100k", help="dataset name (default: ml-100k)")
    parser.add_argument("--data_path", default=None, help="RecBole data_path (default: RecBole's)")
    parser.add_argument("--config_files", default=None, help="space-separated YAML config files")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config key, e.g. --set llmhni_align_epochs=50 (repeatable; values parsed as YAML)",
    )
    parser.add_argument("--split", choices=("valid", "test"), default="valid", help="held-out split (default: valid)")
    parser.add_argument("--cutoff", type=int, default=20, metavar="K", help="K of Recall@K (default: 20)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no stage messages or progress bars")
    parser.set_defaults(func=run_align_check, config_keys=True)


def run_align_check(args: argparse.Namespace) -> int:
    """Run ``align-check``; bad input propagates to the dispatcher (``error: ...``, exit 2)."""
    from recbole_llmhni.quick_start import alignment_check
    from recbole_llmhni.semantic.check import format_check

    config_dict = {**parse_key_values(args.overrides), **args.extra}
    if args.data_path is not None:
        config_dict["data_path"] = args.data_path
    config_dict.setdefault("show_progress", not args.quiet)
    config_files = args.config_files.split() if args.config_files else None
    with isolated_argv(), stderr_logging("recbole_llmhni", args.quiet):
        result = alignment_check(
            model=args.model,
            dataset=args.dataset,
            config_file_list=config_files,
            config_dict=config_dict,
            split=args.split,
            k=args.cutoff,
        )
    print(format_check(result))
    return 0

"""Training: ``recbole-llmhni run --model=M --dataset=D [--config_files=...] [--key=value]``.

The same command as ``python run_recbole_llmhni.py --model=M --dataset=D ...`` (the script in
the repository calls :func:`main` here): one argument parser (:func:`add_arguments`) and one
run function (:func:`run`) serve both, so a pip-installed plugin trains from any folder.
Other ``--key=value`` arguments are RecBole or plugin config keys, values read as YAML and
passed as RecBole's ``config_dict`` (over the ``--config_files``, as RecBole's own command
line is).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from recbole_llmhni.cli.args import isolated_argv, parse_key_values
from recbole_llmhni.config.validate import ConfigError
from recbole_llmhni.data.locate import DatasetNotFoundError
from recbole_llmhni.registry import UnknownModelError

__all__ = ["add_arguments", "build_parser", "format_result", "main", "register", "run"]

_DESCRIPTION = (
    "Train and evaluate a plugin model or a RecBole baseline, then print the best validation "
    "and the test metrics. Other --key=value arguments are config keys (e.g. --epochs=1)."
)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The training arguments, shared by the script and the ``run`` sub-command."""
    parser.add_argument("--model", "-m", default="LLMHNI_LightGCN", help="model name")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", default=None, help="space-separated YAML config files")
    group = parser.add_argument_group(
        "more than one process (torch.distributed: gloo on the CPU, nccl on CUDA; RecBole's names)")
    group.add_argument("--nproc", type=int, default=1, help="processes on this machine (default 1)")
    group.add_argument("--world_size", type=int, default=-1, help="processes on all machines (default: nproc)")
    group.add_argument("--ip", default="localhost", help="address of the machine with group_offset 0")
    group.add_argument("--port", default="5678", help="free TCP port on that machine")
    group.add_argument("--group_offset", type=int, default=0,
                       help="global rank of this machine's first process (0, nproc, 2*nproc, ...)")
    return parser


def _distributed(args: argparse.Namespace) -> bool:
    return int(getattr(args, "nproc", 1) or 1) > 1 or int(getattr(args, "world_size", -1) or -1) > 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``run_recbole_llmhni.py``."""
    return add_arguments(argparse.ArgumentParser(description=_DESCRIPTION))


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Add ``run`` to the console script's sub-commands."""
    parser = subparsers.add_parser(
        "run", help="train and evaluate a model (plugin or RecBole baseline)", description=_DESCRIPTION
    )
    add_arguments(parser)
    parser.set_defaults(func=run, config_keys=True)


def format_result(result: dict) -> str:
    """Two lines a person reads: best validation and test metrics."""
    def fmt(metrics: dict) -> str:
        return "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items())

    return (
        f"{result['model']} on {result['dataset']}\n"
        f"  best valid: {fmt(result['best_valid_result'])}\n"
        f"  test:       {fmt(result['test_result'])}"
    )


def run(args: argparse.Namespace) -> int:
    """Train ``args.model`` on ``args.dataset`` with the config keys in ``args.extra``."""
    from recbole_llmhni.quick_start import run_recbole_llmhni

    config_files = args.config_files.split() if args.config_files else None
    config_dict = dict(getattr(args, "extra", {}) or {})
    try:
        with isolated_argv():  # the keys travel in config_dict, not through RecBole's argv reader
            if _distributed(args):
                from recbole_llmhni.distributed import launch

                result = launch("run", args.model, args.dataset, config_files, config_dict, nproc=args.nproc,
                                world_size=args.world_size, ip=args.ip, port=args.port,
                                group_offset=args.group_offset)
            else:
                result = run_recbole_llmhni(
                    model=args.model, dataset=args.dataset, config_file_list=config_files, config_dict=config_dict,
                )
    except (UnknownModelError, DatasetNotFoundError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result is None:  # a node without global rank 0: its record is on that node
        print("done: the run record and metrics are printed by the node with group_offset 0")
        return 0
    print(format_result(result))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """``run_recbole_llmhni.py``: the ``run`` sub-command without the word ``run``."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        args.extra = parse_key_values(extra)
    except ValueError as exc:
        parser.error(str(exc))
    return run(args)

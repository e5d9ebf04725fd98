"""Command line: ``python -m recbole_llmhni <stage> ...`` (also installed as ``recbole-llmhni``).

Each stage lives in its own module under :mod:`recbole_llmhni.cli` and exposes
``register(subparsers)``, which adds its sub-parser and sets ``func`` to the function that
runs it. Stage modules are imported only when listed here, so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

# sub-command modules: training first, then the pipeline's stages in order
STAGE_MODULES = (
    "recbole_llmhni.cli.run",
    "recbole_llmhni.cli.tune",
    "recbole_llmhni.cli.prepare",
    "recbole_llmhni.cli.semantic",
    "recbole_llmhni.cli.llm",
    "recbole_llmhni.cli.pipeline",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recbole-llmhni",
        description="recbole-llmhni: training (run), data preparation, the offline stages (S1-S7) "
        "and LLM tools of LLMHNI for RecBole. Example: recbole-llmhni run --model=BPR --dataset=ml-100k",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    subparsers.required = True
    for module_name in STAGE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # stage not installed in this build
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "config_keys", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        from recbole_llmhni.cli.args import parse_key_values

        args.extra = parse_key_values(extra)
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        # Bad input: the message already names the file/line/id and the fix.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

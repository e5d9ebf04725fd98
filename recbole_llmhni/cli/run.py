"""The training entry point behind ``run_recbole_llmhni.py``."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from recbole_llmhni.config.validate import ConfigError
from recbole_llmhni.data.locate import DatasetNotFoundError
from recbole_llmhni.registry import UnknownModelError

__all__ = ["main", "format_result"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train and evaluate a plugin model or a RecBole baseline. Other --key=value "
        "arguments are config keys (RecBole reads them from the command line)."
    )
    parser.add_argument("--model", "-m", default="LLMHNI_LightGCN", help="model name")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", default=None, help="space-separated YAML config files")
    return parser


def format_result(result: dict) -> str:
    """Two lines a person reads: best validation and test metrics."""
    def fmt(metrics: dict) -> str:
        return "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items())

    return (
        f"{result['model']} on {result['dataset']}\n"
        f"  best valid: {fmt(result['best_valid_result'])}\n"
        f"  test:       {fmt(result['test_result'])}"
    )


def main(argv: Optional[List[str]] = None) -> int:
    args, _ = build_parser().parse_known_args(argv)
    config_files = args.config_files.strip().split(" ") if args.config_files else None
    from recbole_llmhni.quick_start import run_recbole_llmhni

    try:
        result = run_recbole_llmhni(model=args.model, dataset=args.dataset, config_file_list=config_files)
    except (UnknownModelError, DatasetNotFoundError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_result(result))
    return 0

"""Tuning: ``recbole-llmhni tune --model=M --dataset=D --params_file=F [--max_evals=N]``.

Runs RecBole's own hyperopt search, ``recbole.trainer.hyper_tuning.HyperTuning``, whose module
imports nothing heavy (hyperopt is imported inside its methods, ray never), with
:func:`recbole_llmhni.quick_start.run_recbole_llmhni` as the objective, so any RecBole or
plugin (``llmhni_*``) key can be searched, over any model the ``run`` command takes.
``recbole.quick_start.objective_function`` is not used: ``recbole.quick_start`` imports ray.

The params file is RecBole's format, one key a line::

    learning_rate choice [0.001,0.002]
    llmhni_alpha uniform 0.1,0.9
    embedding_size choice [32,64]

``--algo exhaustive`` (default) visits every point of a grid of ``choice`` keys (then
``--max_evals`` caps the count), ``random`` and ``bayes`` (TPE) sample ``--max_evals`` points.
Writes, under ``--output_dir``: ``results.csv`` and ``results.md`` (one row per trial: its
parameters, the best validation metrics and the test metrics of that trial's best
checkpoint, the best row marked) and ``best.yaml`` (the fixed ``--key=value`` settings plus
the best trial's parameters), ready for ``recbole-llmhni run --config_files=best.yaml``.
Needs the ``tune`` extra (``pip install "recbole-llmhni[tune]"``: hyperopt).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
from pathlib import Path
from typing import Any, Dict, List

from recbole_llmhni.cli.args import isolated_argv
from recbole_llmhni.cli.run import add_arguments

__all__ = ["register", "results_table", "run_tune", "write_results"]


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Add ``tune`` to the console script's sub-commands."""
    parser = subparsers.add_parser(
        "tune",
        help="hyper-parameter search (RecBole's HyperTuning, hyperopt) over RecBole and llmhni_* keys",
        description="Search the keys of a RecBole params file with RecBole's HyperTuning, training "
        "each trial as 'run' does. Other --key=value arguments are fixed config keys.",
    )
    add_arguments(parser)
    parser.add_argument("--params_file", required=True, help="RecBole params file: 'key choice [a,b]' per line")
    parser.add_argument("--max_evals", type=int, default=None, help="most trials (default: the grid's size, or 10)")
    parser.add_argument("--algo", choices=("exhaustive", "random", "bayes"), default="exhaustive",
                        help="search algorithm (default: exhaustive grid over choice keys)")
    parser.add_argument("--early_stop", type=int, default=10, help="stop after this many trials without progress")
    parser.add_argument("--output_dir", default=None, help="where results.csv/.md and best.yaml go "
                        "(default: tune/<model>-<dataset>)")
    parser.set_defaults(func=run_tune, config_keys=True)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def results_table(trials: List[Dict[str, Any]], bigger: bool) -> List[Dict[str, Any]]:
    """One row per trial: ``trial``, the parameters, ``valid <metric>``, ``test <metric>``, ``best``.

    ``trials`` holds ``{"params": {...}, "best_valid_score": s, "best_valid_result": {...},
    "test_result": {...}}`` in trial order; the best row is the one of the highest (``bigger``)
    or lowest validation score, the first one on ties.
    """
    if not trials:
        return []
    scores = [t["best_valid_score"] for t in trials]
    best = scores.index(max(scores) if bigger else min(scores))
    rows = []
    for i, t in enumerate(trials):
        row: Dict[str, Any] = {"trial": i + 1}
        row.update(t["params"])
        row.update({f"valid {k}": v for k, v in t["best_valid_result"].items()})
        row.update({f"test {k}": v for k, v in t["test_result"].items()})
        row["best"] = "*" if i == best else ""
        rows.append(row)
    return rows


def write_results(rows: List[Dict[str, Any]], best_config: Dict[str, Any], out_dir: Path) -> None:
    """``results.csv``, ``results.md`` and ``best.yaml`` under ``out_dir``."""
    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    columns: List[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with open(out_dir / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    (out_dir / "results.md").write_text("\n".join(lines) + "\n")
    (out_dir / "best.yaml").write_text(yaml.safe_dump(best_config, sort_keys=True))


def _plain(value: Any) -> Any:
    """hyperopt hands numpy scalars; YAML and CSV want Python ones."""
    return value.item() if hasattr(value, "item") else value


def run_tune(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("hyperopt") is None:
        raise ValueError("tune needs hyperopt; install it with: pip install \"recbole-llmhni[tune]\"")
    if not Path(args.params_file).is_file():
        raise FileNotFoundError(f"--params_file {args.params_file!r} does not exist; write one 'key choice [a,b]' per line")
    from recbole.trainer.hyper_tuning import HyperTuning

    from recbole_llmhni.compat import install_hyperopt_rng
    from recbole_llmhni.quick_start import run_recbole_llmhni

    fixed = dict(getattr(args, "extra", {}) or {})
    files = args.config_files.split() if args.config_files else None
    trials: List[Dict[str, Any]] = []

    def objective(params: Dict[str, Any], config_file_list: Any = None) -> Dict[str, Any]:
        params = {k: _plain(v) for k, v in params.items()}
        with isolated_argv():
            result = run_recbole_llmhni(args.model, args.dataset, files, {**fixed, **params})
        trials.append({"params": params, **{k: result[k] for k in (
            "best_valid_score", "best_valid_result", "test_result", "valid_score_bigger")}})
        return {"model": args.model, **trials[-1]}

    install_hyperopt_rng()
    algo = args.algo
    tuner = HyperTuning(objective, params_file=args.params_file, algo=algo,
                        max_evals=args.max_evals or 10, early_stop=args.early_stop)
    if algo == "exhaustive" and args.max_evals:
        tuner.max_evals = min(tuner.max_evals, args.max_evals)  # HyperTuning sets it to the grid's size
    tuner.run()
    bigger = bool(trials[0]["valid_score_bigger"]) if trials else True
    rows = results_table(trials, bigger)
    best = next(i for i, row in enumerate(rows) if row["best"])
    out_dir = Path(args.output_dir or Path("tune") / f"{args.model}-{args.dataset}")
    write_results(rows, {**fixed, **trials[best]["params"]}, out_dir)
    print(f"{len(rows)} trials of {args.model} on {args.dataset}; best (trial {best + 1}): "
          + ", ".join(f"{k}={v}" for k, v in trials[best]["params"].items()))
    print(f"results: {out_dir / 'results.csv'}, {out_dir / 'results.md'}; best config: {out_dir / 'best.yaml'}")
    return 0

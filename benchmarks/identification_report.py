"""Identification report on RLMRec Amazon-book with injected noise (S1-S2 relevance, S4-S7).

Prepares ``amazon-books`` from the RLMRec release (``prepare_rlmrec``) into an ignored
folder, injects ``--noise`` (default 10%) random non-interacted pairs into the training
split, runs the offline pipeline on it (``LLMHNIPipeline``: S1 encode + S2 align for the
semantic relevance s(u, i) when the rater needs it, then S4-S7) and prints the
identification report of its result: how many injected pairs reached the candidate set, and
the precision / recall / F1 of the ``noisy`` label against them, with each stage's status
and time from the pipeline's stage reports.

Every stage is cached under ``--artifacts`` (and LLM answers / embeddings in ``--cache``),
so a second run only prints. The default rater is the offline ``semantic`` stand-in
(thresholds on s(u, i); no language model is involved, and the report says so); pass
``--rater openai`` with ``OPENAI_API_KEY`` (and ``--set llmhni_api_base_url=...`` for another
server) for the paper's gpt-4o ratings -- check the cost first with a small
``--set llmhni_cand_max_pairs=...``.

    python benchmarks/identification_report.py                       # defaults
    python benchmarks/identification_report.py --set llmhni_semantic_high=0.2 --set llmhni_cand_kp=5

First run, measured on 2 busy CPU cores: S1 encoding 22 min, S2 alignment 3-16 min, S4
pretraining 15 min, S5-S7 seconds; a run with everything cached takes about 10 s, and a
run that changes only rater settings recomputes S6-S7 alone (seconds for the stand-in).

Not part of CI (it needs ``../shared/data`` and minutes of CPU).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_SRC = REPO.parent / "shared" / "data" / "rlmrec-amazon-book"
DATASET = "amazon-books"


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", type=Path, default=DEFAULT_SRC, help="RLMRec Amazon-book folder (default: %(default)s)")
    p.add_argument("--data", type=Path, default=REPO / "dataset", help="where the prepared dataset goes (git-ignored)")
    p.add_argument("--artifacts", type=Path, default=REPO / "llmhni_artifacts", help="stage artifacts (git-ignored)")
    p.add_argument("--cache", type=Path, default=None, help="LLM/embedding cache folder (default: <artifacts>/llm_cache)")
    p.add_argument("--noise", type=float, default=0.1, help="llmhni_noise_ratio (default: %(default)s)")
    p.add_argument("--model", default="BackboneLightGCN", help="backbone of Rec_pre via the model name (default: %(default)s)")
    p.add_argument("--rater", default="semantic", choices=("semantic", "openai"))
    p.add_argument("--no-alignment", action="store_true", help="raw S1 cosine instead of S2's aligned relevance")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any further config key")
    p.add_argument("--json", type=Path, default=None, help="also write the report dict here")
    return p.parse_args(argv)


def prepare(src: Path, data: Path) -> None:
    from recbole_llmhni.prepare.rlmrec import MANIFEST_NAME, prepare_rlmrec

    if (data / DATASET / MANIFEST_NAME).is_file():
        print(f"[prepare] reusing {data / DATASET}")
        return
    started = time.perf_counter()
    summary = prepare_rlmrec(src, DATASET, data, progress=True)
    print(f"[prepare] {DATASET}: {summary.n_users} users, {summary.n_items} items, {summary.counts} "
          f"-> {data / DATASET} ({time.perf_counter() - started:.1f} s)")


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole parses every --key=value of the command line itself

    import recbole_llmhni  # noqa: F401  (compat shims first)
    from recbole.utils import init_logger

    from recbole_llmhni.config import config_get
    from recbole_llmhni.denoise.report import format_report
    from recbole_llmhni.pipeline import LLMHNIPipeline
    from recbole_llmhni.quick_start import build_config, build_splits

    prepare(args.src, args.data)
    config_dict = {
        "data_path": str(args.data),
        "llmhni_artifact_dir": str(args.artifacts),
        "llmhni_cache_dir": str(args.cache or args.artifacts / "llm_cache"),
        "llmhni_noise_ratio": args.noise,
        "llmhni_rater": args.rater,
        "llmhni_use_alignment": not args.no_alignment,
        "llmhni_denoise": True,
        # S1-S2 only where the rater needs s(u, i) (the semantic stand-in): S3 is not run here
        "llmhni_neg_mode": "uniform",
        "show_progress": True,
    }
    for item in args.set:
        key, _, value = item.partition("=")
        config_dict[key.strip()] = _value(value.strip())
    config = build_config(args.model, DATASET, config_dict=config_dict)
    init_logger(config)

    timings = {}
    started = time.perf_counter()
    train = build_splits(config)[0]  # seeded as a run with this config
    timings["dataset"] = time.perf_counter() - started

    started = time.perf_counter()
    result = LLMHNIPipeline(config).run(train)
    timings["pipeline"] = time.perf_counter() - started
    for stage in result.reports:
        if stage.status in ("computed", "reused"):
            timings[stage.stage] = stage.seconds
    graph = result.graph
    if graph is None:
        print("no denoised graph: S4-S7 are off for this config (llmhni_denoise=False)")
        return 1

    print()
    print(format_report(graph.report))
    print("  stages: " + "; ".join(f"{r.stage} {r.status}" for r in result.reports))
    print("  timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(f"  artifacts: {graph.directory}")
    keys = ("llmhni_pretrain_epochs", "llmhni_cand_kn", "llmhni_cand_kp", "llmhni_cand_max_pairs",
            "llmhni_liked_items", "llmhni_semantic_high", "llmhni_semantic_low")
    shown = {k: config_get(config, k) for k in keys}
    print("  settings: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    if args.json:
        args.json.write_text(json.dumps({"report": result.identification, "timings": timings, "settings": shown,
                                         "stages": result.to_dict()["stages"]}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())

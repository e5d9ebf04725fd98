"""Identification report on RLMRec Amazon-book with injected noise (S1-S2 relevance, S4-S7).

Prepares ``amazon-books`` from the RLMRec release (``prepare_rlmrec``) into an ignored
folder, injects ``--noise`` (default 10%) random non-interacted pairs into the training
split, computes the semantic relevance s(u, i) (S1 encode + S2 align, issue 4's
``LLMHNIDataset.semantic_embeddings``), runs S4-S7 and prints the identification report:
how many injected pairs reached the candidate set, and the precision / recall / F1 of the
``noisy`` label against them.

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
    from recbole.utils import init_logger, init_seed

    from recbole_llmhni.config import LLMHNIConfig
    from recbole_llmhni.data.dataset import LLMHNIDataset
    from recbole_llmhni.denoise.report import format_report

    prepare(args.src, args.data)
    config_dict = {
        "data_path": str(args.data),
        "llmhni_artifact_dir": str(args.artifacts),
        "llmhni_cache_dir": str(args.cache or args.artifacts / "llm_cache"),
        "llmhni_noise_ratio": args.noise,
        "llmhni_rater": args.rater,
        "llmhni_use_alignment": not args.no_alignment,
        "show_progress": True,
    }
    for item in args.set:
        key, _, value = item.partition("=")
        config_dict[key.strip()] = _value(value.strip())
    config = LLMHNIConfig(model=args.model, dataset=DATASET, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)

    timings = {}
    started = time.perf_counter()
    train = LLMHNIDataset(config).build()[0]
    timings["dataset"] = time.perf_counter() - started

    relevance = None
    if args.rater == "semantic":
        started = time.perf_counter()
        relevance = train.semantic_embeddings()
        timings["S1+S2 relevance"] = time.perf_counter() - started

    started = time.perf_counter()
    graph = train.denoised_graph(relevance=relevance)
    timings["S4-S7"] = time.perf_counter() - started

    print()
    print(format_report(graph.report))
    print("  timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(f"  artifacts: {graph.directory}")
    keys = ("llmhni_pretrain_epochs", "llmhni_cand_kn", "llmhni_cand_kp", "llmhni_cand_max_pairs",
            "llmhni_liked_items", "llmhni_semantic_high", "llmhni_semantic_low")
    from recbole_llmhni.denoise.pipeline import DEFAULTS
    from recbole_llmhni.llm.settings import DEFAULTS as LLM_DEFAULTS

    shown = {k: config[k] if config[k] is not None else {**DEFAULTS, **LLM_DEFAULTS}.get(k) for k in keys}
    print("  settings: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    if args.json:
        args.json.write_text(json.dumps({"report": graph.report, "timings": timings, "settings": shown}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())

"""The semantic stand-in's thresholds against injected noise: fixed values vs per-dataset quantiles.

For one dataset and noise ratio, runs the offline pipeline (``LLMHNIPipeline``, S1-S7) once per
rater setting and prints, side by side, the identification report's precision / recall / F1 of
the ``noisy`` label against the injected pairs, with the same figures for removing every
low-score positive (Rec_pre alone) and for removing as many pairs at random. Settings:

* ``absolute 0.5/0.2``: the stand-in's former fixed relevance thresholds;
* ``quantile q``: ``llmhni_semantic_high = q`` (``low`` 0.05) as a quantile level of each
  view's relevance over the training positives (``llmhni_semantic_thresholds: quantile``);
* ``simulated a``: the oracle rater (``llmhni_rater: oracle``) at accuracy ``a`` -- it knows the
  injected pairs: a simulated rater, not a result of any model.

S1-S5 are computed once and reused by every setting (stage directories under
``--artifact-dir``); each setting recomputes S6-S7 only (seconds). The table is written to
``benchmarks/results/identification/<dataset>/standin_calibration_noise<r>.json``.

    python benchmarks/standin_calibration.py --dataset ml-100k --noise 0.1
    python benchmarks/standin_calibration.py --dataset amazon-books --data-path dataset --noise 0.1
    python benchmarks/standin_calibration.py --dataset amazon-books --data-path dataset --noise 0.1 \
        --set llmhni_cand_max_pairs=40000 --quantiles 0.1 0.25 --accuracies   # a larger S5 budget

The rater settings are judged on the *training* split's injected pairs only; nothing here
reads validation or test data.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUANTILES = [0.1, 0.25, 0.4, 0.5, 0.6]
ACCURACIES = [0.5, 0.7, 0.9, 1.0]


def settings(quantiles: List[float], accuracies: List[float]) -> Dict[str, Dict[str, Any]]:
    out = {"absolute 0.5/0.2": {"llmhni_semantic_thresholds": "absolute", "llmhni_semantic_high": 0.5,
                                "llmhni_semantic_low": 0.2}}
    out.update({f"quantile {q:g}": {"llmhni_semantic_high": q, "llmhni_semantic_low": min(0.05, q)} for q in quantiles})
    out.update({f"simulated a={a:g}": {"llmhni_rater": "oracle", "llmhni_oracle_accuracy": a} for a in accuracies})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--data-path", default=None, help="RecBole data_path (default: RecBole's; ml-100k ships with it)")
    p.add_argument("--model", default="LLMHNI_LightGCN")
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--artifact-dir", default=str(REPO / "llmhni_artifacts"))
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--quantiles", type=float, nargs="*", default=QUANTILES)
    p.add_argument("--accuracies", type=float, nargs="*", default=ACCURACIES)
    p.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "identification"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key for every setting (YAML value), e.g. llmhni_cand_max_pairs=40000; "
                        "named in the result file's name")
    args = p.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole reads --key=value from the command line

    from recbole_llmhni.quick_start import run_pipeline

    base = {"llmhni_noise_ratio": args.noise, "llmhni_artifact_dir": args.artifact_dir, "show_progress": False,
            "llmhni_cache_dir": args.cache_dir or str(Path(args.artifact_dir) / "llm_cache")}
    if args.data_path:
        base["data_path"] = args.data_path
    from runner import parse_overrides  # benchmarks/: compare.py's --set, read the same way

    overrides = parse_overrides(args.set)
    base.update(overrides)
    rows = []
    for name, extra in settings(args.quantiles, args.accuracies).items():
        started = time.perf_counter()
        result = run_pipeline(args.model, args.dataset, config_dict={**base, **extra})
        ident = result.graph.report["identification"]
        rows.append({"setting": name, "config": extra, "rater": result.graph.report["rater"],
                     "seconds": time.perf_counter() - started, "identification": ident,
                     "edges": result.graph.report["edges"]})
        refs = ident["references"]
        print(f"{name:<20} P {ident['precision']:.3f} R {ident['recall']:.3f} F1 {ident['f1']:.3f} "
              f"removed {ident['labelled_noisy']:>6,} added {result.graph.report['edges']['added']:>6,} | "
              f"every low-score positive P {refs['all_low_score_positives']['precision']:.3f} "
              f"R {refs['all_low_score_positives']['recall']:.3f} | random P {refs['random_removal']['precision']:.3f} "
              f"R {refs['random_removal']['recall']:.3f}", flush=True)
    import torch

    suffix = "".join(f"_{k}{v}" for k, v in overrides.items())
    out = Path(args.results) / args.dataset / f"standin_calibration_noise{args.noise:g}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/standin_calibration.py --dataset {} --noise {:g}{}{}{}{}".format(
        args.dataset, args.noise, f" --data-path {args.data_path}" if args.data_path else "",
        "".join(f" --set {item}" for item in args.set),
        "" if args.quantiles == QUANTILES else " --quantiles " + " ".join(f"{q:g}" for q in args.quantiles),
        "" if args.accuracies == ACCURACIES else (" --accuracies " + " ".join(f"{a:g}" for a in args.accuracies)).rstrip())
    out.write_text(json.dumps({"dataset": args.dataset, "model": args.model, "noise_ratio": args.noise,
                               "command": command, "settings": overrides, "rows": rows,
                               "machine": {"python": platform.python_version(), "torch": torch.__version__,
                                           "threads": torch.get_num_threads(), "cpu": platform.processor() or "CPU"}},
                              indent=1, default=str) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Seconds per training epoch: what hard-negative selection costs, uniform vs score-only vs semantic.

Side by side, in one run, on amazon-books (RLMRec's release, prepared from ``../shared/data``
into ``--data_path`` when missing), same batch size and same number of candidates M:

==============================================  =================================================
``LightGCN``                                    RecBole's LightGCN, uniform negatives (the base)
``LightGCN + DNS (RecBole dynamic)``            RecBole's own DNS: ``train_neg_sample_args``
                                                ``{dynamic: True, candidate_num: M}``; the data
                                                loader scores the M candidates with ``predict``
``LLMHNI_LightGCN uniform``                     the plugin's LightGCN, RecBole's negatives
``LLMHNI_LightGCN dns``                         score-only hard negatives inside ``calculate_loss``
``LLMHNI_LightGCN semantic``                    LLMHNI's S3 (semantic-guided, false negatives
                                                dropped), inside ``calculate_loss``
``LLMHNI_LightGCN semantic + S8``               the same with L_de and L_hal on (``--s8_lambda``,
                                                both weights; the scale-gated, lazy form)
``BackboneLightGCN``                            the plugin's LightGCN alone: the backbone the
                                                issue's "<= 1.5x its backbone" targets compare with
==============================================  =================================================

Training epochs run round-robin across the variants (a busy machine slows all of them alike),
each variant keeping its own random state between its epochs. The first epoch of each is a
warm-up and is not timed. Every variant is built as a run builds it (``prepare_run``: the
plugin's stages S1-S7 run before the model, from the shared caches in ``--artifact_dir``);
that setup time is printed separately. Targets: semantic sampling at most 1.3x RecBole
LightGCN's epoch; LLMHNI with S8 on at most 1.5x its backbone's.

    python benchmarks/semantic_sampling_speed.py                 # amazon-books, 2 timed epochs each, M=8
    python benchmarks/semantic_sampling_speed.py --dataset ml-100k --epochs 3 --json out.json

Not part of CI.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import recbole_llmhni  # noqa: E402,F401  (compat shims first)

from _rng import rng_state, set_rng_state  # benchmarks/_rng.py

DEFAULT_SRC = REPO.parent / "shared" / "data" / "rlmrec-amazon-book"


def variants(m: int, topk: int, s8_lambda: float):
    """(label, model, extra config) of every variant; the first is the base of the ratios."""
    return [
        ("LightGCN (RecBole)", "LightGCN", {}),
        (
            f"LightGCN + DNS (RecBole dynamic, M={m})",
            "LightGCN",
            {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "dynamic": True, "candidate_num": m}},
        ),
        ("LLMHNI_LightGCN uniform", "LLMHNI_LightGCN", {"llmhni_neg_mode": "uniform"}),
        (f"LLMHNI_LightGCN dns (M={m})", "LLMHNI_LightGCN", {"llmhni_neg_mode": "dns"}),
        (f"LLMHNI_LightGCN semantic (M={m}, k={topk})", "LLMHNI_LightGCN", {"llmhni_neg_mode": "semantic"}),
        (f"LLMHNI_LightGCN semantic + S8 ({s8_lambda})", "LLMHNI_LightGCN",
         {"llmhni_neg_mode": "semantic", "llmhni_lambda1": s8_lambda, "llmhni_lambda2": s8_lambda}),
        ("BackboneLightGCN", "BackboneLightGCN", {}),
    ]


def ensure_dataset(src: Path, dataset: str, data_path: Path) -> None:
    """Prepare an RLMRec dataset into ``data_path`` when it is missing (ml-100k ships with RecBole)."""
    if dataset == "ml-100k" or (data_path / dataset / f"{dataset}.inter").is_file():
        return
    from recbole_llmhni.prepare.rlmrec import prepare_rlmrec

    print(f"preparing {dataset} from {src} into {data_path}", file=sys.stderr)
    prepare_rlmrec(src, dataset, data_path)


def _setup(label: str, model: str, extra: dict, common: dict) -> dict:
    from recbole_llmhni.quick_start import prepare_run

    run = prepare_run(model, common["dataset"], config_dict={**common, **extra})
    if run.config["train_neg_sample_args"].get("dynamic", False):
        run.train_data.get_model(run.model)  # what Trainer.fit does for RecBole's dynamic sampling
    return {
        "label": label,
        "trainer": run.trainer,
        "train": run.train_data,
        "build_seconds": run.setup_seconds,
        "epochs": [],
        "losses": [],
        "n_train": len(run.train_data._dataset.inter_feat),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="RLMRec amazon-book folder")
    parser.add_argument("--dataset", default="amazon-books")
    parser.add_argument("--data_path", type=Path, default=REPO / "dataset", help="RecBole data_path (git-ignored)")
    parser.add_argument("--artifact_dir", type=Path, default=REPO / "llmhni_artifacts", help="llmhni_artifact_dir")
    parser.add_argument("--cache_dir", type=Path, default=None, help="llmhni_cache_dir (default: <artifact_dir>/llm_cache)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per variant (after one warm-up)")
    parser.add_argument("--batch_size", type=int, default=2048)
    parser.add_argument("--candidates", type=int, default=8, help="M")
    parser.add_argument("--topk", type=int, default=1, help="k of semantic mode")
    parser.add_argument("--s8_lambda", type=float, default=0.1, help="llmhni_lambda1 = llmhni_lambda2 of the S8 row")
    parser.add_argument("--gpu", action="store_true", help="train on CUDA; default CPU")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)

    import torch

    data_path = args.data_path.resolve()
    json_path = args.json.resolve() if args.json else None
    ensure_dataset(args.src, args.dataset, data_path)
    common = {
        "dataset": args.dataset,
        "use_gpu": bool(args.gpu),  # RecBole 1.2.1 takes CUDA whenever it is available
        "llmhni_artifact_dir": str(args.artifact_dir.resolve()),
        "llmhni_cache_dir": str((args.cache_dir or args.artifact_dir / "llm_cache").resolve()),
        "train_batch_size": args.batch_size,
        "llmhni_neg_candidates": args.candidates,
        "llmhni_neg_topk": args.topk,
        "show_progress": False,
        "state": "WARNING",
    }
    if args.dataset != "ml-100k":
        common["data_path"] = str(data_path)
    sys.argv = sys.argv[:1]  # RecBole parses --key=value from the command line
    os.chdir(tempfile.mkdtemp(prefix="semantic_sampling_speed_"))  # RecBole writes log/ and saved/ to cwd

    runs = []
    for label, model, extra in variants(args.candidates, args.topk, args.s8_lambda):
        print(f"building {label} ...", file=sys.stderr, flush=True)
        runs.append(_setup(label, model, extra, common))
        runs[-1]["rng"] = rng_state()
    for epoch in range(args.epochs + 1):
        for run in runs:
            set_rng_state(run["rng"])
            run["trainer"].model.train()
            start = time.perf_counter()
            loss = run["trainer"]._train_epoch(run["train"], epoch, show_progress=False)
            if epoch > 0:
                run["epochs"].append(time.perf_counter() - start)
            run["losses"].append(float(loss if not isinstance(loss, tuple) else sum(loss)))
            run["rng"] = rng_state()

    base, base_min = statistics.median(runs[0]["epochs"]), min(runs[0]["epochs"])
    plugin_uniform, plugin_uniform_min = statistics.median(runs[2]["epochs"]), min(runs[2]["epochs"])
    device = runs[0]["trainer"].device
    print(
        f"{args.dataset}: {runs[0]['n_train']:,} training interactions, batch {args.batch_size}, "
        f"M={args.candidates}; {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}; {args.epochs} timed epochs each after 1 warm-up, round-robin"
    )
    print(
        "s/epoch: median and fastest of the timed epochs; ratios of the medians (of the fastest in brackets), "
        "since a busy machine only ever adds time"
    )
    header = (
        f"{'variant':<40}{'median':>8}{'fastest':>9}{'x LightGCN':>16}{'x plugin uniform':>18}"
        f"{'last loss':>11}  epochs (s)"
    )
    print(header)
    rows = []
    for run in runs:
        median, fastest = statistics.median(run["epochs"]), min(run["epochs"])
        epochs = " ".join(f"{t:.2f}" for t in run["epochs"])
        print(
            f"{run['label']:<40}{median:>8.2f}{fastest:>9.2f}"
            f"{median / base:>8.2f} [{fastest / base_min:4.2f}]"
            f"{median / plugin_uniform:>10.2f} [{fastest / plugin_uniform_min:4.2f}]"
            f"{run['losses'][-1]:>11.2f}  {epochs}"
        )
        rows.append({"variant": run["label"], "seconds_per_epoch": median, "fastest_epoch": fastest,
                     "epochs": run["epochs"], "ratio_vs_lightgcn": median / base,
                     "ratio_vs_plugin_uniform": median / plugin_uniform,
                     "model_build_seconds": run["build_seconds"]})
    semantic, s8, backbone = rows[4], rows[5], rows[6]
    stats = runs[4]["trainer"].model.negative_sampling_stats()
    print(
        f"semantic mode: {stats['dropped_candidate_share']:.1%} of candidates dropped as likely false negatives, "
        f"{stats['all_dropped_row_share']:.2%} of rows with every candidate dropped, "
        f"choice differed from score-only DNS on {stats['changed_row_share']:.2%} (last epoch: {stats['rows']:,} rows; "
        "the trainer resets the counters every epoch)"
    )
    print("setup (dataset + S1-S7 from the caches): " + ", ".join(
        f"{run['label']} {run['build_seconds']:.1f} s" for run in runs))
    ratio = semantic["ratio_vs_lightgcn"]
    print(f"target semantic <= 1.3x LightGCN: {'met' if ratio <= 1.3 else 'NOT met'} ({ratio:.2f}x)")
    ratio = s8["seconds_per_epoch"] / backbone["seconds_per_epoch"]
    print(f"target S8 on <= 1.5x BackboneLightGCN: {'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}x; "
          f"S8 off {semantic['seconds_per_epoch'] / backbone['seconds_per_epoch']:.2f}x)")
    if json_path:
        json_path.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

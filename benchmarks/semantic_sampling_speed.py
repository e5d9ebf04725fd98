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
==============================================  =================================================

Training epochs run round-robin across the variants (a busy machine slows all of them alike),
each variant keeping its own random state between its epochs. The first epoch of each is a
warm-up and is not timed. The semantic stage (S1 encode + S2 align) runs once, before timing,
from the shared caches (``<repo>/llmhni_artifacts``); its time is printed separately. Target:
semantic sampling at most 1.3x RecBole LightGCN's epoch.

    python benchmarks/semantic_sampling_speed.py                 # 2 timed epochs each, M=8
    python benchmarks/semantic_sampling_speed.py --epochs 3 --candidates 16 --json out.json

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


def variants(m: int, topk: int):
    """(label, model, extra config) of every variant."""
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
    ]


def ensure_dataset(src: Path, dataset: str, data_path: Path) -> None:
    if (data_path / dataset / f"{dataset}.train.inter").is_file():
        return
    from recbole_llmhni.prepare.rlmrec import prepare_rlmrec

    print(f"preparing {dataset} from {src} into {data_path}", file=sys.stderr)
    prepare_rlmrec(src, dataset, data_path)


def _setup(label: str, model: str, extra: dict, common: dict, use_gpu: bool) -> dict:
    import torch
    from recbole.data import data_preparation
    from recbole.utils import get_trainer, init_seed

    from recbole_llmhni.config import LLMHNIConfig
    from recbole_llmhni.quick_start import create_dataset

    config = LLMHNIConfig(model=model, dataset=common["dataset"], config_dict={**common, **extra})
    if not use_gpu:  # RecBole 1.2.1 takes CUDA whenever it is available
        config["device"] = torch.device("cpu")
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    started = time.perf_counter()
    net = config.model_class(config, train_data._dataset).to(config["device"])
    build_seconds = time.perf_counter() - started
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    if config["train_neg_sample_args"].get("dynamic", False):
        train_data.get_model(net)  # what Trainer.fit does for RecBole's dynamic sampling
    return {
        "label": label,
        "trainer": trainer,
        "train": train_data,
        "build_seconds": build_seconds,
        "epochs": [],
        "losses": [],
        "n_train": len(train_data._dataset.inter_feat),
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
    parser.add_argument("--gpu", action="store_true", help="train on CUDA; default CPU")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)

    import torch

    data_path = args.data_path.resolve()
    json_path = args.json.resolve() if args.json else None
    ensure_dataset(args.src, args.dataset, data_path)
    common = {
        "dataset": args.dataset,
        "data_path": str(data_path),
        "llmhni_artifact_dir": str(args.artifact_dir.resolve()),
        "llmhni_cache_dir": str((args.cache_dir or args.artifact_dir / "llm_cache").resolve()),
        "train_batch_size": args.batch_size,
        "llmhni_neg_candidates": args.candidates,
        "llmhni_neg_topk": args.topk,
        "show_progress": False,
        "state": "WARNING",
    }
    sys.argv = sys.argv[:1]  # RecBole parses --key=value from the command line
    os.chdir(tempfile.mkdtemp(prefix="semantic_sampling_speed_"))  # RecBole writes log/ and saved/ to cwd

    runs = []
    for label, model, extra in variants(args.candidates, args.topk):
        print(f"building {label} ...", file=sys.stderr, flush=True)
        runs.append(_setup(label, model, extra, common, args.gpu))
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
    semantic = runs[-1]
    stats = semantic["trainer"].model.negative_sampling_stats()
    print(
        f"semantic mode: {stats['dropped_candidate_share']:.1%} of candidates dropped as likely false negatives, "
        f"{stats['all_dropped_row_share']:.2%} of rows with every candidate dropped, "
        f"choice differed from score-only DNS on {stats['changed_row_share']:.2%} (last epoch: {stats['rows']:,} rows; "
        "the trainer resets the counters every epoch)"
    )
    print(
        f"semantic stage (S1 encode + S2 align, from the caches) at model construction: "
        f"{semantic['build_seconds']:.1f} s; target semantic <= 1.3x LightGCN: "
        f"{'met' if rows[-1]['ratio_vs_lightgcn'] <= 1.3 else 'NOT met'} ({rows[-1]['ratio_vs_lightgcn']:.2f}x)"
    )
    if json_path:
        json_path.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""S1 speed: texts per second of each local encoder backend, side by side, and the alignment check's Recall@20 with each.

Part 1 (speed): the user and item profiles of a prepared dataset (``<data_path>/<dataset>/
<dataset>.{user,item}_profile.jsonl``; all of them, or a seeded random ``--limit`` of them)
are encoded by each backend of ``llmhni_encoder_backend`` (``torch``, ``onnx``,
``onnx-int8``) into a fresh cache, so every text is computed. Model loading and the one-off
ONNX export are timed apart from encoding. Printed per backend: texts per second of wall
time, texts per CPU-second (all threads; less sensitive to other processes on a shared
machine), and how far its vectors are from torch's on the same texts (max |difference|,
mean cosine). ``--slow_limit`` measures torch on a smaller subset (its own rate still in
texts/s; the vectors are compared on the texts both encoded).

Part 2 (quality): ``align-check`` (:func:`recbole_llmhni.quick_start.alignment_check`,
model LLMHNI_LightGCN, validation split) once per distinct set of vectors, with the SQLite
embedding cache ``--cache_dir`` (pass a copy of an existing cache to reuse vectors already
computed). ``torch`` and ``onnx`` share one cache key (their vectors agree to float rounding,
see part 1), so they share one Recall@20; ``onnx-int8`` has its own key and is encoded in
full.

Writes ``benchmarks/results/speed/encoder_speed_<dataset>.json`` and a bar chart
``encoder_speed_<dataset>.png`` beside it.

    python benchmarks/encoder_speed.py --data_path /work/main/dataset --limit 2000
    python benchmarks/encoder_speed.py --data_path dataset --slow_limit 1000 --cache_dir /tmp/cache-copy

Not part of CI.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import recbole_llmhni  # noqa: E402,F401  (compat shims first)

BACKENDS = ("torch", "onnx", "onnx-int8")
OUT = REPO / "benchmarks" / "results" / "speed"


def load_profiles(data_path: Path, dataset: str) -> List[str]:
    """User then item profile texts of ``<data_path>/<dataset>``, in file order."""
    texts: List[str] = []
    for kind in ("user", "item"):
        path = data_path / dataset / f"{dataset}.{kind}_profile.jsonl"
        if not path.is_file():
            raise SystemExit(f"error: no profile file {path}; pass --data_path with the prepared dataset folder")
        with path.open(encoding="utf-8") as fh:
            texts += [json.loads(line)["profile"] for line in fh if line.strip()]
    return texts


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def time_backend(backend: str, texts: List[str], batch_size: int) -> Dict[str, Any]:
    """Encode ``texts`` with ``backend`` into a fresh cache: seconds, rates and the vectors."""
    from recbole_llmhni.llm import make_encoder

    with tempfile.TemporaryDirectory() as tmp:
        onnx_dir = REPO / "benchmarks" / "results" / "speed" / ".onnx"  # keep the export between runs
        encoder = make_encoder({"llmhni_cache_dir": tmp, "llmhni_encoder_backend": backend,
                                "llmhni_encoder_batch_size": batch_size, "show_progress": True})
        encoder.onnx_dir = onnx_dir
        started = time.perf_counter()
        encoder._encoder()  # load the model (and export / quantise on first use): timed apart
        load_seconds = time.perf_counter() - started
        load_before = load_average()
        wall, cpu = time.perf_counter(), time.process_time()
        vectors = encoder.encode({str(i): t for i, t in enumerate(texts)})
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        encoded = encoder.stats["encoded"]
        encoder.close()
    return {
        "backend": backend, "name": encoder.name, "texts": len(texts), "encoded": encoded,
        "load_seconds": round(load_seconds, 2), "encode_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
        "texts_per_second": round(len(texts) / wall, 2), "texts_per_cpu_second": round(len(texts) / cpu, 2),
        "loadavg_before": load_before, "loadavg_after": load_average(), "vectors": vectors,
    }


def recall_with(backend: str, args: argparse.Namespace) -> Dict[str, Any]:
    from recbole_llmhni.quick_start import alignment_check

    started = time.perf_counter()
    result = alignment_check(
        model="LLMHNI_LightGCN", dataset=args.dataset, split=args.split, k=20,
        config_dict={"data_path": str(args.data_path), "llmhni_cache_dir": str(args.cache_dir),
                     "llmhni_artifact_dir": str(args.artifact_dir), "llmhni_encoder_backend": backend,
                     "show_progress": True},
    )
    return {"encoder": result.encoder, "split": result.split, "recall@20": result.recall,
            "seconds": {k: round(v, 1) for k, v in result.seconds.items()}, "total_seconds": round(time.perf_counter() - started, 1)}


def bar_chart(rows: List[Dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [r["backend"] for r in rows]
    wall = [r["texts_per_second"] for r in rows]
    cpu = [r["texts_per_cpu_second"] for r in rows]
    x = np.arange(len(rows))
    ax.bar(x - 0.2, wall, 0.4, label="texts / s (wall)")
    ax.bar(x + 0.2, cpu, 0.4, label="texts / CPU-s")
    for i, r in enumerate(rows):
        ax.text(i - 0.2, wall[i], f"{wall[i]:.1f}\n(n={r['texts']})", ha="center", va="bottom", fontsize=7)
        ax.text(i + 0.2, cpu[i], f"{cpu[i]:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, names)
    ax.set_ylabel("texts per second")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.margins(y=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_path", type=Path, default=REPO / "dataset", help="folder holding <dataset>/ (default: ./dataset)")
    parser.add_argument("--dataset", default="amazon-books")
    parser.add_argument("--limit", type=int, default=None, help="texts timed per backend (seeded random subset; default all)")
    parser.add_argument("--slow_limit", type=int, default=None, help="texts timed for torch (default: --limit)")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--batch_size", type=int, default=64, help="llmhni_encoder_batch_size (default 64)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch / ONNX Runtime threads (default: torch's, i.e. OMP_NUM_THREADS or the core count)")
    parser.add_argument("--no_recall", action="store_true", help="skip part 2 (the alignment check)")
    parser.add_argument("--recall_backends", nargs="+", default=None, choices=BACKENDS,
                        help="backends whose Recall@20 is measured (default: all of --backends)")
    parser.add_argument("--split", choices=("valid", "test"), default="valid")
    parser.add_argument("--cache_dir", type=Path, default=None, help="embedding cache of part 2 (default: a folder under the results)")
    parser.add_argument("--artifact_dir", type=Path, default=None, help="S1/S2 artifacts of part 2 (default: a folder under the results)")
    args = parser.parse_args(argv)
    args.cache_dir = args.cache_dir or OUT / ".cache"
    args.artifact_dir = args.artifact_dir or OUT / ".artifacts"
    OUT.mkdir(parents=True, exist_ok=True)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = load_profiles(args.data_path, args.dataset)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))
    print(f"{len(texts):,} {args.dataset} profiles; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"load average {load_average()}", flush=True)

    rows: List[Dict[str, Any]] = []
    for backend in args.backends:
        limit = args.slow_limit if backend == "torch" and args.slow_limit else args.limit
        subset = [texts[i] for i in sorted(order[: limit or len(texts)])]
        print(f"[{backend}] encoding {len(subset):,} texts ...", flush=True)
        rows.append(time_backend(backend, subset, args.batch_size))
        rows[-1]["subset_ids"] = sorted(order[: limit or len(texts)].tolist())
        r = rows[-1]
        print(f"[{backend}] {r['texts_per_second']:.1f} texts/s wall, {r['texts_per_cpu_second']:.1f} texts/CPU-s, "
              f"load {r['load_seconds']:.1f} s (load avg {r['loadavg_before']} -> {r['loadavg_after']})", flush=True)

    reference = next((r for r in rows if r["backend"] == "torch"), None)
    for r in rows:
        if reference is None or r is reference:
            continue
        common = sorted(set(reference["subset_ids"]) & set(r["subset_ids"]))
        ref_row = {t: k for k, t in enumerate(reference["subset_ids"])}
        own_row = {t: k for k, t in enumerate(r["subset_ids"])}
        a = reference["vectors"][[ref_row[t] for t in common]]
        b = r["vectors"][[own_row[t] for t in common]]
        r["vs_torch"] = {"texts": len(common), "max_abs_diff": float(np.abs(a - b).max()),
                         "mean_cosine": float((a * b).sum(axis=1).mean()), "min_cosine": float((a * b).sum(axis=1).min())}

    recall: Dict[str, Any] = {}
    if not args.no_recall:
        seen: Dict[str, str] = {}
        from recbole_llmhni.llm.encoders import SentenceTransformerEncoder

        for backend in args.recall_backends or args.backends:
            group = SentenceTransformerEncoder(None, model="m", runtime=backend).text_key("")  # same key, same vectors
            if group in seen:
                recall[backend] = {**recall[seen[group]], "shared_with": seen[group]}
                continue
            print(f"[{backend}] alignment check ({args.split} split) ...", flush=True)
            recall[backend] = recall_with(backend, args)
            seen[group] = backend

    print()
    print(f"S1 speed, {args.dataset}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
          f"(shared machine: load average {load_average()} now)")
    header = f"{'backend':<10} {'texts':>7} {'texts/s':>8} {'texts/CPU-s':>11} {'load s':>7} {'max|d| vs torch':>15} {'cos vs torch':>12} {'Recall@20 aligned':>17} {'raw_profile':>11}"
    print(header)
    for r in rows:
        vs = r.get("vs_torch", {})
        rec = recall.get(r["backend"], {}).get("recall@20", {})
        print(f"{r['backend']:<10} {r['texts']:>7} {r['texts_per_second']:>8.1f} {r['texts_per_cpu_second']:>11.1f} "
              f"{r['load_seconds']:>7.1f} {vs.get('max_abs_diff', float('nan')):>15.2e} {vs.get('mean_cosine', float('nan')):>12.4f} "
              f"{rec.get('aligned', float('nan')):>17.4f} {rec.get('raw_profile', float('nan')):>11.4f}")
    for backend, rec in recall.items():
        if "shared_with" in rec:
            print(f"  {backend}: same cache key as {rec['shared_with']} (vectors equal to float rounding), so the same Recall@20")
    sizes = {r["texts"] for r in rows}
    if len(sizes) > 1:
        print("  backends were timed on subsets of different sizes (see 'texts'); rates are per text")
    seconds_all = {r["backend"]: round(len(texts) / r["texts_per_second"], 1) for r in rows}
    print("  projected seconds for all " + f"{len(texts):,} profiles at these rates: "
          + ", ".join(f"{b} {s:.0f} s" for b, s in seconds_all.items()))

    result = {
        "dataset": args.dataset, "profiles": len(texts), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "loadavg_end": load_average(), "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python benchmarks/encoder_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "speed": [{k: v for k, v in r.items() if k not in ("vectors", "subset_ids")} for r in rows],
        "projected_seconds_all_profiles": seconds_all,
        "recall": recall,
    }
    path = OUT / f"encoder_speed_{args.dataset}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    bar_chart(rows, path.with_suffix(".png"), f"S1 encoding, {args.dataset} profiles, {os.cpu_count()} CPUs "
              f"(load avg {result['loadavg_end']})")
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

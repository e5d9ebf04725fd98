"""LLMHNI against RecBole's baselines, one protocol, one command per suite (DESIGN.md section 5).

Every job trains one model through ``run_recbole_llmhni`` (full ranking, Recall/NDCG@{10,20},
early stopping on validation Recall@20, patience 10, seed 2020, RecBole's default
hyper-parameters), in its own process and its own working directory, and writes one JSON
file: test metrics of the best-validation checkpoint, epochs to best, wall time, seconds per
training epoch and per evaluation, the time of each offline stage (S1-S7), peak RSS and peak
GPU memory, the identification report of S6 when noise was injected, and the machine.

Suites (``--suite``):

``models``     BPR, LightGCN, NGCF, LightGCN + RecBole's dynamic hard negatives (DNS),
               LLMHNI_LightGCN, LLMHNI_NGCF                       (per ``--datasets``)
``noise``      LightGCN and LLMHNI_LightGCN with 0, 5, 10, 20% injected noise
``ablation``   LLMHNI_LightGCN w/o semantic sampling (uniform negatives; or score-only DNS),
               w/o alignment, w/o denoising, with the S8 weights on and w/o L_hal (the full
               model: the ``models`` row)
``s8``         LLMHNI_LightGCN with the S8 weights lambda1 = lambda2 in {0.1, 0.01},
               from scratch and warm-started from Rec_pre (lambda = 0: the ``models`` row)
``speed``      plain backbones next to their LLMHNI models, a fixed number of epochs, run
               one at a time with fresh artifacts: seconds per epoch, stage times, peak RSS

Results land in ``benchmarks/results/<suite>/<dataset>/<job>.json``; a job whose file exists
is skipped (``--force`` re-runs it), so an interrupted suite resumes; a re-run on another
machine keeps the earlier result as ``<job>@<machine>.json`` (``@H100``), and the report shows
both rows, each with its machine. ``report`` turns every result file into
``benchmarks/results/RESULTS.md`` and PNG charts beside it, and rewrites the README's results
tables (each between ``<!-- results SUITE DATASET -->`` and ``<!-- /results -->``) from the
same files; a test keeps the committed README equal to them.

    python benchmarks/compare.py run --suite models --datasets ml-100k
    python benchmarks/compare.py run --suite noise --datasets amazon-books --workers 8 --device cuda
    python benchmarks/compare.py report

``--time-budget S`` stops a job after S seconds of wall time; its result is then the test
metrics of its best-validation checkpoint so far (the job evaluates the test split whenever
validation improves, and only reads it at the end), marked ``time budget`` in the report.
``--epochs N`` caps training epochs (marked ``epoch cap`` when reached). Not part of CI.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
METRICS = ["recall@10", "recall@20", "ndcg@10", "ndcg@20"]

#: RecBole 1.2.1's dynamic hard negatives: score 8 uniform candidates, keep the best-scored.
DNS = {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "alpha": 1.0,
                                  "dynamic": True, "candidate_num": 8}}
#: The S8 weights used where a job needs L_de / L_hal switched on.
S8_ON = {"llmhni_lambda1": 0.1, "llmhni_lambda2": 0.1}
NOISE_RATIOS = [0.0, 0.05, 0.1, 0.2]
#: User-item scores per full-sort evaluation batch. RecBole's default (4096) is one user per
#: batch on amazon-books (9.3k items): 11k tiny batches, 21 s per evaluation on an H100.
#: Metrics do not depend on it.
EVAL_BATCH = 2 ** 22


@dataclass
class Job:
    suite: str
    label: str  #: the row label in the report
    model: str
    dataset: str
    params: Dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label).strip("_")

    def result_path(self, results: Path) -> Path:
        return results / self.suite / self.dataset / f"{self.slug}.json"


def suite_jobs(suite: str, datasets: List[str], speed_epochs: int = 5) -> List[Job]:
    """The jobs of one suite, in the order they are started."""
    jobs: List[Job] = []
    for ds in datasets:
        if suite == "models":
            jobs += [
                Job(suite, "LLMHNI_LightGCN", "LLMHNI_LightGCN", ds),
                Job(suite, "LLMHNI_NGCF", "LLMHNI_NGCF", ds),
                Job(suite, "LightGCN", "LightGCN", ds),
                Job(suite, "LightGCN+DNS", "LightGCN", ds, dict(DNS)),
                Job(suite, "NGCF", "NGCF", ds),
                Job(suite, "BPR", "BPR", ds),
            ]
        elif suite == "noise":
            for ratio in NOISE_RATIOS:
                for model in ("LLMHNI_LightGCN", "LightGCN"):
                    jobs.append(Job(suite, f"{model} noise={ratio:g}", model, ds, {"llmhni_noise_ratio": ratio}))
        elif suite == "ablation":
            jobs += [
                Job(suite, "w/o semantic sampling", "LLMHNI_LightGCN", ds, {"llmhni_neg_mode": "uniform"}),
                Job(suite, "w/o semantic sampling, score-only DNS", "LLMHNI_LightGCN", ds, {"llmhni_neg_mode": "dns"}),
                Job(suite, "w/o alignment", "LLMHNI_LightGCN", ds, {"llmhni_use_alignment": False}),
                Job(suite, "w/o denoising", "LLMHNI_LightGCN", ds, {"llmhni_denoise": False}),
                Job(suite, "full, S8 on", "LLMHNI_LightGCN", ds, dict(S8_ON)),
                Job(suite, "full, S8 on, w/o L_hal", "LLMHNI_LightGCN", ds, {**S8_ON, "llmhni_lambda2": 0.0}),
            ]
        elif suite == "s8":
            for lam in (0.1, 0.01):
                for warm in (False, True):
                    label = f"lambda={lam:g}" + (", warm start" if warm else "")
                    jobs.append(Job(suite, label, "LLMHNI_LightGCN", ds,
                                    {"llmhni_lambda1": lam, "llmhni_lambda2": lam, "llmhni_warm_start": warm}))
            jobs.append(Job(suite, "lambda=0, warm start", "LLMHNI_LightGCN", ds, {"llmhni_warm_start": True}))
            jobs.append(Job(suite, "lambda1=0.1, lambda2=0 (w/o L_hal), warm start", "LLMHNI_LightGCN", ds,
                            {"llmhni_lambda1": 0.1, "llmhni_lambda2": 0.0, "llmhni_warm_start": True}))
        elif suite == "speed":
            fixed = {"epochs": speed_epochs, "stopping_step": 10 ** 6}
            for backbone in ("LightGCN", "NGCF"):
                jobs += [
                    Job(suite, f"Backbone{backbone}", f"Backbone{backbone}", ds, dict(fixed)),
                    Job(suite, f"LLMHNI_{backbone}", f"LLMHNI_{backbone}", ds, dict(fixed)),
                ]
        else:
            raise SystemExit(f"unknown suite {suite!r}: models, noise, ablation, s8, speed")
    return jobs


# ----------------------------------------------------------------------------- one job
_EPOCH_TRAIN = re.compile(r"epoch (\d+) training \[time: ([\d.]+)s")
_EPOCH_EVAL = re.compile(r"epoch (\d+) evaluating \[time: ([\d.]+)s")
_STAGE = re.compile(r"(S\d(?:-S\d)? [a-z ]+?)(?: \w+)?: (computed|reused)(?: in ([\d.]+) s| \S+ \(([\d.]+) s\))")
_IDENT = re.compile(r"precision / recall / F1\s+([\d.]+) / ([\d.]+) / ([\d.]+)")
_SEMANTIC = re.compile(r"semantic (S[12]): (.*?)(?: in ([\d.]+) s| \(([\d.]+) s\))")


def parse_log(text: str) -> Dict[str, Any]:
    """Per-epoch training / evaluation seconds and per-stage seconds from a RecBole log file."""
    train = [float(m.group(2)) for m in _EPOCH_TRAIN.finditer(text)]
    evals = [float(m.group(2)) for m in _EPOCH_EVAL.finditer(text)]
    stages: Dict[str, Dict[str, Any]] = {}
    for m in _SEMANTIC.finditer(text):
        how = "reused" if re.search(r"reused|loaded|cached", m.group(2)) else "computed"
        stages[{"S1": "S1 encode", "S2": "S2 align"}[m.group(1)]] = {"how": how, "seconds": float(m.group(3) or m.group(4))}
    for m in _STAGE.finditer(text):
        seconds = m.group(3) or m.group(4)
        stages[m.group(1).strip()] = {"how": m.group(2), "seconds": float(seconds)}
    parsed: Dict[str, Any] = {"train_epoch_seconds": train, "eval_seconds": evals, "stages": stages}
    ident = _IDENT.search(text)
    if ident:
        parsed["identification"] = {"precision": float(ident.group(1)), "recall": float(ident.group(2)),
                                    "f1": float(ident.group(3))}
    return parsed


def machine() -> Dict[str, Any]:
    import torch

    info = {"python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "omp_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import recbole

        info["recbole"] = recbole.__version__
    except Exception:  # noqa: BLE001  (informational only)
        pass
    try:
        info["commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        pass
    return info


def run_job(spec: Dict[str, Any]) -> None:
    """Child process: train, evaluate, write ``spec['out']`` (and a progress file as it goes)."""
    sys.argv = sys.argv[:1]  # RecBole reads --key=value from the command line
    sys.path.insert(0, str(REPO))
    import torch

    from recbole_llmhni.quick_start import epochs_of, prepare_run

    out = Path(spec["out"])
    progress = out.with_suffix(".progress.json")
    config_dict = dict(spec["params"])
    started = time.perf_counter()
    run = prepare_run(spec["model"], spec["dataset"], config_dict=config_dict)
    trainer, config = run.trainer, run.config
    state: Dict[str, Any] = {"best_epoch": None, "test_at_best": None, "valid_at_best": None,
                             "setup_seconds": run.setup_seconds}
    graph = getattr(run.model, "denoised_graph", None)
    if graph is not None:  # kept in the progress file, so a job stopped by its budget still has it
        state["identification"] = graph.report
        state["denoise_counts"] = {k: int(v) for k, v in (graph.counts or {}).items()}

    def on_valid(epoch_idx: int, valid_score: float) -> None:
        state["last_epoch"] = epoch_idx + 1
        if trainer.cur_step == 0:  # validation just improved: this is the new best checkpoint
            state["best_epoch"] = epoch_idx + 1
            state["valid_at_best"] = {k: float(v) for k, v in (trainer.best_valid_result or {}).items()}
            if spec.get("anytime_test"):
                test = trainer.evaluate(run.test_data, load_best_model=False, show_progress=False)
                state["test_at_best"] = {k: float(v) for k, v in test.items()}
        progress.write_text(json.dumps(state))

    train_started = time.perf_counter()
    trainer.fit(run.train_data, run.valid_data, saved=True, show_progress=False, callback_fn=on_valid)
    train_seconds = time.perf_counter() - train_started
    epochs_trained, best_epoch = epochs_of(trainer)
    test = trainer.evaluate(run.test_data, load_best_model=True, show_progress=False)
    result = {
        "test": {k: float(v) for k, v in test.items()},
        "valid": {k: float(v) for k, v in (trainer.best_valid_result or {}).items()},
        "epochs_trained": epochs_trained,
        "best_epoch": best_epoch,
        "status": "epoch cap" if epochs_trained >= int(config["epochs"]) else "early stop",
        "setup_seconds": run.setup_seconds,
        "train_seconds": train_seconds,
        "device": str(config["device"]),
    }
    for key in ("identification", "denoise_counts"):
        if key in state:
            result[key] = state[key]
    result["encoder"] = config["llmhni_encoder"]
    result["rater"] = config["llmhni_rater"] if "LLMHNI" in spec["model"] else None
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    result["wall_seconds"] = time.perf_counter() - started
    out.with_suffix(".child.json").write_text(json.dumps(result, default=str))


def _where(r: Dict[str, Any]) -> str:
    """``CPU`` or the GPU's short name (``NVIDIA H100 80GB HBM3`` -> ``H100``)."""
    gpu = (r.get("machine") or {}).get("gpu")
    return gpu.replace("NVIDIA ", "").split()[0] if gpu else "CPU"


def keep_other_machine(out: Path, record: Dict[str, Any]) -> Optional[Path]:
    """Before ``record`` replaces ``out``: keep a result measured on another machine beside it.

    The same job gives different figures on a GPU and on the CPU (floating point), so both
    are results: the older one moves to ``<job>@<machine>.json`` (``LLMHNI_LightGCN@H100.json``)
    and the report shows both rows, each with its machine. A result from the same machine is
    simply replaced. Returns where the older result went, if it was kept.
    """
    if not out.exists():
        return None
    try:
        old = json.loads(out.read_text())
    except ValueError:
        return None
    if _where(old) == _where(record):
        return None
    kept = out.with_name(f"{out.stem}@{_where(old)}.json")
    out.replace(kept)
    return kept


def _finish(job: Job, spec: Dict[str, Any], workdir: Path, rc: Optional[int], wall: float, budget_hit: bool) -> Dict[str, Any]:
    out = Path(spec["out"])
    record: Dict[str, Any] = {"suite": job.suite, "label": job.label, "model": job.model,
                              "dataset": job.dataset, "params": job.params, "returncode": rc,
                              "machine": spec["machine"], "command": spec["command"]}
    child = out.with_suffix(".child.json")
    progress = out.with_suffix(".progress.json")
    if child.exists():
        record.update(json.loads(child.read_text()))
    elif budget_hit and progress.exists():
        prog = json.loads(progress.read_text())
        record.update({"status": "time budget", "epochs_trained": prog.get("last_epoch"),
                       "best_epoch": prog.get("best_epoch"), "test": prog.get("test_at_best"),
                       "valid": prog.get("valid_at_best"), "setup_seconds": prog.get("setup_seconds")})
        for key in ("identification", "denoise_counts"):
            if key in prog:
                record[key] = prog[key]
    else:
        record["status"] = "failed"
    record["wall_seconds_total"] = wall
    logs = sorted((workdir / "log").rglob("*.log")) if (workdir / "log").exists() else []
    if logs:
        log_text = logs[-1].read_text(errors="replace")
        record["log"] = parse_log(log_text)
        # the log also holds S4's pretraining epochs: keep the model's own, the last ones
        n = int(record.get("epochs_trained") or 0)
        record["log"]["train_epoch_seconds"] = record["log"]["train_epoch_seconds"][-n:] if n else []
        if record["status"] == "failed":
            record["log_tail"] = log_text.splitlines()[-30:]
    err = workdir / "stderr.txt"
    if record["status"] == "failed" and err.exists():
        record["stderr_tail"] = err.read_text(errors="replace").splitlines()[-40:]
    for leftover in (child, progress):
        leftover.unlink(missing_ok=True)
    keep_other_machine(out, record)
    out.write_text(json.dumps(record, indent=1, default=str))
    return record


def command_line(args: argparse.Namespace, job: Job) -> str:
    parts = ["python benchmarks/compare.py run", f"--suite {job.suite}", f"--datasets {job.dataset}",
             f"--only '{job.label}'"]
    if args.epochs:
        parts.append(f"--epochs {args.epochs}")
    if args.time_budget:
        parts.append(f"--time-budget {args.time_budget:g}")
    if args.deadline:  # relative to the run's start: recorded so a stopped row says what stopped it
        parts.append(f"--deadline {args.deadline:g}")
    if args.device:
        parts.append(f"--device {args.device}")
    for item in args.set or []:
        parts.append(f"--set {item}")
    return " ".join(parts)


def run_suite(args: argparse.Namespace) -> int:
    results = Path(args.results).resolve()
    datasets = args.datasets
    jobs = [j for suite in args.suite for j in suite_jobs(suite, datasets, args.speed_epochs)]
    if args.only:
        jobs = [j for j in jobs if j.label in args.only]
    if args.skip:
        jobs = [j for j in jobs if j.label not in args.skip]
    todo = [j for j in jobs if args.force or not j.result_path(results).exists()]
    print(f"{len(jobs)} jobs, {len(jobs) - len(todo)} already done, {len(todo)} to run "
          f"({args.workers} at a time)", flush=True)
    info = machine()
    extra: Dict[str, Any] = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        extra[key] = yaml.safe_load(value)
    data_path = Path(args.data_path).resolve()
    cache_dir = Path(args.cache_dir).resolve()
    deadline = time.time() + args.deadline if args.deadline else None
    running: List[tuple] = []
    pending = list(todo)
    failures = 0
    workers = 1 if any(j.suite == "speed" for j in todo) else args.workers

    def start(job: Job) -> None:
        workdir = results / "_work" / job.suite / job.dataset / job.slug
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        params: Dict[str, Any] = {
            "llmhni_cache_dir": str(cache_dir),
            "llmhni_artifact_dir": str(workdir / "llmhni_artifacts") if job.suite == "speed" or args.fresh_artifacts
            else str(Path(args.artifact_dir).resolve()),
            "show_progress": False, "checkpoint_dir": str(workdir / "saved"),
            "eval_batch_size": EVAL_BATCH,
        }
        if (data_path / job.dataset).is_dir():  # else RecBole's own (ml-100k ships with RecBole)
            params["data_path"] = str(data_path)
        if args.epochs:
            params["epochs"] = args.epochs
        if args.device:
            params["device"] = args.device
            params["use_gpu"] = args.device != "cpu"
        params.update(job.params)
        params.update(extra)
        out = job.result_path(results)
        out.parent.mkdir(parents=True, exist_ok=True)
        spec = {"model": job.model, "dataset": job.dataset, "params": params, "out": str(out),
                "anytime_test": bool(args.time_budget or deadline), "machine": info,
                "command": command_line(args, job)}
        spec_file = workdir / "spec.json"
        spec_file.write_text(json.dumps(spec, default=str))
        env = dict(os.environ)
        if args.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        with open(workdir / "stderr.txt", "w") as err:
            proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_job", str(spec_file)],
                                    cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)
        running.append((job, spec, workdir, proc, time.time()))
        print(f"[start] {job.suite}/{job.dataset}/{job.label}", flush=True)

    while pending or running:
        while pending and len(running) < workers and (deadline is None or time.time() < deadline - 60):
            start(pending.pop(0))
        time.sleep(1.0)
        for entry in list(running):
            job, spec, workdir, proc, t0 = entry
            elapsed = time.time() - t0
            over = (args.time_budget and elapsed > args.time_budget) or (deadline and time.time() > deadline)
            if proc.poll() is None and not over:
                continue
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            running.remove(entry)
            record = _finish(job, spec, workdir, proc.returncode, elapsed, bool(over))
            failures += record["status"] == "failed"
            test = record.get("test") or {}
            print(f"[{record['status']}] {job.suite}/{job.dataset}/{job.label}: "
                  f"R@20 {test.get('recall@20', float('nan')):.4f} N@20 {test.get('ndcg@20', float('nan')):.4f} "
                  f"best epoch {record.get('best_epoch')} of {record.get('epochs_trained')}, {elapsed:.0f} s", flush=True)
        if deadline and time.time() > deadline - 60 and pending:
            print(f"deadline: {len(pending)} jobs not started", flush=True)
            pending.clear()
    return 1 if failures else 0


# ----------------------------------------------------------------------------- report
def load_results(results: Path) -> List[Dict[str, Any]]:
    records = []
    for path in sorted(results.glob("*/*/*.json")):
        if path.parent.parent.name.startswith("_") or path.name.endswith((".progress.json", ".child.json")):
            continue  # a job's working folder, or a job still running
        records.append(json.loads(path.read_text()))
    return records


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _machine_str(m: Dict[str, Any]) -> str:
    where = m.get("gpu") or f"CPU ({m.get('cpu_count')} cores, {m.get('omp_threads')} torch threads)"
    return f"{where}; Python {m.get('python')}, torch {m.get('torch')}, RecBole {m.get('recbole')}"


def _median(values: List[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def _sec_per_epoch(r: Dict[str, Any]) -> Optional[float]:
    return _median((r.get("log") or {}).get("train_epoch_seconds") or [])


def _vs_backbone(rows: List[Dict[str, Any]]) -> Dict[str, str]:
    """Each LLMHNI model's median training epoch over its plain backbone's (``1.49x``), by model."""
    epoch = {r["model"]: _sec_per_epoch(r) for r in rows}
    ratios = {}
    for model, mine in epoch.items():
        base = epoch.get(model.replace("LLMHNI_", "Backbone")) if model.startswith("LLMHNI_") else None
        ratios[model] = f"{mine / base:.2f}x" if base and mine else "-"
    return ratios


def _markdown(head: List[str], body: List[List[str]]) -> List[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(c) + " |" for c in body]


def _table(rows: List[Dict[str, Any]], extra_cols: List[tuple]) -> List[str]:
    head = ["model", "R@10", "R@20", "N@10", "N@20", "best epoch / trained", "status", "s/epoch",
            "wall", "peak RSS", "peak GPU"] + [c[0] for c in extra_cols]
    body = []
    for r in rows:
        t = r.get("test") or {}
        gpu = r.get("peak_gpu_mb")
        cells = [r["label"]] + [_fmt(t.get(k)) for k in METRICS] + [
            f"{r.get('best_epoch', '-')} / {r.get('epochs_trained', '-')}", r.get("status", "-"),
            _fmt(_sec_per_epoch(r), 2), f"{r.get('wall_seconds_total', 0) / 60:.1f} min",
            f"{r['peak_rss_mb']:.0f} MB" if r.get("peak_rss_mb") else "-",
            f"{gpu:.0f} MB" if gpu else "-"]
        cells += [fn(r) for _, fn in extra_cols]
        body.append(cells)
    return _markdown(head, body)


def _ident(r: Dict[str, Any], key: str) -> str:
    """Identification precision / recall of S6's noisy label (from the result, else the run's log)."""
    rep = ((r.get("identification") or {}).get("identification")
           or (r.get("log") or {}).get("identification") or {})
    return _fmt(rep.get(key), 3) if key in rep else "-"


def _bar_chart(rows: List[Dict[str, Any]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [r["label"] for r in rows]
    labels = [f"{lab} ({_where(r)})" if labels.count(lab) > 1 else lab for lab, r in zip(labels, rows)]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(labels)), 4))
    for k, metric in enumerate(["recall@20", "ndcg@20"]):
        vals = [(r.get("test") or {}).get(metric) or 0.0 for r in rows]
        bars = ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=metric.replace("recall", "Recall").replace("ndcg", "NDCG"))
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
    top = max([(r.get("test") or {}).get("recall@20") or 0.0 for r in rows] + [1e-9])
    ax.set_ylim(0, top * 1.22)  # headroom: the legend never covers a bar's label
    ax.set_title(title)
    ax.legend(loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _noise_chart(rows: List[Dict[str, Any]], path: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in sorted({r["model"] for r in rows}):
        pts = sorted(((r["params"].get("llmhni_noise_ratio", 0.0), (r.get("test") or {}).get("recall@20"))
                      for r in rows if r["model"] == model and r.get("test")), key=lambda p: p[0])
        if pts:
            ax.plot([100 * p[0] for p in pts], [p[1] for p in pts], marker="o", label=model)
    ax.set_xlabel("injected noise (% of the training set)")
    ax.set_ylabel("test Recall@20")
    ax.set_title(f"Noise robustness: {dataset}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


#: Rows a suite shows from the ``models`` suite instead of running them again.
BORROWED = {"ablation": {"LLMHNI_LightGCN": "full (models row)"},
            "s8": {"LLMHNI_LightGCN": "lambda=0 (models row)"}}
SUITE_ORDER = {"models": 0, "noise": 1, "ablation": 2, "s8": 3, "speed": 4}


def rows_by_table(records: List[Dict[str, Any]]) -> Dict[tuple, List[Dict[str, Any]]]:
    """Records grouped by ``(suite, dataset)``, in report order; rows in job order, borrowed rows first."""
    by_key: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in records:
        by_key.setdefault((r["suite"], r["dataset"]), []).append(r)
    for (suite, dataset), rows in by_key.items():
        for r in by_key.get(("models", dataset), []):
            if r["label"] in BORROWED.get(suite, {}):
                rows.insert(0, {**r, "label": BORROWED[suite][r["label"]]})
        job_order = {j.label: i for i, j in enumerate(suite_jobs(suite, [dataset]))}
        rows.sort(key=lambda r: (job_order.get(r["label"], -1), _where(r)))  # a job's CPU row first
    return dict(sorted(by_key.items(), key=lambda kv: (SUITE_ORDER.get(kv[0][0], 9), kv[0][1])))


def _status_cell(r: Dict[str, Any]) -> str:
    status = r.get("status", "-")
    return f"**{status}**" if status in ("time budget", "failed") else status


def readme_table(suite: str, rows: List[Dict[str, Any]]) -> List[str]:
    """The Markdown table the README shows for one ``(suite, dataset)``: built only from result files."""
    if suite == "speed":
        vs_backbone = _vs_backbone(rows)
        head = ["model", "s / training epoch", "vs its backbone", "s / evaluation", "setup (dataset + S1-S7)",
                "S2 align", "S4 pretrain", "S5-S7", "peak RSS"]
        body = []
        for r in rows:
            stages = (r.get("log") or {}).get("stages") or {}
            late = [v["seconds"] for k, v in stages.items() if k.split()[0] in ("S5", "S6", "S7")]
            body.append([r["label"], _fmt(_sec_per_epoch(r), 2), vs_backbone[r["model"]],
                     _fmt(_median((r.get("log") or {}).get("eval_seconds") or []), 2),
                     f"{r.get('setup_seconds') or 0:.0f} s",
                     f"{stages['S2 align']['seconds']:.0f} s" if "S2 align" in stages else "-",
                     f"{stages['S4 pretrain']['seconds']:.0f} s" if "S4 pretrain" in stages else "-",
                     f"{sum(late):.1f} s" if late else "-",
                     f"{r['peak_rss_mb']:.0f} MB" if r.get("peak_rss_mb") else "-"])
        return _markdown(head, body)
    head = ["model", "R@10", "R@20", "N@10", "N@20", "best epoch / trained", "stopped by", "machine",
            "s/epoch", "wall"]
    noise = suite == "noise"
    if noise:
        head += ["ident. precision", "ident. recall"]
    body = []
    for r in rows:
        t = r.get("test") or {}
        cells = [r["label"]] + [_fmt(t.get(k)) for k in METRICS] + [
            f"{r.get('best_epoch', '-')} / {r.get('epochs_trained', '-')}", _status_cell(r), _where(r),
            _fmt(_sec_per_epoch(r), 2), f"{(r.get('wall_seconds_total') or 0) / 60:.0f} min"]
        if noise:
            llm = "LLMHNI" in r["model"]
            cells += [_ident(r, "precision") if llm else "", _ident(r, "recall") if llm else ""]
        body.append(cells)
    return _markdown(head, body)


#: ``<!-- results SUITE DATASET -->`` ... ``<!-- /results -->``: a README table ``report`` writes.
README_BLOCK = re.compile(r"(<!-- results (\S+) (\S+) -->\n)(.*?)(<!-- /results -->)", re.S)


def render_readme(text: str, records: List[Dict[str, Any]]) -> str:
    """``text`` with every results block replaced by the table of its result files."""
    tables = rows_by_table(records)

    def fill(m: "re.Match[str]") -> str:
        rows = tables.get((m.group(2), m.group(3)))
        if not rows:
            raise SystemExit(f"README block '{m.group(2)} {m.group(3)}': no result files for it under "
                             "benchmarks/results/; run that suite or remove the block")
        return m.group(1) + "\n".join(readme_table(m.group(2), rows)) + "\n" + m.group(5)

    return README_BLOCK.sub(fill, text)


def report(args: argparse.Namespace) -> int:
    results = Path(args.results).resolve()
    records = load_results(results)
    if not records:
        print(f"no results under {results}")
        return 1
    lines = ["# Benchmark results", "",
             "Written by `python benchmarks/compare.py report` from the JSON files beside it; each",
             "table's rows come from the command shown under it. Test metrics are those of the",
             "best-validation checkpoint. `s/epoch` is the median training epoch (without",
             "evaluation). Single runs, seed 2020.", ""]
    for (suite, dataset), rows in rows_by_table(records).items():
        lines += [f"## {suite}: {dataset}", ""]
        machines = sorted({_machine_str(r.get("machine") or {}) for r in rows})
        lines += [f"Machine: {m}." for m in machines]
        raters = sorted({f"encoder {r.get('encoder')}, rater {r.get('rater')}" for r in rows if r.get("rater")})
        if raters:
            lines += [f"LLMHNI runs: {x} (`semantic` is the offline stand-in rater, not an LLM)." for x in raters]
        lines.append("")
        extra: List[tuple] = []
        if suite in ("noise", "ablation", "s8"):
            extra = [("ident. precision", lambda r: _ident(r, "precision")),
                     ("ident. recall", lambda r: _ident(r, "recall"))]
        if suite == "speed":
            vs_backbone = _vs_backbone(rows)
            extra = [("epoch vs backbone", lambda r: vs_backbone[r["model"]]),
                     ("setup (S1-S7)", lambda r: f"{r.get('setup_seconds', 0):.1f} s"),
                     ("stages", lambda r: ", ".join(f"{k} {v['seconds']:.1f} s"
                                                    for k, v in ((r.get('log') or {}).get('stages') or {}).items()) or "-")]
        lines += _table(rows, extra)
        lines += ["", "Commands:", ""] + [f"    {c}" for c in sorted({r['command'] for r in rows})] + [""]
        if suite in ("models", "ablation", "s8"):
            png = results / f"{suite}_{dataset}.png"
            _bar_chart(rows, f"{suite}: {dataset}", png)
            lines += [f"![{suite} {dataset}]({png.name})", ""]
        if suite == "noise":
            for model in sorted({r["model"] for r in rows}):
                by_ratio = {r["params"].get("llmhni_noise_ratio", 0.0): (r.get("test") or {}).get("recall@20")
                            for r in rows if r["model"] == model}
                clean = by_ratio.get(0.0)
                drops = [f"{100 * ratio:g}% noise {100 * (v - clean) / clean:+.1f}%"
                         for ratio, v in sorted(by_ratio.items()) if ratio > 0 and v is not None and clean]
                if drops:
                    lines.append(f"- {model}: Recall@20 change against its 0% row: " + ", ".join(drops))
            lines.append("")
            png = results / f"noise_{dataset}.png"
            _noise_chart(rows, png, dataset)
            lines += [f"![noise {dataset}]({png.name})", ""]
        failed = [r for r in rows if r.get("status") == "failed"]
        for r in failed:
            lines += [f"`{r['label']}` failed: " + " / ".join((r.get("stderr_tail") or r.get("log_tail") or ["?"])[-3:]), ""]
    out = results / "RESULTS.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    if args.readme:
        readme = Path(args.readme)
        text = readme.read_text()
        new = render_readme(text, records)
        if new != text:
            readme.write_text(new)
            print(f"updated the results tables of {readme}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_job"]:
        run_job(json.loads(Path(argv[1]).read_text()))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run the jobs of one or more suites (resumable)")
    p.add_argument("--suite", nargs="+", required=True, choices=["models", "noise", "ablation", "s8", "speed"])
    p.add_argument("--datasets", nargs="+", default=["ml-100k"])
    p.add_argument("--only", nargs="+", default=None, help="run only the jobs with these labels")
    p.add_argument("--skip", nargs="+", default=None, help="leave out the jobs with these labels")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a config key for every job (YAML value)")
    p.add_argument("--workers", type=int, default=1, help="jobs in parallel (speed: always 1)")
    p.add_argument("--epochs", type=int, default=None, help="cap on training epochs (RecBole's default: 300)")
    p.add_argument("--speed-epochs", type=int, default=5, help="epochs of each speed-suite job")
    p.add_argument("--time-budget", type=float, default=None, help="seconds of wall time per job")
    p.add_argument("--deadline", type=float, default=None, help="seconds from now after which running jobs stop")
    p.add_argument("--device", default=None, help="cpu | cuda (default: RecBole's choice)")
    p.add_argument("--data-path", default=str(REPO / "dataset"))
    p.add_argument("--artifact-dir", default=str(REPO / "llmhni_artifacts"))
    p.add_argument("--cache-dir", default=str(REPO / "llmhni_artifacts" / "llm_cache"))
    p.add_argument("--fresh-artifacts", action="store_true", help="each job computes S1-S7 in its own folder")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--force", action="store_true")
    r = sub.add_parser("report", help="RESULTS.md and PNG charts from the result files")
    r.add_argument("--results", default=str(RESULTS))
    r.add_argument("--readme", default=str(REPO / "README.md"),
                   help="rewrite its '<!-- results SUITE DATASET -->' tables ('' leaves it alone)")
    args = parser.parse_args(argv)
    return run_suite(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    sys.exit(main())

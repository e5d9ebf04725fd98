"""The benchmark runner: each job in its own process and folder, under a time budget.

:func:`run_suite` starts the jobs of the chosen suites (``--workers`` at a time), stops a job
past ``--time-budget`` or ``--deadline``, and writes one result file per job. The child
(:func:`run_job`, ``python benchmarks/runner.py SPEC``) builds the run with
:func:`recbole_llmhni.quick_start.prepare_run`, fits it, evaluates the best checkpoint and
writes :func:`recbole_llmhni.quick_start.run_record` (per-epoch times and losses from the
trainer, the pipeline's stage reports) with its peak memory. With a time budget it also
evaluates the test split whenever validation improves and keeps the run record of that
moment in a progress file, which becomes the result of a job stopped by its budget.
Nothing is read from log text (:mod:`records`).

``--resume`` continues such a job instead of retraining it: the child loads the job's own
best-validation checkpoint (RecBole's ``resume_checkpoint``: weights, optimizer state, epoch,
best score), the run record of that moment (per-epoch records up to the checkpoint, the test
split evaluated there) and trains on from the next epoch under the same patience. The epochs
trained after the checkpoint in the stopped run are trained again (they are in the
``resumed`` entry's ``discarded_epochs``); the random stream restarts from the seed, so a
resumed row is not bit-identical to an uninterrupted one. Its ``train_seconds`` and wall time
add up every run's, and ``resumed`` lists each restart. A job resumes only on the machine and
with the settings it started with.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from records import RECORD_FORMAT, finished_record, stopped_record, where
from suites import BORROWED, Job, dataset_properties, suite_jobs

REPO = Path(__file__).resolve().parents[1]
#: User-item scores per full-sort evaluation batch. RecBole's default (4096) is one user per
#: batch on amazon-books (9.3k items): 11k tiny batches, 21 s per evaluation on an H100.
#: Metrics do not depend on it.
EVAL_BATCH = 2 ** 22


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


# ----------------------------------------------------------------------------- the child
def _child_files(out: Path) -> tuple:
    """``(child result, progress)`` files of the job whose result goes to ``out``."""
    return out.with_suffix(".child.json"), out.with_suffix(".progress.json")


def run_job(spec: Dict[str, Any]) -> None:
    """Child process: train, evaluate, write the run record (and a progress file as it goes)."""
    sys.argv = sys.argv[:1]  # RecBole reads --key=value from the command line
    sys.path.insert(0, str(REPO))
    import torch

    from recbole_llmhni.quick_start import prepare_run, run_record

    child, progress = _child_files(Path(spec["out"]))
    started = time.perf_counter()
    run = prepare_run(spec["model"], spec["dataset"], config_dict=dict(spec["params"]))
    trainer = run.trainer
    test_at_best: Dict[str, Any] = {}
    resumed = spec.get("resume")
    earlier = resume_training(trainer, resumed, test_at_best) if resumed else {}
    train_started = time.perf_counter()

    def record(best_valid: Any, test: Dict[str, Any]) -> Dict[str, Any]:
        out = run_record(run, best_valid, test, earlier.get("train_seconds", 0.0) + time.perf_counter() - train_started)
        if earlier:
            out["resumed"] = earlier["resumed"]
        return out

    def on_valid(epoch_idx: int, valid_score: float) -> None:
        if trainer.cur_step == 0 and spec.get("anytime_test"):  # validation just improved: the new best
            test = trainer.evaluate(run.test_data, load_best_model=False, show_progress=False)
            test_at_best.clear()
            test_at_best.update(test)
        if spec.get("anytime_test"):
            progress.write_text(json.dumps(record(trainer.best_valid_result, test_at_best), default=str))

    trainer.fit(run.train_data, run.valid_data, saved=True, show_progress=False, callback_fn=on_valid)
    test = trainer.evaluate(run.test_data, load_best_model=True, show_progress=False)
    result = record(trainer.best_valid_result, test)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    result["wall_seconds"] = time.perf_counter() - started
    child.write_text(json.dumps(result, default=str))


def resume_training(trainer: Any, resume: Dict[str, Any], test_at_best: Dict[str, Any]) -> Dict[str, Any]:
    """Put ``trainer`` back where the stopped run's best-validation checkpoint left it.

    ``resume``: ``{"checkpoint": path, "previous": the stopped run's result record}``. Loads the
    checkpoint (weights, optimizer, epoch, best score), restores the best validation result, the
    per-epoch records up to the checkpoint and the test split evaluated there (into
    ``test_at_best``). Returns what the new record adds to: ``train_seconds`` of the earlier
    runs and the ``resumed`` list with this restart appended.
    """
    previous = resume["previous"]
    trainer.resume_checkpoint(resume["checkpoint"])
    start = int(trainer.start_epoch)  # 1-based number of the checkpoint's epoch
    trainer.best_valid_result = previous["best_valid_result"]
    trainer.epoch_records = [e for e in previous.get("epochs") or [] if int(e["epoch"]) <= start]
    test_at_best.update(previous.get("test_result") or {})
    restart = {"from_epoch": start, "discarded_epochs": int(previous.get("epochs_trained") or start) - start,
               "earlier_command": previous.get("command"), "earlier_status": previous.get("status")}
    return {"train_seconds": float(previous.get("train_seconds") or 0.0),
            "resumed": list(previous.get("resumed") or []) + [restart]}


# ----------------------------------------------------------------------------- the parent
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
    if where(old) == where(record):
        return None
    kept = out.with_name(f"{out.stem}@{where(old)}.json")
    out.replace(kept)
    return kept


def job_record(job: Job, spec: Dict[str, Any], workdir: Path, rc: Optional[int], wall: float,
               budget_hit: bool) -> Dict[str, Any]:
    """The result of a job whose process ended (or was stopped): from the child's JSON files only."""
    base: Dict[str, Any] = {"format": RECORD_FORMAT, "suite": job.suite, "label": job.label, "model": job.model,
                            "dataset": job.dataset, "params": job.params, "returncode": rc,
                            "machine": spec["machine"], "command": spec["command"]}
    child, progress = _child_files(Path(spec["out"]))
    if child.exists():
        record = finished_record(base, json.loads(child.read_text()))
    elif budget_hit and progress.exists():
        record = stopped_record(base, json.loads(progress.read_text()))
    else:
        record = {**base, "status": "failed"}
        err = workdir / "stderr.txt"
        if err.exists():
            record["stderr_tail"] = err.read_text(errors="replace").splitlines()[-40:]
    previous = (spec.get("resume") or {}).get("previous") or {}
    record["wall_seconds_total"] = wall + float(previous.get("wall_seconds_total") or 0.0)
    if previous.get("peak_rss_mb") and record.get("peak_rss_mb"):
        record["peak_rss_mb"] = max(record["peak_rss_mb"], previous["peak_rss_mb"])
    return record


def _finish(job: Job, spec: Dict[str, Any], workdir: Path, rc: Optional[int], wall: float, budget_hit: bool) -> Dict[str, Any]:
    out = Path(spec["out"])
    record = job_record(job, spec, workdir, rc, wall, budget_hit)
    for leftover in _child_files(out):
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
    if getattr(args, "resume", False):
        parts.append("--resume")
    for item in args.set or []:
        parts.append(f"--set {item}")
    return " ".join(parts)


def parse_overrides(items: List[str]) -> Dict[str, Any]:
    """``--set KEY=VALUE`` options as config keys (each value read as YAML)."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, e.g. --set llmhni_cand_max_pairs=40000")
        out[key.strip()] = yaml.safe_load(value.strip())
    return out


def select_jobs(args: argparse.Namespace) -> List[Job]:
    """The jobs of ``--suite`` x ``--datasets``, narrowed by ``--only`` / ``--skip``."""
    jobs = [j for suite in args.suite for j in suite_jobs(suite, args.datasets, args.speed_epochs)]
    if args.only:
        jobs = [j for j in jobs if j.label in args.only]
    if args.skip:
        jobs = [j for j in jobs if j.label not in args.skip]
    return jobs


def job_params(args: argparse.Namespace, job: Job, workdir: Path, extra: Dict[str, Any]) -> Dict[str, Any]:
    """The config dict of one job: ``properties/dataset/<dataset>.yaml`` (what a user passes with
    ``--config_files``), the harness's settings, then the job's, then ``--set``."""
    data_path = Path(args.data_path).resolve()
    fresh = job.suite == "speed" or args.fresh_artifacts
    params: Dict[str, Any] = {"eval_batch_size": EVAL_BATCH, **dataset_properties(job.dataset)}
    params.update({
        "llmhni_cache_dir": str(Path(args.cache_dir).resolve()),
        "llmhni_artifact_dir": str(workdir / "llmhni_artifacts") if fresh else str(Path(args.artifact_dir).resolve()),
        "show_progress": False, "checkpoint_dir": str(workdir / "saved"),
    })
    if (data_path / job.dataset).is_dir():  # else RecBole's own (ml-100k ships with RecBole)
        params["data_path"] = str(data_path)
    if args.epochs:
        params["epochs"] = args.epochs
    if args.device:
        params["device"] = args.device
        params["use_gpu"] = args.device != "cpu"
    params.update(job.params)
    params.update(extra)
    return params


def done(job: Job, results: Path) -> bool:
    """``job``'s result file exists, or the report borrows the row from another suite's result
    for the same job (``suites.BORROWED``), which exists."""
    if job.result_path(results).exists():
        return True
    sources = [source for source, shown in BORROWED.get(job.suite, {}).items() if shown == job.label]
    return any(Job(suite, label, job.model, job.dataset).result_path(results).exists() for suite, label in sources)


def job_workdir(job: Job, results: Path) -> Path:
    """The folder a job runs in (its spec, logs and checkpoint; kept for ``--resume``)."""
    return results / "_work" / job.suite / job.dataset / job.slug


def resumable(job: Job, results: Path, params: Dict[str, Any], info: Dict[str, Any]) -> Dict[str, Any]:
    """``{"checkpoint", "previous"}`` to resume ``job`` from, or ``{"why": reason}`` if it cannot.

    A job resumes when its result was stopped by a time budget or deadline, its folder still
    holds the run's checkpoint, and the machine and config are the ones it started with.
    """
    out = job.result_path(results)
    if not out.exists():
        return {"why": f"no result file {out}"}
    previous = json.loads(out.read_text())
    if previous.get("status") != "time budget":
        return {"why": f"{out.name} is '{previous.get('status')}', not stopped by a time budget"}
    workdir = job_workdir(job, results)
    saved = sorted((workdir / "saved").glob("*.pth"), key=lambda f: f.stat().st_mtime)
    if not saved:
        return {"why": f"no checkpoint under {workdir / 'saved'} (its folder is gone): rerun with --force"}
    if where(previous) != where({"machine": info}):
        return {"why": f"it started on {where(previous)}, this is {where({'machine': info})}"}
    started = json.loads((workdir / "spec.json").read_text()).get("params") if (workdir / "spec.json").exists() else None
    if started != json.loads(json.dumps(params, default=str)):
        return {"why": "its settings differ from those it started with (see its spec.json)"}
    return {"checkpoint": str(saved[-1]), "previous": previous}


def run_suite(args: argparse.Namespace) -> int:
    results = Path(args.results).resolve()
    jobs = select_jobs(args)
    resume = getattr(args, "resume", False) and not args.force

    def stopped(job: Job) -> bool:
        out = job.result_path(results)
        return out.exists() and json.loads(out.read_text()).get("status") == "time budget"

    todo = [j for j in jobs if args.force or not done(j, results) or (resume and stopped(j))]
    print(f"{len(jobs)} jobs, {len(jobs) - len(todo)} already done, {len(todo)} to run "
          f"({args.workers} at a time)", flush=True)
    info = machine()
    extra = parse_overrides(args.set or [])
    deadline = time.time() + args.deadline if args.deadline else None
    running: List[tuple] = []
    pending = list(todo)
    failures = 0
    workers = 1 if any(j.suite == "speed" for j in todo) else args.workers

    def start(job: Job) -> None:
        workdir = job_workdir(job, results)
        params = job_params(args, job, workdir, extra)
        out = job.result_path(results)
        again = resumable(job, results, params, info) if resume and out.exists() else {}
        if "why" in again:
            print(f"[skip] {job.suite}/{job.dataset}/{job.label}: cannot resume: {again['why']}", flush=True)
            return
        if not again:
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        spec = {"model": job.model, "dataset": job.dataset, "params": params,
                "out": str(out), "anytime_test": bool(args.time_budget or deadline), "machine": info,
                "command": command_line(args, job)}
        if again:
            spec["resume"] = again
        spec_file = workdir / "spec.json"
        spec_file.write_text(json.dumps(spec, default=str))
        env = dict(os.environ)
        if args.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        with open(workdir / "stderr.txt", "w") as err:
            proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(spec_file)],
                                    cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)
        running.append((job, spec, workdir, proc, time.time()))
        how = f" (resumed after epoch {again['previous'].get('best_epoch')})" if again else ""
        print(f"[start] {job.suite}/{job.dataset}/{job.label}{how}", flush=True)

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
            test = record.get("test_result") or {}
            print(f"[{record['status']}] {job.suite}/{job.dataset}/{job.label}: "
                  f"R@20 {test.get('recall@20', float('nan')):.4f} N@20 {test.get('ndcg@20', float('nan')):.4f} "
                  f"best epoch {record.get('best_epoch')} of {record.get('epochs_trained')}, {elapsed:.0f} s", flush=True)
        if deadline and time.time() > deadline - 60 and pending:
            print(f"deadline: {len(pending)} jobs not started", flush=True)
            pending.clear()
    return 1 if failures else 0


if __name__ == "__main__":  # the child: python benchmarks/runner.py SPEC
    run_job(json.loads(Path(sys.argv[1]).read_text()))

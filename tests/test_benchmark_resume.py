"""``compare.py run --resume``: a job stopped by its time budget trains on from its checkpoint.

One real RecBole LightGCN on the tiny fixture is stopped after 3 epochs (its progress file is
what the runner keeps for a stopped job), then resumed to 6 epochs from the checkpoint it
saved; the pure parts (which jobs may resume, and why not) on hand-made files.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import records  # noqa: E402
import runner  # noqa: E402
import suites  # noqa: E402

CPU = {"cpu_count": 2}


def _spec(out: Path, data_path: str, epochs: int, **extra) -> dict:
    params = {"data_path": data_path, "epochs": epochs, "show_progress": False, "stopping_step": 50,
              "checkpoint_dir": str(out.parent / "saved"), "seed": 3}
    return {"out": str(out), "model": "LightGCN", "dataset": "tiny", "params": params, "anytime_test": True, **extra}


def test_a_stopped_job_resumes_from_its_best_checkpoint(recbole_workdir, tiny_dataset):
    out = recbole_workdir / "job.json"
    runner.run_job(_spec(out, tiny_dataset["data_path"], epochs=3))
    child, progress = runner._child_files(out)
    # what the runner keeps of a job its budget stopped: the run record of its last validation
    stopped = records.stopped_record({"format": 2, "machine": CPU, "command": "first", "params": {}},
                                     json.loads(progress.read_text()))
    child.unlink()
    progress.unlink()
    best = stopped["best_epoch"]
    assert stopped["epochs_trained"] == 3 and 1 <= best <= 3
    checkpoint = next((recbole_workdir / "saved").glob("*.pth"))
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert saved["epoch"] + 1 == best  # RecBole numbers epochs from 0

    runner.run_job(_spec(out, tiny_dataset["data_path"], epochs=6,
                         resume={"checkpoint": str(checkpoint), "previous": stopped}))
    result = json.loads(child.read_text())
    assert result["epochs_trained"] == 6
    assert [e["epoch"] for e in result["epochs"]] == list(range(1, 7))
    assert result["epochs"][:best] == stopped["epochs"][:best]  # the earlier run's records up to its checkpoint
    assert result["resumed"] == [{"from_epoch": best, "discarded_epochs": 3 - best,
                                  "earlier_command": "first", "earlier_status": "time budget"}]
    assert result["train_seconds"] > stopped["train_seconds"]
    if result["best_epoch"] == best:  # no later epoch beat the checkpoint: the same model is tested
        assert result["test_result"] == stopped["test_result"]


def test_the_parent_adds_the_earlier_wall_time_and_keeps_the_larger_peak(tmp_path):
    job = suites.Job("paper", "SGL", "SGL", "toy")
    previous = {"wall_seconds_total": 100.0, "peak_rss_mb": 900.0}
    spec = {"out": str(tmp_path / "SGL.json"), "machine": CPU, "command": "c",
            "resume": {"checkpoint": "x.pth", "previous": previous}}
    child, _ = runner._child_files(Path(spec["out"]))
    child.write_text(json.dumps({"test_result": {}, "epochs_trained": 9, "epoch_cap_reached": False,
                                 "peak_rss_mb": 700.0}))
    record = runner.job_record(job, spec, tmp_path, 0, 50.0, False)
    assert record["wall_seconds_total"] == 150.0 and record["peak_rss_mb"] == 900.0


def _args(tmp_path: Path) -> argparse.Namespace:
    return argparse.Namespace(data_path=str(tmp_path / "data"), fresh_artifacts=False, cache_dir=str(tmp_path / "c"),
                              artifact_dir=str(tmp_path / "a"), epochs=None, device="cpu")


def test_which_jobs_may_resume_and_why_not(tmp_path):
    job = suites.Job("paper", "SGL", "SGL", "toy")
    results = tmp_path / "results"
    workdir = runner.job_workdir(job, results)
    params = runner.job_params(_args(tmp_path), job, workdir, {})
    out = job.result_path(results)
    assert "no result file" in runner.resumable(job, results, params, CPU)["why"]
    out.parent.mkdir(parents=True)
    out.write_text(json.dumps({"status": "early stop", "machine": CPU}))
    assert "not stopped by a time budget" in runner.resumable(job, results, params, CPU)["why"]
    out.write_text(json.dumps({"status": "time budget", "machine": CPU, "best_epoch": 4}))
    assert "--force" in runner.resumable(job, results, params, CPU)["why"]  # no checkpoint
    (workdir / "saved").mkdir(parents=True)
    (workdir / "saved" / "SGL-1.pth").write_bytes(b"")
    (workdir / "spec.json").write_text(json.dumps({"params": params}))
    assert "started on CPU" in runner.resumable(job, results, params, {"gpu": "NVIDIA H100 80GB HBM3"})["why"]
    assert "settings differ" in runner.resumable(job, results, {**params, "epochs": 7}, CPU)["why"]
    again = runner.resumable(job, results, params, CPU)
    assert again["checkpoint"].endswith("SGL-1.pth") and again["previous"]["best_epoch"] == 4


def test_the_report_says_a_row_was_resumed():
    import report

    row = {"status": "early stop", "resumed": [{"from_epoch": 45}, {"from_epoch": 98}]}
    assert report._status_cell(row) == "early stop (resumed after epoch 45, 98)"
    assert report._status_cell({"status": "time budget"}) == "**time budget**"

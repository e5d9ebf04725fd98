"""``recbole-llmhni tune``: RecBole's HyperTuning (hyperopt, no ray) over the run command."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import yaml

from recbole_llmhni.cli.tune import results_table

REPO = Path(__file__).resolve().parents[1]


def test_results_table_marks_the_best_trial_by_the_validation_score():
    trials = [
        {"params": {"lr": 0.1}, "best_valid_score": 0.2, "best_valid_result": {"recall@20": 0.2}, "test_result": {"recall@20": 0.3}},
        {"params": {"lr": 0.2}, "best_valid_score": 0.5, "best_valid_result": {"recall@20": 0.5}, "test_result": {"recall@20": 0.1}},
        {"params": {"lr": 0.3}, "best_valid_score": 0.5, "best_valid_result": {"recall@20": 0.5}, "test_result": {"recall@20": 0.4}},
    ]
    rows = results_table(trials, bigger=True)
    assert [r["best"] for r in rows] == ["", "*", ""]  # highest validation score, first on ties; never the test
    assert rows[0] == {"trial": 1, "lr": 0.1, "valid recall@20": 0.2, "test recall@20": 0.3, "best": ""}
    assert [r["best"] for r in results_table(trials, bigger=False)] == ["*", "", ""]  # a loss: lowest wins


def test_exhaustive_search_rng_answers_the_generator_api():
    from recbole.trainer import hyper_tuning

    from recbole_llmhni.compat import install_hyperopt_rng

    install_hyperopt_rng()
    install_hyperopt_rng()  # idempotent
    a = hyper_tuning.np.random.RandomState(3)
    b = hyper_tuning.np.random.RandomState(3)
    assert a.integers(0, 5, 20).tolist() == b.randint(0, 5, 20).tolist()
    assert hyper_tuning.np.array([1, 2]).tolist() == [1, 2]  # the rest of numpy unchanged


def test_tune_runs_two_trials_on_ml100k_and_writes_the_table_and_best_config(tmp_path):
    (tmp_path / "params.txt").write_text("learning_rate choice [0.001,0.01]\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, "-m", "recbole_llmhni", "tune", "--model=BPR", "--dataset=ml-100k",
         "--params_file=params.txt", "--max_evals=2", "--output_dir=out", "--epochs=1",
         "--train_batch_size=8192", "--eval_batch_size=65536", "--show_progress=False"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "out" / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(float(r["learning_rate"]) for r in rows) == [0.001, 0.01]  # the whole 2-point grid
    # the marked row is the one of the highest validation Recall@20 (the valid_metric)
    best = max(rows, key=lambda r: float(r["valid recall@20"]))
    assert [r["best"] for r in rows].count("*") == 1 and best["best"] == "*"
    assert all(0.0 <= float(r["test recall@20"]) <= 1.0 for r in rows)
    best_config = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert best_config["learning_rate"] == float(best["learning_rate"]) and best_config["epochs"] == 1
    md = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert md[0].startswith("| trial | learning_rate |") and len(md) == 2 + 2

"""The benchmark harness's pure parts: job lists, log parsing, the best-epoch arithmetic."""
import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from recbole_llmhni.quick_start import epochs_of

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("bench_compare", REPO / "benchmarks" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_compare"] = module
    spec.loader.exec_module(module)
    return module


LOG = """\
Mon 23 Nov 2026 01:30:22 INFO  semantic S1: 943 user and 1682 item profiles encoded by x (dim 384) in 72.2 s
Mon 23 Nov 2026 01:31:16 INFO  semantic S2: aligned embeddings reused from /a/aligned-1.npz (0.51 s)
Mon 23 Nov 2026 01:31:16 INFO  S4 pretrain: training BackboneLightGCN for 30 epochs on the training split
Mon 23 Nov 2026 01:31:17 INFO  epoch 0 training [time: 9.00s, train loss: 1.0]
Mon 23 Nov 2026 01:31:44 INFO  S4 pretrain: computed in 27.3 s -> /a/pretrain/5233
Mon 23 Nov 2026 01:31:44 INFO  S5 candidates: computed in 0.1 s -> /a/candidates/1947: 2,829 high-score negatives
Mon 23 Nov 2026 01:31:44 INFO  S6 rate: reused /a/ratings/43a2 (0.2 s): 5,658 pairs rated
  precision / recall / F1         0.6330 / 0.3327 / 0.4362
Mon 23 Nov 2026 01:31:45 INFO  epoch 0 training [time: 0.95s, train loss: 27.5]
Mon 23 Nov 2026 01:31:46 INFO  epoch 0 evaluating [time: 0.21s, valid_score: 0.250700]
Mon 23 Nov 2026 01:31:47 INFO  epoch 1 training [time: 0.92s, train loss: 20.1]
Mon 23 Nov 2026 01:31:48 INFO  epoch 1 evaluating [time: 0.20s, valid_score: 0.260700]
"""


def test_parse_log_reads_epochs_stages_and_identification(compare):
    parsed = compare.parse_log(LOG)
    assert parsed["train_epoch_seconds"] == [9.0, 0.95, 0.92]  # S4's epochs too; _finish keeps the last n
    assert parsed["eval_seconds"] == [0.21, 0.20]
    stages = parsed["stages"]
    assert stages["S1 encode"] == {"how": "computed", "seconds": 72.2}
    assert stages["S2 align"] == {"how": "reused", "seconds": 0.51}
    assert stages["S4 pretrain"] == {"how": "computed", "seconds": 27.3}
    assert stages["S5 candidates"]["seconds"] == 0.1 and stages["S6 rate"] == {"how": "reused", "seconds": 0.2}
    assert parsed["identification"] == {"precision": 0.633, "recall": 0.3327, "f1": 0.4362}


def test_every_suite_has_unique_labels_and_result_files(compare, tmp_path):
    for suite in ("models", "noise", "ablation", "s8", "speed"):
        jobs = compare.suite_jobs(suite, ["ml-100k", "amazon-books"])
        assert jobs
        paths = [j.result_path(tmp_path) for j in jobs]
        assert len(set(paths)) == len(paths), suite
    with pytest.raises(SystemExit):
        compare.suite_jobs("nope", ["ml-100k"])


@pytest.mark.parametrize("trained, cur_step, eval_step, best", [(110, 11, 1, 99), (20, 0, 1, 20), (88, 5, 2, 78)])
def test_epochs_of_reads_the_best_epoch_from_the_early_stopping_counter(trained, cur_step, eval_step, best):
    trainer = SimpleNamespace(train_loss_dict={e: 0.0 for e in range(trained)}, start_epoch=0,
                              cur_step=cur_step, eval_step=eval_step)
    assert epochs_of(trainer) == (trained, best)


def _record(suite, label, model, r20, **extra):
    return {"suite": suite, "label": label, "model": model, "dataset": "toy", "params": {},
            "machine": {"gpu": "NVIDIA H100 80GB HBM3"} if extra.pop("gpu", False) else {"cpu_count": 2},
            "test": {"recall@10": r20 / 2, "recall@20": r20, "ndcg@10": r20 / 3, "ndcg@20": r20 / 2.5},
            "best_epoch": 9, "epochs_trained": 20, "status": "early stop", "wall_seconds_total": 600.0,
            "log": {"train_epoch_seconds": [1.0, 3.0, 2.0], "eval_seconds": [0.5]}, **extra}


def test_readme_blocks_are_filled_from_result_files_only(compare):
    records = [_record("models", "LightGCN", "LightGCN", 0.15),
               _record("models", "LLMHNI_LightGCN", "LLMHNI_LightGCN", 0.1647, gpu=True),
               _record("noise", "LLMHNI_LightGCN noise=0.2", "LLMHNI_LightGCN", 0.15, status="time budget",
                       identification={"identification": {"precision": 0.6634, "recall": 0.2673}})]
    text = ("intro\n<!-- results models toy -->\nstale | table\n<!-- /results -->\nmiddle\n"
            "<!-- results noise toy -->\n<!-- /results -->\nend\n")
    out = compare.render_readme(text, records)
    assert out.startswith("intro\n<!-- results models toy -->\n| model | R@10 |") and "stale" not in out
    assert "| LLMHNI_LightGCN | 0.0824 | 0.1647 | 0.0549 | 0.0659 | 9 / 20 | early stop | H100 | 2.00 | 10 min |" in out
    assert "| LightGCN | 0.0750 | 0.1500 | 0.0500 | 0.0600 | 9 / 20 | early stop | CPU |" in out
    assert "| **time budget** | CPU | 2.00 | 10 min | 0.663 | 0.267 |" in out
    assert out.endswith("<!-- /results -->\nend\n") and "\nmiddle\n" in out
    assert compare.render_readme(out, records) == out  # idempotent
    with pytest.raises(SystemExit, match="ablation toy"):
        compare.render_readme("<!-- results ablation toy -->\n<!-- /results -->\n", records)


def test_readme_results_tables_match_the_committed_result_files(compare):
    """The README's results tables are exactly what ``compare.py report`` builds from benchmarks/results/."""
    readme = (REPO / "README.md").read_text()
    assert readme.count("<!-- results ") >= 6
    records = compare.load_results(REPO / "benchmarks" / "results")
    assert compare.render_readme(readme, records) == readme, (
        "README results tables are stale: run `python benchmarks/compare.py report`")


def test_a_result_from_another_machine_is_kept_beside_the_new_one(compare, tmp_path):
    out = tmp_path / "LLMHNI_LightGCN.json"
    assert compare.keep_other_machine(out, _record("models", "x", "x", 0.1)) is None  # nothing there yet
    out.write_text(json.dumps(_record("models", "x", "x", 0.1647, gpu=True)))
    kept = compare.keep_other_machine(out, _record("models", "x", "x", 0.1681))
    assert kept == tmp_path / "LLMHNI_LightGCN@H100.json" and not out.exists()
    assert json.loads(kept.read_text())["test"]["recall@20"] == 0.1647
    out.write_text(json.dumps(_record("models", "x", "x", 0.1681)))  # the CPU run, written by _finish
    assert compare.keep_other_machine(out, _record("models", "x", "x", 0.17)) is None  # same machine: replaced
    assert out.exists() and kept.exists()

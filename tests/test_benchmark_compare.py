"""The benchmark harness's pure parts: job lists, log parsing, the best-epoch arithmetic."""
import importlib.util
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

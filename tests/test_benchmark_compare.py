"""The benchmark harness's pure parts: suites, result records (old and new), the report.

Offline and fast: no job is run. Records of new runs are built by the package's own
``run_record`` from a fake fitted run, so the report is tested against what runs write.
"""
import ast
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from recbole_llmhni.quick_start import epochs_of, run_record

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import compare  # noqa: E402  (benchmarks/compare.py)
import figures  # noqa: E402
import records  # noqa: E402
import report  # noqa: E402
import runner  # noqa: E402
import suites  # noqa: E402


# ----------------------------------------------------------------------------- suites
def test_every_suite_has_unique_labels_and_result_files(tmp_path):
    for suite in suites.SUITES:
        jobs = suites.suite_jobs(suite, ["ml-100k", "amazon-books"])
        assert jobs and all(j.suite == suite for j in jobs)
        paths = [j.result_path(tmp_path) for j in jobs]
        assert len(set(paths)) == len(paths), suite
        assert all(p.parent.parent.parent == tmp_path for p in paths)
    with pytest.raises(SystemExit):
        suites.suite_jobs("nope", ["ml-100k"])


def test_suite_definitions():
    models = suites.suite_jobs("models", ["toy"])
    assert [j.label for j in models] == ["LLMHNI_LightGCN", "LLMHNI_NGCF", "LightGCN", "LightGCN+DNS", "NGCF", "NGCF+DNS", "BPR",
                                          "LightGCN+DNS M=32"]
    assert models[3].params == suites.DNS and models[3].slug == "LightGCN_DNS"
    assert models[-1].params["train_neg_sample_args"] == {**suites.DNS["train_neg_sample_args"], "candidate_num": 32}
    noise = suites.suite_jobs("noise", ["toy"])
    assert sorted({j.params["llmhni_noise_ratio"] for j in noise}) == suites.NOISE_RATIOS
    speed = suites.suite_jobs("speed", ["toy"], speed_epochs=3)
    fixed = {"epochs": 3, "stopping_step": 10 ** 6}
    assert [j.params for j in speed if "S8 on" not in j.label] == [fixed] * 4
    assert [j.params for j in speed if "S8 on" in j.label] == [{**fixed, **suites.S8_ON}] * 2
    s8 = suites.suite_jobs("s8", ["toy"])
    assert [(j.model, j.params["epochs"]) for j in s8 if "10 epochs" in j.label] == [("LLMHNI_LightGCN", 10), ("LLMHNI_NGCF", 10)]
    ablation = {j.label: j for j in suites.suite_jobs("ablation", ["toy"])}
    assert ablation["w/o alignment"].slug == "w_o_alignment"
    assert ablation["full, S8 on, w/o L_hal"].params == {"llmhni_lambda1": 0.1, "llmhni_lambda2": 0.0}


def test_command_line_keeps_every_option():
    args = compare.parser().parse_args(
        ["run", "--suite", "noise", "models", "--datasets", "toy", "--only", "LightGCN", "--epochs", "7",
         "--time-budget", "60", "--deadline", "600", "--device", "cpu", "--set", "llmhni_rater=oracle",
         "--force", "--workers", "2", "--results", "/tmp/r", "--speed-epochs", "2", "--skip", "BPR",
         "--fresh-artifacts"])
    jobs = runner.select_jobs(args)
    assert [j.label for j in jobs] == ["LightGCN"]
    line = runner.command_line(args, jobs[0])
    assert line == ("python benchmarks/compare.py run --suite models --datasets toy --only 'LightGCN' --epochs 7 "
                    "--time-budget 60 --deadline 600 --device cpu --set llmhni_rater=oracle")
    params = runner.job_params(args, jobs[0], Path("/tmp/w"), {"llmhni_rater": "oracle"})
    assert params["epochs"] == 7 and params["device"] == "cpu" and params["use_gpu"] is False
    assert params["llmhni_artifact_dir"] == "/tmp/w/llmhni_artifacts"  # --fresh-artifacts
    assert params["llmhni_rater"] == "oracle" and params["eval_batch_size"] == runner.EVAL_BATCH
    assert compare.parser().parse_args(["report", "--readme", ""]).readme == ""


@pytest.mark.parametrize("trained, cur_step, eval_step, best", [(110, 11, 1, 99), (20, 0, 1, 20), (88, 5, 2, 78)])
def test_epochs_of_reads_the_best_epoch_from_the_early_stopping_counter(trained, cur_step, eval_step, best):
    trainer = SimpleNamespace(train_loss_dict={e: 0.0 for e in range(trained)}, start_epoch=0,
                              cur_step=cur_step, eval_step=eval_step)
    assert epochs_of(trainer) == (trained, best)


# ----------------------------------------------------------------------------- records
class _Config(dict):
    model_class = SimpleNamespace(needs_pipeline=True)


def _pipeline():
    from recbole_llmhni.denoise.rewrite import EdgeList
    from recbole_llmhni.pipeline.results import DenoisedGraph, PipelineResult, StageReport

    none = EdgeList(np.zeros(0), np.zeros(0))
    graph = DenoisedGraph(np.array([1]), np.array([2]), none, none, n_items=3, counts={"train": 10, "removed": 2},
                          report={"rater": "semantic", "identification": {"precision": 0.6634, "recall": 0.2673, "f1": 0.37}})
    reports = [StageReport("S1 encode", "reused", 0.4, "/a/encode/k1"), StageReport("S2 align", "computed", 61.2, "/a/align/k2"),
               StageReport("S4 pretrain", "skipped", 0.0, "/a/pretrain/k4"), StageReport("S5 candidates", "reused", 0.1),
               StageReport("S6 rate", "computed", 1.5), StageReport("S7 rewrite", "computed", 0.2)]
    return PipelineResult(reports, graph=graph)


def _run(epochs=3, cur_step=1, cap=300, pipeline=True):
    """A fitted run as run_record sees it: per-epoch records of the trainer, the pipeline's reports."""
    config = _Config(model="LLMHNI_LightGCN", dataset="toy", valid_metric="recall@20", epochs=cap, seed=2020,
                     device="cpu", llmhni_noise_ratio=0.2)
    epoch_records = [{"epoch": e + 1, "train_seconds": [1.0, 3.0, 2.0, 5.0][e], "loss": 0.7, "loss_terms": [0.7],
                      "valid_seconds": 0.5, "valid_score": 0.1} for e in range(epochs)]
    trainer = SimpleNamespace(train_loss_dict={e: 0.7 for e in range(epochs)}, start_epoch=0, cur_step=cur_step,
                              eval_step=1, epoch_records=epoch_records)
    return SimpleNamespace(config=config, trainer=trainer, setup_seconds=70.0, pipeline=_pipeline() if pipeline else None)


TEST = {"recall@10": 0.0824, "recall@20": 0.1647, "ndcg@10": 0.0549, "ndcg@20": 0.0659}


def _new_record(**extra):
    rec = run_record(_run(), {"recall@20": 0.16}, TEST, 12.0)
    base = {"format": records.RECORD_FORMAT, "suite": "noise", "label": "LLMHNI_LightGCN noise=0.2",
            "model": "LLMHNI_LightGCN", "dataset": "toy", "params": {"llmhni_noise_ratio": 0.2},
            "machine": {"cpu_count": 2}, "command": "c", "wall_seconds_total": 600.0}
    return json.loads(json.dumps({**records.finished_record(base, rec), **extra}))


def _old_record(**extra):
    """A result file of the first harness (times parsed from the log then)."""
    rec = {"suite": "noise", "label": "LLMHNI_LightGCN noise=0.2", "model": "LLMHNI_LightGCN", "dataset": "toy",
           "params": {"llmhni_noise_ratio": 0.2}, "machine": {"cpu_count": 2}, "command": "c",
           "test": dict(TEST), "valid": {"recall@20": 0.16}, "best_epoch": 2, "epochs_trained": 3,
           "status": "early stop", "setup_seconds": 70.0, "wall_seconds_total": 600.0,
           "encoder": "sentence-transformers", "rater": "semantic",
           "identification": {"rater": "semantic", "identification": {"precision": 0.6634, "recall": 0.2673, "f1": 0.37}},
           "log": {"train_epoch_seconds": [1.0, 3.0, 2.0], "eval_seconds": [0.5, 0.5, 0.5],
                   "stages": {"S1 encode": {"how": "reused", "seconds": 0.4}, "S2 align": {"how": "computed", "seconds": 61.2},
                              "S5 candidates": {"how": "reused", "seconds": 0.1}, "S6 rate": {"how": "computed", "seconds": 1.5},
                              "S7 rewrite": {"how": "computed", "seconds": 0.2}}}}
    return {**rec, **extra}


def test_a_run_record_and_an_old_result_file_give_the_same_view():
    new, old = records.view(_new_record()), records.view(_old_record())
    assert new["status"] == "early stop" and new["best_epoch"] == 2 and new["epochs_trained"] == 3
    for key in ("test", "valid", "train_epoch_seconds", "eval_seconds", "stages", "ident", "best_epoch", "status"):
        assert new[key] == old[key], key
    assert records.sec_per_epoch(new) == 2.0  # median of the model's own epochs
    assert "S4 pretrain" not in new["stages"]  # skipped: S5's candidates were cached
    assert new["ident"]["precision"] == 0.6634


def test_view_of_a_plain_model_and_of_a_job_stopped_by_its_budget():
    plain = records.view(json.loads(json.dumps({"format": 2, **run_record(_run(pipeline=False), {}, {}, 1.0)})))
    assert plain["stages"] == {} and plain["ident"] == {} and plain["test"] is None
    capped = run_record(_run(epochs=4, cur_step=0, cap=4), {}, TEST, 1.0)
    assert records.status_of(capped) == "epoch cap"
    assert records.sec_per_epoch(records.view({"format": 2, **capped})) == 2.5


def _spec(tmp_path, out_name="job.json"):
    return {"out": str(tmp_path / out_name), "machine": {"cpu_count": 2}, "command": "c"}


def test_job_record_from_the_child_files(tmp_path):
    job = suites.Job("models", "LLMHNI_LightGCN", "LLMHNI_LightGCN", "toy")
    spec = _spec(tmp_path)
    child, progress = runner._child_files(Path(spec["out"]))
    child.write_text(json.dumps({**run_record(_run(), {}, TEST, 12.0), "peak_rss_mb": 700.0}))
    done = runner.job_record(job, spec, tmp_path, 0, 99.0, False)
    assert done["status"] == "early stop" and done["format"] == records.RECORD_FORMAT
    assert done["test_result"] == TEST and done["peak_rss_mb"] == 700.0 and done["wall_seconds_total"] == 99.0
    assert done["suite"] == "models" and done["label"] == "LLMHNI_LightGCN"
    child.unlink()
    progress.write_text(json.dumps(run_record(_run(epochs=2, cur_step=0), {"recall@20": 0.1}, TEST, 5.0)))
    stopped = runner.job_record(job, spec, tmp_path, -15, 3600.0, True)
    assert stopped["status"] == "time budget" and stopped["best_epoch"] == 2 and stopped["test_result"] == TEST
    (tmp_path / "stderr.txt").write_text("Traceback\nValueError: boom\n")
    failed = runner.job_record(job, spec, tmp_path, 1, 5.0, False)
    assert failed["status"] == "failed" and failed["stderr_tail"][-1] == "ValueError: boom"
    assert report.readme_table("models", [records.view(failed)])[2].startswith("| LLMHNI_LightGCN | - | - |")


class _FakeTrainer(SimpleNamespace):
    """Fits 3 epochs; validation improves at epochs 1 and 2 (RecBole's counters and callback)."""

    def fit(self, train, valid, saved=True, show_progress=False, callback_fn=None):
        for epoch_idx, improved in enumerate((True, True, False)):
            self.train_loss_dict[epoch_idx] = 0.7
            self.epoch_records.append({"epoch": epoch_idx + 1, "train_seconds": 1.0 + epoch_idx, "loss": 0.7,
                                       "loss_terms": [0.7], "valid_seconds": 0.5, "valid_score": 0.1})
            self.cur_step = 0 if improved else self.cur_step + 1
            if improved:
                self.best_valid_result = {"recall@20": 0.1 * (epoch_idx + 1)}
            callback_fn(epoch_idx, 0.1)
        return 0.2, self.best_valid_result

    def evaluate(self, data, load_best_model=True, show_progress=False):
        self.evaluated.append(load_best_model)
        return {"recall@20": 0.05 * len(self.evaluated)}


@pytest.mark.parametrize("anytime", [False, True])
def test_run_job_writes_the_run_record_and_its_progress(tmp_path, monkeypatch, anytime):
    import recbole_llmhni.quick_start as quick_start

    run = _run(epochs=0)
    run.trainer = _FakeTrainer(train_loss_dict={}, start_epoch=0, cur_step=0, eval_step=1, epoch_records=[],
                               best_valid_result=None, evaluated=[])
    run.train_data = run.valid_data = run.test_data = None
    progress_seen = []
    original_write = Path.write_text

    def spy(self, text, *a, **k):
        if self.name.endswith(".progress.json"):
            progress_seen.append(json.loads(text))
        return original_write(self, text, *a, **k)

    monkeypatch.setattr(quick_start, "prepare_run", lambda *a, **k: run)
    monkeypatch.setattr(Path, "write_text", spy)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    out = tmp_path / "job.json"
    runner.run_job({"out": str(out), "model": "LLMHNI_LightGCN", "dataset": "toy", "params": {}, "anytime_test": anytime})
    child, progress = runner._child_files(out)
    result = json.loads(child.read_text())
    assert result["epochs_trained"] == 3 and result["best_epoch"] == 2 and [e["epoch"] for e in result["epochs"]] == [1, 2, 3]
    assert result["pipeline"]["stages"][1]["stage"] == "S2 align" and result["peak_rss_mb"] > 0
    assert run.trainer.evaluated[-1] is True  # the best checkpoint, at the end
    if not anytime:
        assert not progress.exists() and progress_seen == []
        return
    # the test split was evaluated whenever validation improved; the progress file is the run record then
    assert [p["best_epoch"] for p in progress_seen] == [1, 2, 2]
    assert [p["test_result"] for p in progress_seen] == [{"recall@20": 0.05}, {"recall@20": 0.1}, {"recall@20": 0.1}]
    stopped = records.stopped_record({"format": 2}, progress_seen[-1])
    assert stopped["status"] == "time budget" and stopped["best_valid_result"] == {"recall@20": 0.2}


# ----------------------------------------------------------------------------- report
def _row(suite, label, model, r20, **extra):
    return records.view({"suite": suite, "label": label, "model": model, "dataset": "toy", "params": {},
                         "machine": {"gpu": "NVIDIA H100 80GB HBM3"} if extra.pop("gpu", False) else {"cpu_count": 2},
                         "test": {"recall@10": r20 / 2, "recall@20": r20, "ndcg@10": r20 / 3, "ndcg@20": r20 / 2.5},
                         "best_epoch": 9, "epochs_trained": 20, "status": "early stop", "wall_seconds_total": 600.0,
                         "log": {"train_epoch_seconds": [1.0, 3.0, 2.0], "eval_seconds": [0.5]}, **extra})


def test_readme_blocks_are_filled_from_result_files_only():
    rows = [_row("models", "LightGCN", "LightGCN", 0.15),
            _row("models", "LLMHNI_LightGCN", "LLMHNI_LightGCN", 0.1647, gpu=True),
            _row("noise", "LLMHNI_LightGCN noise=0.2", "LLMHNI_LightGCN", 0.15, status="time budget",
                 identification={"identification": {"precision": 0.6634, "recall": 0.2673}})]
    text = ("intro\n<!-- results models toy -->\nstale | table\n<!-- /results -->\nmiddle\n"
            "<!-- results noise toy -->\n<!-- /results -->\nend\n")
    out = report.render_readme(text, rows)
    assert out.startswith("intro\n<!-- results models toy -->\n| model | R@10 |") and "stale" not in out
    assert "| LLMHNI_LightGCN | 0.0824 | 0.1647 | 0.0549 | 0.0659 | 9 / 20 | early stop | H100 | 2.00 | 10 min |" in out
    assert "| LightGCN | 0.0750 | 0.1500 | 0.0500 | 0.0600 | 9 / 20 | early stop | CPU |" in out
    assert "| **time budget** | CPU | 2.00 | 10 min | 0.663 | 0.267 |" in out
    assert out.endswith("<!-- /results -->\nend\n") and "\nmiddle\n" in out
    assert report.render_readme(out, rows) == out  # idempotent
    with pytest.raises(SystemExit, match="ablation toy"):
        report.render_readme("<!-- results ablation toy -->\n<!-- /results -->\n", rows)


def test_old_and_new_files_render_the_same_tables(tmp_path):
    for name, rec in (("old", _old_record()), ("new", _new_record())):
        folder = tmp_path / name / "noise" / "toy"
        folder.mkdir(parents=True)
        (folder / "LLMHNI_LightGCN_noise_0.2.json").write_text(json.dumps(rec))
        (folder / "x.progress.json").write_text("{}")  # a job still running: not a result
    old, new = report.load_results(tmp_path / "old"), report.load_results(tmp_path / "new")
    assert len(old) == len(new) == 1
    table = report.readme_table("noise", new)
    assert table == report.readme_table("noise", old)
    assert table[2] == ("| LLMHNI_LightGCN noise=0.2 | 0.0824 | 0.1647 | 0.0549 | 0.0659 | 2 / 3 | early stop | CPU "
                        "| 2.00 | 10 min | 0.663 | 0.267 |")
    for suite in ("speed", "models"):
        as_suite = [{**r, "suite": suite} for r in new]
        assert report.readme_table(suite, as_suite) == report.readme_table(suite, [{**r, "suite": suite} for r in old])
    speed = report.readme_table("speed", [{**r, "suite": "speed"} for r in new])
    assert speed[2] == "| LLMHNI_LightGCN noise=0.2 | 2.00 | - | 0.50 | 70 s | 61 s | - | 1.8 s | - |"
    assert report.results_markdown(new, tmp_path, charts=False) == report.results_markdown(old, tmp_path, charts=False)


def test_speed_ratio_is_per_row_against_the_same_suites_backbone():
    rows = [{"label": "BackboneLightGCN", "model": "BackboneLightGCN", "train_epoch_seconds": [2.0, 2.0, 2.0]},
            {"label": "LLMHNI_LightGCN", "model": "LLMHNI_LightGCN", "train_epoch_seconds": [3.0, 3.0, 3.0]},
            {"label": "LLMHNI_LightGCN, S8 on", "model": "LLMHNI_LightGCN", "train_epoch_seconds": [5.0, 4.0, 4.0]}]
    assert report._vs_backbone(rows) == {"BackboneLightGCN": "-", "LLMHNI_LightGCN": "1.50x", "LLMHNI_LightGCN, S8 on": "2.00x"}


def test_readme_results_tables_match_the_committed_result_files():
    """The README's results tables are exactly what ``compare.py report`` builds from benchmarks/results/."""
    readme = (REPO / "README.md").read_text()
    assert readme.count("<!-- results ") >= 6
    rows = report.load_results(BENCH / "results")
    assert report.render_readme(readme, rows) == readme, (
        "README results tables are stale: run `python benchmarks/compare.py report`")


def test_a_result_from_another_machine_is_kept_beside_the_new_one(tmp_path):
    out = tmp_path / "LLMHNI_LightGCN.json"
    cpu, gpu = {"machine": {"cpu_count": 2}}, {"machine": {"gpu": "NVIDIA H100 80GB HBM3"}}
    assert runner.keep_other_machine(out, {**cpu, "test_result": {}}) is None  # nothing there yet
    out.write_text(json.dumps({**gpu, "test_result": {"recall@20": 0.1647}}))
    kept = runner.keep_other_machine(out, {**cpu, "test_result": {"recall@20": 0.1681}})
    assert kept == tmp_path / "LLMHNI_LightGCN@H100.json" and not out.exists()
    assert json.loads(kept.read_text())["test_result"]["recall@20"] == 0.1647
    out.write_text(json.dumps({**cpu, "test_result": {"recall@20": 0.1681}}))  # the CPU run
    assert runner.keep_other_machine(out, {**cpu, "test_result": {}}) is None  # same machine: replaced
    assert out.exists() and kept.exists()


# ----------------------------------------------------------------------------- no log text
def test_no_benchmark_reads_log_text():
    """Benchmarks read run records and stage manifests (JSON); RecBole's log wording is no API."""
    for path in sorted(BENCH.glob("*.py")):
        text = path.read_text()
        for needle in ("parse_log", '"*.log"', "[time:", "training [time", "evaluating [time",
                       "precision / recall / F1\\s", "denoised_graph", "semantic_embeddings",
                       "recbole_llmhni.denoise.pipeline", "recbole_llmhni.denoise.store", "recbole_llmhni.denoise.losses",
                       "recbole_llmhni.data.safe_pickle"):
            assert needle not in text, f"{path.name} uses {needle!r}"
        tree = ast.parse(text)
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        if "re" in imported:  # only for labels and README markers, never over a log
            assert path.name in ("suites.py", "report.py"), path.name


# ----------------------------------------------------------------------------- figures
def test_figures_finds_the_s2_stage_fitted_on_the_training_edges(tmp_path):
    from recbole_llmhni.artifacts import edges_fingerprint

    train = (np.array(["u1", "u2", "u2"]), np.array(["i1", "i1", "i2"]))
    noise = (np.array(["u1"]), np.array(["i2"]))
    art = tmp_path / "toy"
    (art / "encode" / "k1").mkdir(parents=True)
    (art / "encode" / "k1" / "manifest.json").write_text(json.dumps({"key": "k1", "material": {"encoder": "sentence-transformers/m"}}))
    for key, edges in (("clean", train), ("noisy", (np.r_[train[0], noise[0]], np.r_[train[1], noise[1]]))):
        d = art / "align" / key
        d.mkdir(parents=True)
        (d / "aligned.npz").write_bytes(b"")
        (d / "manifest.json").write_text(json.dumps({"key": key, "material": {"encode": "k1", "train_edges": edges_fingerprint(*edges)}}))
    (art / "align" / "incomplete").mkdir()
    (art / "align" / "incomplete" / "aligned.npz").write_bytes(b"")  # no manifest: a killed run
    picked = figures.pick_aligned(art / "align", None, train)
    assert picked == art / "align" / "clean" / "aligned.npz"
    meta = figures.aligned_manifest(picked)
    assert figures.edges_label(meta, train, noise) == "clean training split"
    noisy = figures.aligned_manifest(art / "align" / "noisy" / "aligned.npz")
    assert figures.edges_label(noisy, train, noise) == "training split + injected noise"
    assert figures.aligned_encoder(picked, meta) == "sentence-transformers/m"
    with pytest.raises(SystemExit):
        figures.pick_aligned(tmp_path / "missing", None)


def test_rater_suite_compares_simulated_accuracies_at_twenty_percent_noise():
    jobs = suites.suite_jobs("rater", ["ml-100k"])
    assert [j.label for j in jobs][:3] == ["LightGCN", "LightGCN+DNS", "LLMHNI_LightGCN, stand-in rater"]
    assert all(j.params["llmhni_noise_ratio"] == 0.2 for j in jobs)
    oracle = [j for j in jobs if j.params.get("llmhni_rater") == "oracle" and "llmhni_cand_kp" not in j.params]
    assert [j.params["llmhni_oracle_accuracy"] for j in oracle] == [0.5, 0.7, 0.9, 1.0]
    wide = [j for j in jobs if "llmhni_cand_kp" in j.params]
    assert [(j.params["llmhni_oracle_accuracy"], j.params["llmhni_cand_kp"], j.params["llmhni_cand_kn"],
             j.params["llmhni_cand_max_pairs"]) for j in wide] == [(0.9, 10, 1, 0), (1.0, 10, 1, 0)]
    assert jobs[-2:] == wide
    assert len({j.result_path(Path("r")) for j in jobs}) == len(jobs)


# ----------------------------------------------------------------------------- the s3 suite
def test_s3_suite_sweeps_q_k_m_beside_uniform_dns_and_auto():
    jobs = suites.suite_jobs("s3", ["ml-100k", "amazon-books"])
    assert len(jobs) == 2 * (4 + 4 * 3 * 3 + 2)
    mine = [j for j in jobs if j.dataset == "ml-100k"]
    assert [j.label for j in mine[:4]] == ["uniform", "score-only DNS M=8", "auto k=1 M=8", "auto q, auto M"]
    assert mine[0].params == {"llmhni_neg_mode": "uniform"}
    assert mine[1].params == {"llmhni_neg_mode": "dns", "llmhni_neg_candidates": 8}
    assert mine[2].params["llmhni_fn_quantile"] == "auto" and mine[2].params["llmhni_neg_candidates"] == 8
    assert mine[3].params["llmhni_fn_quantile"] == mine[3].params["llmhni_neg_candidates"] == "auto"
    grid = {(j.params["llmhni_fn_quantile"], j.params["llmhni_neg_topk"], j.params["llmhni_neg_candidates"]): j
            for j in mine[4:-2]}
    assert set(grid) == {(q, k, m) for q in (0.3, 0.5, 0.7, 0.9) for k in (1, 2, 3) for m in (8, 16, 32)}
    assert [(j.label, j.params) for j in mine[-2:]] == [
        (f"score-only DNS M={m}", {"llmhni_neg_mode": "dns", "llmhni_neg_candidates": m}) for m in (16, 32)]
    assert grid[(0.7, 1, 8)].label == "q=0.7 k=1 M=8" and grid[(0.7, 1, 8)].slug == "q_0.7_k_1_M_8"
    assert [j.label for j in mine[4:8]] == [f"q={q} k=1 M=8" for q in (0.3, 0.5, 0.7, 0.9)]  # run first
    assert all(j.model == "LLMHNI_LightGCN" for j in jobs)


def _s3_row(label, valid, test, mode="semantic", q=0.9, fired=0.1, changed=0.05, m=8):
    ns = {"mode": mode, "fn_quantile": q if mode == "semantic" else None, "fired_row_share": fired,
          "changed_row_share": changed, "candidates": m}
    return {"suite": "s3", "dataset": "toy", "label": label, "model": "LLMHNI_LightGCN", "status": "early stop",
            "valid": {"recall@20": valid}, "test": {"recall@20": test, "ndcg@20": 0.1}, "negative_sampling": ns,
            "best_epoch": 5, "epochs_trained": 15, "machine": {}, "command": "c", "train_epoch_seconds": [1.0]}


def test_s3_table_marks_the_validation_selected_row_and_the_heat_map_is_drawn(tmp_path):
    rows = [_s3_row("uniform", 0.30, 0.33, mode="uniform"), _s3_row("q=0.3 k=1 M=8", 0.31, 0.35, q=0.3),
            _s3_row("q=0.9 k=1 M=8", 0.32, 0.34, fired=0.02, changed=0.015)]
    assert report.s3_selected(rows)["label"] == "q=0.9 k=1 M=8"  # by validation, not by test
    table = report.readme_table("s3", rows)
    assert table[2].startswith("| uniform | 0.3000 | 0.3300 | 0.1000 | - | -")
    assert "| **q=0.9 k=1 M=8** (selected) | 0.3200 | 0.3400 | 0.1000 | 0.9 | 8 | 2.0% | 1.5% |" in table[4]
    png = tmp_path / "s3.png"
    report._s3_heatmap(rows, png, "toy")
    assert png.stat().st_size > 0
    # another machine's copy of a job (listed after the CPU row) is neither selected nor drawn
    gpu = {**_s3_row("q=0.3 k=1 M=8", 0.40, 0.20, q=0.3), "machine": {"gpu": "NVIDIA H100 80GB HBM3"}}
    assert report.s3_selected(rows + [gpu])["label"] == "q=0.9 k=1 M=8"
    assert report._first_per_label(rows + [gpu])["q=0.3 k=1 M=8"]["test"]["recall@20"] == 0.35
    # a grid row borrowed from an older record without S3's counters (the models row) still competes
    borrowed = {**_s3_row("q=0.9 k=1 M=16", 0.33, 0.34), "negative_sampling": None}
    assert report.s3_selected(rows + [borrowed])["label"] == "q=0.9 k=1 M=16"
    assert "| **q=0.9 k=1 M=16** (selected) | 0.3300 | 0.3400 | 0.1000 | 0.9 | - | - |" in "\n".join(
        report.readme_table("s3", rows + [borrowed]))


# ----------------------------------------------------------------------------- the seeds suite
def test_seeds_suite_pairs_dns_and_llmhni_per_seed_and_borrows_the_default_seed():
    jobs = suites.suite_jobs("seeds", ["ml-100k"])
    assert [j.label for j in jobs[:4]] == ["LightGCN+DNS seed=2020", "LLMHNI_LightGCN seed=2020",
                                           "LightGCN+DNS seed=2021", "LLMHNI_LightGCN seed=2021"]
    assert len(jobs) == 10 and jobs[-1].params == {"seed": 2024} and jobs[-2].params == {**suites.DNS, "seed": 2024}
    # RecBole's default seed is the models suite's run: no seed key, and its result counts as done
    assert jobs[0].params == suites.DNS and jobs[1].params == {}
    assert not runner.done(jobs[1], Path("/nonexistent"))


def _seed_row(label, r20, n20):
    return {"suite": "seeds", "dataset": "toy", "label": label, "model": "m", "status": "early stop",
            "test": {"recall@20": r20, "ndcg@20": n20}, "machine": {}, "command": "c"}


def test_seed_table_gives_mean_sample_std_and_the_paired_difference(tmp_path):
    # R@20: DNS 0.40, 0.38, 0.42 / LLMHNI 0.41, 0.37, (missing); N@20 likewise, hand-computed below
    rows = [_seed_row("LightGCN+DNS seed=2020", 0.40, 0.30), _seed_row("LLMHNI_LightGCN seed=2020", 0.41, 0.33),
            _seed_row("LightGCN+DNS seed=2021", 0.38, 0.28), _seed_row("LLMHNI_LightGCN seed=2021", 0.37, 0.29),
            _seed_row("LightGCN+DNS seed=2022", 0.42, 0.32)]
    t = report.seed_table(rows)
    mean, std, n = t["summary"][("LightGCN+DNS", "recall@20")]
    assert n == 3 and mean == pytest.approx(0.40) and std == pytest.approx(0.02)  # deviations -+0.02, 0
    mean, std, n = t["summary"][("LLMHNI_LightGCN", "recall@20")]
    assert n == 2 and mean == pytest.approx(0.39) and std == pytest.approx(0.02 * 2 ** 0.5)  # sum of squares 0.0008, n - 1 = 1
    # paired over the two seeds both ran: +0.01 and -0.01
    mean, std, n, above = t["paired"]["recall@20"]
    assert (n, above) == (2, 1) and mean == pytest.approx(0.0) and std == pytest.approx(0.02 / 2 ** 0.5)
    mean, std, n, above = t["paired"]["ndcg@20"]  # +0.03, +0.01
    assert (n, above) == (2, 2) and mean == pytest.approx(0.02)
    table = report.readme_table("seeds", rows)
    assert table[0] == ("| seed | LightGCN+DNS R@20 | LLMHNI_LightGCN R@20 | LightGCN+DNS N@20 | LLMHNI_LightGCN N@20 "
                        "| LLMHNI_LightGCN - LightGCN+DNS R@20 | LLMHNI_LightGCN - LightGCN+DNS N@20 |")
    assert table[2] == "| 2020 | 0.4000 | 0.4100 | 0.3000 | 0.3300 | +0.0100 | +0.0300 |"
    assert table[4] == "| 2022 | 0.4200 | - | 0.3200 | - | - | - |"
    assert table[-1].startswith("| **mean +- std (n)** | **0.4000 +- 0.0200 (3)** | **0.3900 +- 0.0283 (2)** |")
    assert table[-1].endswith("| **+0.0200 +- 0.0141, above in 2 of 2** |")
    png = tmp_path / "seeds.png"
    report._seeds_chart(rows, png, "toy")
    assert png.stat().st_size > 0


def test_sampling_summary_weights_epochs_by_rows():
    from recbole_llmhni.training import sampling_summary

    model = SimpleNamespace(neg_mode="semantic", neg_candidates=8, neg_topk=1, fn_quantile="auto", fn_quantile_used=0.7)
    epochs = [{"negative_sampling": {"rows": 100, "dropped_candidate_share": 0.1, "fired_row_share": 0.2,
                                     "all_dropped_row_share": 0.0, "changed_row_share": 0.2}},
              {"negative_sampling": {"rows": 300, "dropped_candidate_share": 0.3, "fired_row_share": 0.4,
                                     "all_dropped_row_share": 0.01, "changed_row_share": 0.3}}]
    out = sampling_summary(model, epochs)
    assert out["fn_quantile"] == 0.7 and out["fn_quantile_setting"] == "auto" and out["rows"] == 400
    assert out["fired_row_share"] == pytest.approx((100 * 0.2 + 300 * 0.4) / 400)
    assert out["changed_row_share"] == pytest.approx((100 * 0.2 + 300 * 0.3) / 400)
    assert sampling_summary(SimpleNamespace(), epochs) is None  # a plain RecBole model


# ----------------------------------------------------------------------------- the paper suite
def test_paper_suite_lists_the_comparison_table_and_borrows_the_models_rows(tmp_path):
    jobs = suites.suite_jobs("paper", ["ml-100k", "amazon-books"])
    labels = [j.label for j in jobs if j.dataset == "ml-100k"]
    assert labels == ["BPR", "LightGCN", "NGCF", "LightGCN+DNS", "LightGCN+DNS M=32", "NGCF+DNS", "SGL", "SimGCL", "SimGCL, authors' settings",
                      "XSimGCL", "XSimGCL, authors' settings", "RLMRec-Con", "RLMRec-Gen",
                      "RLMRec-Gen, authors' settings", "WBPR_LightGCN", "TCE_LightGCN", "RCE_LightGCN", "BOD_LightGCN", "DCF_LightGCN",
                      "LLMHNI_LightGCN", "LLMHNI_NGCF"]
    by = {(j.dataset, j.label): j for j in jobs}
    assert by[("ml-100k", "RLMRec-Con")].model == "RLMRec_Con" and by[("ml-100k", "LightGCN+DNS")].params == suites.DNS
    # SGL: RecBole's defaults, except the SGL paper's own Amazon-book settings on amazon-books
    assert by[("ml-100k", "SGL")].params == {}
    sgl = by[("amazon-books", "SGL")].params
    assert sgl["n_layers"] == 3 and sgl["ssl_weight"] == 0.5 and sgl["ssl_tau"] == 0.2 and sgl["reg_weight"] == 1e-3
    # SimGCL / XSimGCL: the authors' Yelp2018 defaults, except the validated lambda and ego layer on
    # ml-100k (both) and amazon-books (SimGCL); the authors' settings then get a row of their own
    ego = {"lambda": 0.01, "include_ego_layer": True}
    assert by[("ml-100k", "SimGCL")].params == by[("ml-100k", "XSimGCL")].params == ego
    assert by[("amazon-books", "SimGCL")].params == ego and by[("amazon-books", "XSimGCL")].params == {}
    for ds, label in (("ml-100k", "SimGCL"), ("ml-100k", "XSimGCL"), ("amazon-books", "SimGCL"),
                      ("ml-100k", "RLMRec-Gen")):
        authors = by[(ds, f"{label}, authors' settings")]
        assert authors.model == by[(ds, label)].model and authors.params == {}
    assert ("amazon-books", "XSimGCL, authors' settings") not in by and ("ml-100k", "SGL, authors' settings") not in by
    # RLMRec-Gen: the authors' Amazon alignment settings, except their Yelp ones on ml-100k
    yelp = {"mask_ratio": 0.05, "recon_weight": 0.01, "re_temperature": 0.1}
    assert by[("amazon-books", "RLMRec-Gen")].params == {}
    assert ("amazon-books", "RLMRec-Gen, authors' settings") not in by
    # RLMRec-Con: the authors' Amazon settings, except their Steam ones on amazon-books (a row of its own)
    assert by[("ml-100k", "RLMRec-Con")].params == {}
    assert by[("amazon-books", "RLMRec-Con")].params == {"kd_weight": 1e-3, "kd_temperature": 0.1}
    assert by[("amazon-books", "RLMRec-Con, authors' settings")].params == {}
    assert by[("ml-100k", "RLMRec-Gen")].params == yelp
    # a row the models suite already has counts as done, and the report shows it in the paper table
    models_row = suites.Job("models", "LightGCN+DNS", "LightGCN", "ml-100k").result_path(tmp_path)
    models_row.parent.mkdir(parents=True)
    models_row.write_text("{}")
    assert runner.done(by[("ml-100k", "LightGCN+DNS")], tmp_path)
    assert not runner.done(by[("ml-100k", "SimGCL")], tmp_path)
    assert not runner.done(by[("amazon-books", "LightGCN+DNS")], tmp_path)
    # the clean denoiser rows are shared with the denoisers suite (same model, same settings)
    assert not runner.done(by[("ml-100k", "BOD_LightGCN")], tmp_path)
    clean = suites.Job("denoisers", "BOD_LightGCN noise=0", "BOD_LightGCN", "ml-100k").result_path(tmp_path)
    clean.parent.mkdir(parents=True)
    clean.write_text("{}")
    assert runner.done(by[("ml-100k", "BOD_LightGCN")], tmp_path)


def test_denoisers_suite_borrows_its_references_from_the_rater_and_models_suites(tmp_path):
    jobs = {j.label: j for j in suites.suite_jobs("denoisers", ["ml-100k"])}
    rater = {j.label: j for j in suites.suite_jobs("rater", ["ml-100k"])}
    # the shared jobs are the same model with the same settings
    assert jobs["LightGCN+DNS noise=0.2"].params == rater["LightGCN+DNS"].params
    assert jobs["LLMHNI_LightGCN noise=0.2"].params == rater["LLMHNI_LightGCN, stand-in rater"].params
    assert not runner.done(jobs["LLMHNI_LightGCN noise=0.2"], tmp_path)
    row = rater["LLMHNI_LightGCN, stand-in rater"].result_path(tmp_path)
    row.parent.mkdir(parents=True)
    row.write_text("{}")
    assert runner.done(jobs["LLMHNI_LightGCN noise=0.2"], tmp_path)
    assert not runner.done(jobs["LightGCN noise=0.2"], tmp_path)
    # and the report shows the rater suite's row under the denoisers suite's label
    recs = [_row("denoisers", "WBPR_LightGCN noise=0.2", "WBPR_LightGCN", 0.30),
            _row("rater", "LLMHNI_LightGCN, stand-in rater", "LLMHNI_LightGCN", 0.37)]
    table = report.rows_by_table(recs)[("denoisers", "toy")]
    assert [r["label"] for r in table] == ["LLMHNI_LightGCN noise=0.2", "WBPR_LightGCN noise=0.2"]
    # a row trained under another epoch cap is a different job: not borrowed
    capped = [_row("denoisers", "WBPR_LightGCN noise=0.2", "WBPR_LightGCN", 0.30, command="compare.py run --epochs 30"),
              recs[1]]
    assert [r["label"] for r in report.rows_by_table(capped)[("denoisers", "toy")]] == ["WBPR_LightGCN noise=0.2"]


def test_paper_table_names_the_encoder_of_the_text_models_and_prefers_its_own_rows():
    rows = [_row("models", "LightGCN", "LightGCN", 0.15, encoder="sentence-transformers"),
            _row("models", "LLMHNI_LightGCN", "LLMHNI_LightGCN", 0.17, encoder="st:all-MiniLM-L6-v2"),
            _row("paper", "RLMRec-Con", "RLMRec_Con", 0.16, encoder="st:all-MiniLM-L6-v2"),
            _row("paper", "SimGCL", "SimGCL", 0.155),
            _row("paper", "LightGCN", "LightGCN", 0.149)]
    table = report.readme_table("paper", report.rows_by_table(rows)[("paper", "toy")])
    assert table[0].endswith("| peak RSS | text encoder (S1) |")
    assert [line.split(" | ")[0] for line in table[2:]] == ["| LightGCN", "| SimGCL", "| RLMRec-Con", "| LLMHNI_LightGCN"]
    assert "| LightGCN | 0.0745 | 0.1490 |" in table[2] and table[2].endswith("| - |  |")  # its own row, no encoder
    assert table[4].endswith("| st:all-MiniLM-L6-v2 |") and table[5].endswith("| st:all-MiniLM-L6-v2 |")
    with_memory = [_row("paper", "SimGCL", "SimGCL", 0.155, peak_rss_mb=1536.4)]
    assert report.readme_table("paper", with_memory)[2].endswith("| 1536 MB |  |")


def test_paper_table_shows_the_llmhni_papers_own_figure_in_a_column_of_its_own(monkeypatch):
    monkeypatch.setattr(report, "PAPER_REPORTED", {("toy", "LLMHNI_LightGCN"): "R@20 0.2040"})
    rows = [_row("paper", "LightGCN", "LightGCN", 0.149),
            _row("paper", "LLMHNI_LightGCN", "LLMHNI_LightGCN", 0.17, encoder="st")]
    table = report.readme_table("paper", report.rows_by_table(rows)[("paper", "toy")])
    assert table[0].endswith("| text encoder (S1) | LLMHNI paper reports |")
    assert table[2].endswith("| - |  |  |") and table[3].endswith("| - | st | R@20 0.2040 |")
    assert "| 0.0850 | 0.1700 |" in table[3]  # the measured figures stay this harness's
    other = [_row("paper", "LightGCN", "LightGCN", 0.149, dataset="other")]
    assert not report.readme_table("paper", other)[0].endswith("| LLMHNI paper reports |")


def test_denoisers_suite_jobs():
    jobs = suites.suite_jobs("denoisers", ["toy"])
    labels = [j.label for j in jobs]
    noisy = [j for j in jobs if j.params.get("llmhni_noise_ratio") == 0.2]
    clean = [j for j in jobs if j.params.get("llmhni_noise_ratio") == 0.0]
    assert len(jobs) == len(noisy) + len(clean) == 22
    assert [j.model for j in noisy] == ["LightGCN", "LightGCN", "LLMHNI_LightGCN",
                                        "WBPR_LightGCN", "TCE_LightGCN", "RCE_LightGCN", "BOD_LightGCN", "DCF_LightGCN",
                                        "NGCF", "WBPR_NGCF", "TCE_NGCF", "RCE_NGCF", "BOD_NGCF", "DCF_NGCF"]
    assert [j.model for j in clean] == ["LightGCN", "LightGCN", "LLMHNI_LightGCN", "WBPR_LightGCN", "TCE_LightGCN",
                                        "RCE_LightGCN", "BOD_LightGCN", "DCF_LightGCN"]
    assert labels[1] == "LightGCN+DNS noise=0.2" and jobs[1].params == {**suites.DNS, "llmhni_noise_ratio": 0.2}
    assert "TCE_NGCF noise=0.2" in labels and "TCE_NGCF noise=0" not in labels
    from recbole_llmhni.registry import PLUGIN_MODELS
    assert all(j.model in PLUGIN_MODELS or j.model in ("LightGCN", "NGCF") for j in jobs)


def test_a_denoisers_identification_reaches_the_report_table(tmp_path):
    rec = _new_record(model="TCE_LightGCN", label="TCE_LightGCN noise=0.2", suite="denoisers", pipeline=None,
                      denoiser_identification={"method": "TCE_LightGCN", "kind": "dropped",
                                               "identification": {"precision": 0.25, "recall": 0.5}})
    row = records.view(rec)
    assert row["ident"] == {"precision": 0.25, "recall": 0.5}
    table = report.readme_table("denoisers", [row])
    assert table[0].endswith("| ident. precision | ident. recall |")
    assert table[-1].endswith("| 0.250 | 0.500 |")
    wbpr = records.view(_new_record(model="WBPR_LightGCN", label="WBPR_LightGCN noise=0.2", suite="denoisers",
                                    pipeline=None, denoiser_identification={
                                        "method": "WBPR_LightGCN", "kind": None,
                                        "identification": {"precision": 0.0, "recall": 0.0}}))
    assert wbpr["ident"] == {} and report.readme_table("denoisers", [wbpr])[-1].endswith("|  |  |")
    md = report.results_markdown([row], tmp_path)
    assert "![denoisers identification toy](denoisers_ident_toy.png)" in md
    assert (tmp_path / "denoisers_ident_toy.png").stat().st_size > 0


def _effective(defaults, job):
    """The plugin keys a job runs with: its params over the YAML defaults, ``neg_mode: ~`` resolved."""
    config = {**defaults, **job.params}
    if config.get("llmhni_neg_mode") is None:  # ~: the LLMHNI models' own (semantic), RecBole's for others
        config["llmhni_neg_mode"] = "semantic" if job.model.startswith("LLMHNI") else None
    return config


def test_every_borrowed_row_is_the_same_job_under_the_shipped_defaults():
    # a suite may show another suite's result only for the same model with the same effective
    # settings: the job's params over properties/overall.yaml must agree key by key
    from recbole_llmhni.config.defaults import plugin_defaults

    defaults = plugin_defaults()
    for suite, borrowed in suites.BORROWED.items():
        for dataset in ("ml-100k", "amazon-books"):
            jobs = {(j.suite, j.label): j for s in {suite, *(src for src, _ in borrowed)}
                    for j in suites.suite_jobs(s, [dataset])}
            for (source, label), shown in borrowed.items():
                if (suite, shown) not in jobs or (source, label) not in jobs:
                    continue
                a, b = jobs[(source, label)], jobs[(suite, shown)]
                assert a.model == b.model, (suite, shown)
                assert _effective(defaults, a) == _effective(defaults, b), (suite, shown, dataset)

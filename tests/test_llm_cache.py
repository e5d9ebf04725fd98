"""The SQLite cache: round trips, the ledger table, concurrent writers, and a SIGKILL mid-write."""
from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from recbole_llmhni.llm.cache import CACHE_FILENAME, LLMCache, UsageRecord, cache_key

REPO = Path(__file__).resolve().parents[1]


def usage(run_id: str = "r", cost: float = 0.001, prompt: int = 10, completion: int = 2) -> UsageRecord:
    return UsageRecord(run_id, "openai-chat", "gpt-4o", "chat", 1, prompt, completion, cost, True)


def test_cache_key_is_canonical():
    assert cache_key("a", {"x": 1, "y": [1, 2]}) == cache_key("a", {"y": [1, 2], "x": 1})
    assert cache_key("a", {"x": 1}) != cache_key("a", {"x": 2})
    assert len(cache_key("a")) == 64


def test_calls_round_trip_and_first_answer_wins(tmp_path):
    with LLMCache.in_dir(tmp_path / "c") as cache:
        assert (tmp_path / "c" / CACHE_FILENAME).is_file()
        assert cache.get_call("k1") is None
        cache.put_call("k1", "openai-chat", "gpt-4o", {"messages": [{"role": "user", "content": "q"}]}, '{"rating": "High"}', usage())
        cache.put_call("k1", "openai-chat", "gpt-4o", {"messages": []}, '{"rating": "Low"}', usage())
        hit = cache.get_call("k1")
        assert hit.response == '{"rating": "High"}' and hit.prompt_tokens == 10 and hit.completion_tokens == 2
        assert cache.count("calls") == 1
        assert cache.count("usage") == 2  # both answers were paid for, both are in the ledger
        assert cache.stored_requests()[0]["request"]["messages"][0]["content"] == "q"
    with LLMCache.in_dir(tmp_path / "c") as reopened:  # persisted
        assert reopened.get_calls(["k1", "nope"]).keys() == {"k1"}


def test_embeddings_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(f"k{i}", rng.standard_normal(7).astype(np.float32)) for i in range(1200)]  # > one SELECT chunk
    with LLMCache(tmp_path / "e.sqlite3") as cache:
        cache.put_embeddings(rows, "sentence-transformers", "m")
        found = cache.get_embeddings([k for k, _ in rows] + ["missing"])
    assert set(found) == {k for k, _ in rows}
    for key, vector in rows:
        assert found[key].dtype == np.float32
        np.testing.assert_array_equal(found[key], vector)


def test_usage_totals_per_run_and_overall(tmp_path):
    with LLMCache(tmp_path / "u.sqlite3") as cache:
        cache.put_call("a", "openai-chat", "gpt-4o", {}, "x", usage("run1", 0.5, 100, 10))
        cache.put_call("b", "openai-chat", "gpt-4o", {}, "y", usage("run2", 0.25, 40, 4))
        cache.put_embeddings([("e", np.ones(3, np.float32))], "openai", "ada", UsageRecord("run2", "openai", "ada", "embedding", 1, 5, 0, 0.125, False))
        assert cache.usage_totals("run1") == {"requests": 1, "prompt_tokens": 100, "completion_tokens": 10, "cost_usd": 0.5}
        total = cache.usage_totals()
    assert total["requests"] == 3 and total["prompt_tokens"] == 145 and total["cost_usd"] == pytest.approx(0.875)


def test_many_threads_share_one_cache(tmp_path):
    with LLMCache(tmp_path / "t.sqlite3") as cache:
        def write(t: int) -> None:
            for i in range(50):
                cache.put_call(f"t{t}-{i}", "b", "m", {"i": i}, f"answer {t} {i}", usage(f"t{t}"))
                assert cache.get_call(f"t{t}-{i}").response == f"answer {t} {i}"

        threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert cache.count("calls") == 400 and cache.count("usage") == 400


def _process_writer(path: str, worker: int, n: int) -> None:
    cache = LLMCache(path)
    for i in range(n):
        cache.put_call(f"p{worker}-{i}", "b", "m", {"i": i}, f"answer {worker} {i}", usage(f"p{worker}"))
        cache.put_embeddings([(f"e{worker}-{i}", np.full(4, i, np.float32))], "b", "m")
    cache.close()


def test_concurrent_writer_processes(tmp_path):
    path = str(tmp_path / "p.sqlite3")
    LLMCache(path).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_process_writer, args=(path, w, 60)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    with LLMCache(path) as cache:
        assert cache.count("calls") == 240 and cache.count("embeddings") == 240 and cache.count("usage") == 240
        assert cache.get_call("p3-59").response == "answer 3 59"
        np.testing.assert_array_equal(cache.get_embeddings(["e2-7"])["e2-7"], np.full(4, 7, np.float32))


_KILLED_WRITER = """
import sys
from recbole_llmhni.llm.cache import LLMCache, UsageRecord
cache = LLMCache(sys.argv[1])
i = 0
while True:
    cache.put_call(f"k{i}", "b", "m", {"i": i}, "x" * 2000 + str(i), UsageRecord("r", "b", "m", "chat", 1, 1, 1, 0.0, True))
    print(i, flush=True)   # printed only after the commit returned
    i += 1
"""


def test_sigkill_mid_write_keeps_every_committed_answer(tmp_path):
    path = tmp_path / "k.sqlite3"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    committed = -1
    try:
        for line in proc.stdout:
            committed = int(line)
            if committed >= 300:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with LLMCache(path) as cache:
        rows = cache.count("calls")
        assert rows >= committed + 1  # everything reported as committed survived the kill
        for i in range(committed + 1):
            assert cache.get_call(f"k{i}").response == "x" * 2000 + str(i)

"""The ``encode`` / ``label`` commands end to end: a labeling run killed with SIGKILL and
restarted repeats no completed call, the API key never reaches a file, the dry run sends
nothing, and bad input is reported with file, line and id."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import sigkill_when
from fake_openai_server import FakeOpenAIServer, RateLimit, ServerError, Unauthorized, label_for_prompt
from recbole_llmhni.__main__ import main
from recbole_llmhni.data.profiles import write_profiles
from recbole_llmhni.llm.cache import CACHE_FILENAME
from recbole_llmhni.llm.prompts import PromptSet

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-cli-SECRET-3e5a0b9f17c4d2"


def write_inputs(root: Path, n_pairs: int = 30):
    """Profiles of 6 users / 40 items and ``n_pairs`` candidate pairs with 3 liked items each."""
    users = {f"u{k}": f"User {k} reads {['fantasy', 'biographies', 'thrillers', 'poetry', 'science', 'cookbooks'][k]}." for k in range(6)}
    items = {f"i{k}": f"Item {k}: a book on subject {k % 9}, {k * 7 % 13} chapters." for k in range(40)}
    write_profiles(root / "users.jsonl", users)
    write_profiles(root / "items.jsonl", items)
    pairs = []
    for p in range(n_pairs):
        user = f"u{p % 6}"
        liked = [f"i{(p + 11 + j) % 40}" for j in range(3)]
        pairs.append({"user_id": user, "item_id": f"i{p}", "liked_item_ids": liked,
                      "user_relevance": (p % 10) / 10, "item_relevance": ((p * 3) % 10) / 10})
    (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return users, items, pairs


def expected_views(users, items, pair):
    prompts = PromptSet.load()
    user = prompts.user_messages(users[pair["user_id"]], items[pair["item_id"]])[-1]["content"]
    item = prompts.item_messages([items[j] for j in pair["liked_item_ids"]], items[pair["item_id"]])[-1]["content"]
    return label_for_prompt(user), label_for_prompt(item)


def label_argv(root: Path, server, *extra: str):
    return [
        "label", "--pairs", str(root / "pairs.jsonl"), "--user-profiles", str(root / "users.jsonl"),
        "--item-profiles", str(root / "items.jsonl"), "--output", str(root / "ratings.jsonl"),
        "--rater", "openai", "--base-url", server.base_url, "--cache-dir", str(root / "cache"),
        "--set", "llmhni_backoff_base=0.001", "--set", "llmhni_backoff_max=0.01", *extra,
    ]


def cli(argv, env_key=KEY, timeout=120, **popen):
    env = dict(os.environ, PYTHONPATH=str(REPO), OPENAI_API_KEY=env_key)
    return subprocess.Popen([sys.executable, "-m", "recbole_llmhni", *argv], env=env, cwd=str(REPO), **popen)


def cached_calls(cache_dir: Path) -> int:
    path = cache_dir / CACHE_FILENAME
    if not path.is_file():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        conn.close()


def read_ratings(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_killed_and_restarted_run_repeats_no_completed_call(tmp_path):
    users, items, pairs = write_inputs(tmp_path, n_pairs=30)  # 60 distinct views
    answered_before_kill = 12
    with FakeOpenAIServer(latency=0.02) as server:
        server.hold_after(answered_before_kill)  # then park every request: the client hangs mid-run
        argv = label_argv(tmp_path, server, "--max-concurrency", "4", "--set", "llmhni_request_timeout=60", "-q")
        proc = cli(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sigkill_when(proc, lambda: server.held >= 1 and cached_calls(tmp_path / "cache") == answered_before_kill,
                     "reached the hold point")
        assert not (tmp_path / "ratings.jsonl").exists()

        before = server.ok_counts()
        assert sum(before.values()) == answered_before_kill
        calls_before = server.count()
        server.release()  # the parked requests are dropped; nobody is listening anyway

        restarted = cli(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = restarted.communicate(timeout=120)
        assert restarted.returncode == 0, err

        after = server.ok_counts()
        assert len(after) == 60  # every view answered ...
        assert set(after.values()) == {1}  # ... exactly once over both runs
        new_calls = server.calls[calls_before:]
        assert len(new_calls) == 60 - answered_before_kill  # the restart asked only what was missing
        assert not any(c.fingerprint in before for c in new_calls)

    ratings = read_ratings(tmp_path / "ratings.jsonl")
    assert [(r["user_id"], r["item_id"]) for r in ratings] == [(p["user_id"], p["item_id"]) for p in pairs]
    for rating, pair in zip(ratings, pairs):
        assert (rating["user_view"], rating["item_view"]) == expected_views(users, items, pair)
        assert rating["hard"] == (rating["user_view"] == rating["item_view"] == "High")
    summary = json.loads((tmp_path / "ratings.jsonl.summary.json").read_text())
    assert summary["rater"] == "openai/gpt-4o" and summary["stand_in"] is False
    assert summary["views"] == {"views": 60, "from_cache": 12, "asked": 48, "unparsed": 0}
    assert summary["ledger"]["requests"] == 48
    assert "rated 30 pairs with openai/gpt-4o" in out


def _files_under(root: Path):
    return [p for p in root.rglob("*") if p.is_file()]


def test_api_key_never_appears_in_any_file_or_output(tmp_path, monkeypatch, capsys):
    write_inputs(tmp_path, n_pairs=6)
    log_file = tmp_path / "logs" / "run.log"
    with FakeOpenAIServer() as server:
        # careless servers echo the Authorization header in error messages
        server.inject(ServerError(500, echo_auth=True), times=2)
        server.inject(RateLimit(retry_after=0.01), times=1)
        run = cli(label_argv(tmp_path, server, "--log-file", str(log_file)), stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, text=True)
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        assert "retrying" in log_file.read_text()  # the faults were seen and logged ...

        # ... and a refusal whose message carries the key ends the run with a clean error
        # (in-process from here on, the key from the environment)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        (tmp_path / "pairs.jsonl").write_text(json.dumps({"user_id": "u1", "item_id": "i39"}) + "\n")
        server.inject(Unauthorized(echo_auth=True), times=None)
        assert main(label_argv(tmp_path, server, "--log-file", str(log_file), "--output", str(tmp_path / "r2.jsonl"))) == 4
        refused = capsys.readouterr()
        assert "HTTP 401" in refused.err and "[REDACTED]" in refused.err and "Traceback" not in refused.err

        # the encode command, with echoed keys in a transient error
        server.clear_faults()
        server.inject(ServerError(502, echo_auth=True), times=1)
        assert main(["encode", "--profiles", str(tmp_path / "items.jsonl"), "--output", str(tmp_path / "emb.npz"),
                     "--encoder", "openai", "--base-url", server.base_url, "--cache-dir", str(tmp_path / "cache"),
                     "--set", "llmhni_backoff_base=0.001", "--log-file", str(log_file), "-q"]) == 0
        assert all(c.authorization == f"Bearer {KEY}" for c in server.calls)  # the key was really used

    captured = capsys.readouterr()
    written = _files_under(tmp_path)
    names = {p.name for p in written}
    assert {"ratings.jsonl", "ratings.jsonl.summary.json", "run.log", "emb.npz", CACHE_FILENAME} <= names
    for path in written:
        assert KEY.encode() not in path.read_bytes(), f"the API key leaked into {path}"
    for text in (out, err, refused.out, refused.err, captured.out, captured.err):
        assert KEY not in text


def test_dry_run_prints_the_plan_and_sends_nothing(tmp_path):
    write_inputs(tmp_path, n_pairs=8)
    with FakeOpenAIServer() as server:
        run = cli(label_argv(tmp_path, server, "--dry-run", "--set", "llmhni_price_per_1k_prompt=0.005"),
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env_key="")
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        assert server.count() == 0
    assert "dry run: label with openai-chat / gpt-4o" in out
    assert "API calls:            16" in out and "est. cost:" in out and "nothing was sent" in out
    assert not (tmp_path / "ratings.jsonl").exists()


def test_semantic_stand_in_via_cli_is_reported_as_such(tmp_path, capsys):
    _, _, pairs = write_inputs(tmp_path, n_pairs=10)
    out_file = tmp_path / "ratings.jsonl"
    assert main(["label", "--pairs", str(tmp_path / "pairs.jsonl"), "--output", str(out_file),
                 "--rater", "semantic", "--set", "llmhni_semantic_high=0.7", "--set", "llmhni_semantic_low=0.3"]) == 0
    printed = capsys.readouterr()
    assert "offline STAND-IN for an LLM" in printed.out and "STAND-IN" in printed.err
    summary = json.loads((tmp_path / "ratings.jsonl.summary.json").read_text())
    assert summary["stand_in"] is True and "stand-in" in summary["rater"]
    ratings = read_ratings(out_file)
    for rating, pair in zip(ratings, pairs):
        assert rating["hard"] == (pair["user_relevance"] >= 0.7 and pair["item_relevance"] >= 0.7)


def test_budget_cap_via_cli_exits_cleanly(tmp_path, monkeypatch, capsys):
    write_inputs(tmp_path, n_pairs=5)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAIServer() as server:
        rc = main(label_argv(tmp_path, server, "--budget", "0.000001", "-q"))
        assert server.count() == 0
    assert rc == 3
    err = capsys.readouterr().err
    assert err.startswith("error: budget of $0.0000") and "run again to continue" in err


@pytest.mark.parametrize(
    "pairs_text, words",
    [
        ('{"user_id": "u1", "item_id": "i1"}\nnot json\n', ["pairs.jsonl, line 2", "not valid JSON"]),
        ('{"user_id": "u1"}\n', ["pairs.jsonl, line 1", "'item_id'"]),
        ('{"user_id": "u1", "item_id": "i1", "user_relevance": "high"}\n', ["line 1", "user_relevance", "finite number"]),
        ('{"user_id": "nobody", "item_id": "i1"}\n', ["pairs.jsonl, line 1", "user id 'nobody'", "users.jsonl", "add its profile"]),
        ('{"user_id": "u1", "item_id": "i1", "liked_item_ids": ["i1", "zz"]}\n', ["line 1", "liked item id 'zz'"]),
    ],
)
def test_bad_pairs_are_reported_with_file_line_and_id(tmp_path, capsys, pairs_text, words):
    write_inputs(tmp_path, n_pairs=1)
    (tmp_path / "pairs.jsonl").write_text(pairs_text)
    with FakeOpenAIServer() as server:
        assert main(label_argv(tmp_path, server, "--dry-run")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    for word in words:
        assert word in err


def test_bad_settings_and_files_are_reported(tmp_path, capsys):
    write_inputs(tmp_path, n_pairs=1)
    with FakeOpenAIServer() as server:
        assert main(label_argv(tmp_path, server, "--set", "llmhni_nonsense=1")) == 2
        assert "'llmhni_nonsense' is not a key of this command" in capsys.readouterr().err
        assert main(label_argv(tmp_path, server, "--config", str(tmp_path / "missing.yaml"))) == 2
        assert "missing.yaml: config file not found" in capsys.readouterr().err
    assert main(["encode", "--profiles", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "x.npz")]) == 2
    assert "nope.jsonl: profile file not found" in capsys.readouterr().err
    assert main(["label", "--pairs", str(tmp_path / "pairs.jsonl"), "--output", str(tmp_path / "o.jsonl"),
                 "--rater", "openai"]) == 2
    assert "--user-profiles and --item-profiles" in capsys.readouterr().err


def test_yaml_config_keys_are_used(tmp_path, capsys):
    write_inputs(tmp_path, n_pairs=2)
    (tmp_path / "run.yaml").write_text("epochs: 10\nllmhni_rater: openai\nllmhni_rater_model: my-local-llm\n")
    with FakeOpenAIServer() as server:
        argv = label_argv(tmp_path, server, "--config", str(tmp_path / "run.yaml"), "--dry-run")
        at = argv.index("--rater")
        del argv[at : at + 2]  # the rater comes from the YAML file
        assert main(argv) == 0
    assert "openai-chat / my-local-llm" in capsys.readouterr().out

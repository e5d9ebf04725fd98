"""Batch mode (``llmhni_llm_mode: batch``) with the real ``openai`` client against the loopback
server's ``/v1/files`` and ``/v1/batches``: failed, expired, error-line and malformed-line
batches end with every view rated or recorded unparsed, nothing answered is asked again,
batch prices in the ledger, a SIGKILLed run resumes polling without a new submission, and
the ``--export-batch`` / ``--import-batch`` files for ``vllm run-batch``."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import sigkill_when
from fake_openai_server import (
    BatchExpired,
    BatchFailed,
    ErrorLines,
    FakeOpenAIServer,
    MalformedLines,
    chat_payload,
    default_responder,
    embedding_for,
    label_for_prompt,
    prompt_text,
)
from recbole_llmhni.__main__ import main
from recbole_llmhni.llm import LLMCache, LLMSettings, OpenAIRater, RatingRequest
from recbole_llmhni.llm.batch import parse_result_lines
from recbole_llmhni.llm.cache import CACHE_FILENAME
from recbole_llmhni.llm.encoders import OpenAIEmbeddingEncoder
from recbole_llmhni.llm.errors import BudgetExceededError, LLMUnavailableError
from recbole_llmhni.llm.prompts import PromptSet

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-batch-test-8c1f2e"
GARBAGE_ITEM = "item 3 "  # every answer to a question about this item is not JSON


def garbage_responder(body):
    first_user = next((m for m in body.get("messages") or [] if m.get("role") == "user"), {"content": ""})
    if GARBAGE_ITEM in str(first_user.get("content")):
        return "I would say it is quite relevant"
    return default_responder(body)


def settings(server, **extra):
    return LLMSettings.from_config({
        "llmhni_api_base_url": server.base_url, "llmhni_api_key": KEY, "llmhni_rater": "openai",
        "llmhni_llm_mode": "batch", "llmhni_batch_poll_interval": 0.005, "llmhni_batch_poll_max": 0.01,
        "llmhni_backoff_base": 0.001, "llmhni_backoff_max": 0.01, "show_progress": False, **extra,
    })


def requests(n=8):
    return [RatingRequest(f"u{k % 3}", f"i{k}", f"user {k % 3} likes genre {k % 3}", f"item {k} about topic {k % 4}",
                          [f"item {k + 10} about topic {k % 2}"]) for k in range(n)]


def question_labels(req):
    """The labels the server gives the two views of ``req`` (None: its answers never parse)."""
    prompts = PromptSet.load()
    user = prompts.user_messages(req.user_profile, req.item_profile)[-1]["content"]
    item = prompts.item_messages(req.liked_item_profiles, req.item_profile)[-1]["content"]
    return tuple(None if GARBAGE_ITEM in text else label_for_prompt(text) for text in (user, item))


def test_faulty_batches_end_with_every_view_rated_or_unparsed(tmp_path):
    reqs = requests(8)  # 16 distinct views; the 2 about item 3 never parse
    with FakeOpenAIServer(responder=garbage_responder) as server:
        for fault in (BatchFailed(), BatchExpired(completed=5), ErrorLines(3), MalformedLines(2)):
            server.inject_batch(fault)
        cache = LLMCache(tmp_path / "cache.sqlite3")
        rater = OpenAIRater(settings(server), cache)
        ratings = rater.rate(reqs)

        for req, rating in zip(reqs, ratings):
            want = tuple("unparsed" if label is None else label for label in question_labels(req))
            assert (rating.user_id, rating.item_id) == (req.user_id, req.item_id)
            assert (rating.user_view, rating.item_view) == want
        assert rater.last_counts == {"views": 16, "from_cache": 0, "asked": 16, "unparsed": 2}
        # no line that was answered was ever submitted again
        assert set(server.batch_answers.values()) == {1}
        # 16 questions + 2 x 2 repair turns of the two garbage views
        assert len(server.batch_answers) == cache.count("calls") == 20
        assert all(b.state == "joined" for b in cache.batches())
        statuses = [b.status for b in cache.batches()]
        assert statuses[:2] == ["failed", "expired"] and set(statuses[2:]) == {"completed"}

        # batch prices: half of the online prices, on the tokens the server reported
        rows = sqlite3.connect(tmp_path / "cache.sqlite3").execute(
            "SELECT SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd), COUNT(*) FROM usage").fetchone()
        assert rows[3] == 20
        assert rows[2] == pytest.approx(0.5 * (rows[0] * 0.0025 + rows[1] * 0.01) / 1000)
        assert rater.ledger.cost_usd == pytest.approx(rows[2])
        rater.close()

        # a second run is answered by the cache alone
        submitted = server.batch_submissions
        again = OpenAIRater(settings(server), LLMCache(tmp_path / "cache.sqlite3"), owns_cache=True)
        assert again.rate(reqs) == ratings and server.batch_submissions == submitted
        again.close()


def test_requests_that_keep_failing_stop_after_max_rounds_and_keep_answers(tmp_path):
    reqs = requests(3)  # 6 views
    with FakeOpenAIServer() as server:
        for _ in range(2):
            server.inject_batch(ErrorLines(1))  # the first line fails in both rounds
        cache = LLMCache(tmp_path / "cache.sqlite3")
        rater = OpenAIRater(settings(server, llmhni_batch_max_rounds=2), cache)
        with pytest.raises(LLMUnavailableError, match="1 of 6 requests still unanswered after 2 batch submissions"):
            rater.rate(reqs)
        assert cache.count("calls") == 5 and server.batch_submissions == 2
        # the next run submits only the one missing call
        assert len(rater.rate(reqs)) == 3
        assert server.batch_submissions == 3 and server.batch("batch_3")["request_counts"]["total"] == 1
        rater.close()
        cache.close()


def test_a_stored_batch_the_server_does_not_know_is_submitted_anew(tmp_path):
    reqs = requests(2)
    with FakeOpenAIServer() as server:
        cache = LLMCache(tmp_path / "c.db")
        rater = OpenAIRater(settings(server), cache, owns_cache=True)
        pending = rater.pending_batch(reqs)
        cache.add_batch("batch_from_elsewhere", "chat", "/v1/chat/completions", pending, "in_progress")
        assert len(rater.rate(reqs)) == 2
        assert server.count(path="/batches/batch_from_elsewhere") == 1 and server.batch_submissions == 1
        assert {b.id: (b.state, b.status) for b in cache.batches()} == {
            "batch_from_elsewhere": ("joined", "not_found"), "batch_1": ("joined", "completed")}
        rater.close()


def test_budget_is_booked_for_the_whole_batch_before_it_is_submitted(tmp_path):
    reqs = requests(4)  # 8 views
    with FakeOpenAIServer() as server:
        # 8 views of >= 100 prompt bytes and 16 completion tokens each, at half price, pass $1e-4
        rater = OpenAIRater(settings(server, llmhni_budget_usd=1e-4), LLMCache(tmp_path / "c.db"), owns_cache=True)
        with pytest.raises(BudgetExceededError, match="budget of"):
            rater.rate(reqs)
        assert server.count() == 0 and rater.ledger.reserved_usd == 0.0  # no upload, no batch
        rater.close()


def test_openai_encoder_in_batch_mode(tmp_path):
    texts = {f"id{k}": f"profile text number {k}" for k in range(6)}
    with FakeOpenAIServer(embedding_dim=8) as server:
        server.inject_batch(BatchExpired(completed=2))
        cache = LLMCache(tmp_path / "cache.sqlite3")
        encoder = OpenAIEmbeddingEncoder(settings(server, llmhni_encoder="openai",
                                                  llmhni_price_per_1k_embedding=0.1), cache)
        vectors = encoder.encode(texts)
        expected = np.asarray([embedding_for(t, 8) for t in texts.values()], dtype=np.float32)
        np.testing.assert_allclose(vectors, expected, rtol=1e-6)
        assert server.batch_submissions == 2 and set(server.batch_answers.values()) == {1}
        assert server.count(path="/embeddings") == 0  # nothing went through the online endpoint
        tokens = sum(max(1, len(t) // 4) for t in texts.values())  # the fake server's token count
        assert encoder.ledger.cost_usd == pytest.approx(0.5 * tokens * 0.1 / 1000)
        encoder.close()
        cache.close()


# ----------------------------------------------------------------------------- CLI
def write_inputs(root: Path, n_pairs: int = 6):
    users = {f"u{k}": f"User {k} reads {['fantasy', 'poetry', 'science'][k]}." for k in range(3)}
    items = {f"i{k}": f"Book {k} on subject {k % 5}." for k in range(12)}
    for name, table in (("users", users), ("items", items)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps({"id": k, "profile": v}) + "\n" for k, v in table.items()))
    pairs = [{"user_id": f"u{p % 3}", "item_id": f"i{p}", "liked_item_ids": [f"i{p + 6}"]} for p in range(n_pairs)]
    (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return users, items, pairs


def label_argv(root: Path, *extra: str):
    return ["label", "--pairs", str(root / "pairs.jsonl"), "--user-profiles", str(root / "users.jsonl"),
            "--item-profiles", str(root / "items.jsonl"), "--output", str(root / "ratings.jsonl"),
            "--rater", "openai", "--cache-dir", str(root / "cache"), "-q", *extra]


def open_batches(cache_dir: Path):
    path = cache_dir / CACHE_FILENAME
    if not path.is_file():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT id FROM batches WHERE state = 'open'").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def test_run_killed_while_polling_resumes_without_a_new_submission(tmp_path):
    users, items, pairs = write_inputs(tmp_path)  # 12 views
    env = dict(os.environ, PYTHONPATH=str(REPO), OPENAI_API_KEY=KEY)
    with FakeOpenAIServer() as server:
        server.hold_batches()
        argv = label_argv(tmp_path, "--base-url", server.base_url, "--set", "llmhni_llm_mode=batch",
                          "--set", "llmhni_batch_poll_interval=0.02", "--set", "llmhni_batch_poll_max=0.05")
        proc = subprocess.Popen([sys.executable, "-m", "recbole_llmhni", *argv], env=env, cwd=str(REPO),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # polling a batch that stays in progress
        sigkill_when(proc, lambda: server.count(path="/batches/batch_1") >= 3, "polled")
        assert server.batch_submissions == 1 and open_batches(tmp_path / "cache") == [("batch_1",)]

        server.release_batches()
        restarted = subprocess.run([sys.executable, "-m", "recbole_llmhni", *argv], env=env, cwd=str(REPO),
                                   capture_output=True, text=True, timeout=120)
        assert restarted.returncode == 0, restarted.stderr
        assert server.batch_submissions == 1  # zero new submissions: the restart polled batch_1
        assert server.count(path="/chat/completions") == 0
        assert set(server.batch_answers.values()) == {1} and len(server.batch_answers) == 12

    prompts = PromptSet.load()
    ratings = [json.loads(line) for line in (tmp_path / "ratings.jsonl").read_text().splitlines()]
    for rating, pair in zip(ratings, pairs, strict=True):
        user = prompts.user_messages(users[pair["user_id"]], items[pair["item_id"]])[-1]["content"]
        item = prompts.item_messages([items[j] for j in pair["liked_item_ids"]], items[pair["item_id"]])[-1]["content"]
        assert (rating["user_view"], rating["item_view"]) == (label_for_prompt(user), label_for_prompt(item))
    summary = json.loads((tmp_path / "ratings.jsonl.summary.json").read_text())
    assert summary["ledger"]["batch_resumed"] == 1 and "batch_submitted" not in summary["ledger"]


def run_batch_locally(requests_path: Path, results_path: Path, broken=(), failed=()):
    """What ``vllm run-batch`` does with a request file, answered by the fake server's responder;
    lines in ``broken`` are cut off mid-JSON, lines in ``failed`` come back with HTTP 500."""
    out = []
    for n, text in enumerate(requests_path.read_text().splitlines()):
        line = json.loads(text)
        assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
        if n in failed:
            out.append(json.dumps({"id": f"r{n}", "custom_id": line["custom_id"], "error": None,
                                   "response": {"status_code": 500, "body": {"error": {"message": "oom"}}}}))
            continue
        body = line["body"]
        payload = chat_payload(n, body, prompt_text(body), garbage_responder(body), True)
        record = json.dumps({"id": f"r{n}", "custom_id": line["custom_id"],
                             "response": {"status_code": 200, "body": payload}, "error": None})
        out.append(record[:30] if n in broken else record)
    results_path.write_text("\n".join(out) + "\n")


def test_export_and_import_batch_files_for_vllm_run_batch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    users, items, pairs = write_inputs(tmp_path, n_pairs=6)  # 12 views
    # both views of pair 2 show this item: their answers never parse, so they need repair turns
    items["i2"] = "Book 2, item 3 of the series."
    (tmp_path / "items.jsonl").write_text("".join(json.dumps({"id": k, "profile": v}) + "\n" for k, v in items.items()))
    req1, res1 = tmp_path / "requests1.jsonl", tmp_path / "results1.jsonl"
    assert main(label_argv(tmp_path, "--export-batch", str(req1))) == 0
    lines = [json.loads(x) for x in req1.read_text().splitlines()]
    assert len(lines) == 12 and len({x["custom_id"] for x in lines}) == 12
    assert all(x["body"]["model"] == "gpt-4o" and x["body"]["max_tokens"] == 16 for x in lines)
    assert not (tmp_path / "ratings.jsonl").exists()

    run_batch_locally(req1, res1, broken={0}, failed={1})
    parsed = parse_result_lines(res1.read_text())
    assert (len(parsed.ok), len(parsed.failed), parsed.malformed) == (10, 1, 1)
    # import alone cannot finish: 2 lost lines + the repair turn of the garbage view(s)
    assert main(label_argv(tmp_path, "--import-batch", str(res1))) == 5
    assert not (tmp_path / "ratings.jsonl").exists()

    rounds = 1
    request_file = req1
    while True:
        request_file = tmp_path / f"requests{rounds + 1}.jsonl"
        assert main(label_argv(tmp_path, "--export-batch", str(request_file))) == 0
        if not request_file.exists():
            break
        results = tmp_path / f"results{rounds + 1}.jsonl"
        run_batch_locally(request_file, results)
        assert main(label_argv(tmp_path, "--import-batch", str(results))) in (0, 5)
        rounds += 1
        assert rounds < 6
    # round 2: the 2 lost lines + repair turn 1 of the garbage views; round 3: repair turn 2
    assert rounds == 3
    ratings = [json.loads(x) for x in (tmp_path / "ratings.jsonl").read_text().splitlines()]
    assert len(ratings) == 6
    views = [v for r in ratings for v in (r["user_view"], r["item_view"])]
    assert set(views) <= {"High", "Medium", "Low", "unparsed"}
    assert (ratings[2]["user_view"], ratings[2]["item_view"]) == ("unparsed", "unparsed")
    assert views.count("unparsed") == 2

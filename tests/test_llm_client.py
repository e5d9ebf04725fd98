"""Retries, backoff, Retry-After, fatal errors, redaction and bounded concurrency, with the real
``openai`` client against the loopback server."""
from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from fake_openai_server import (
    BadBody,
    BadRequest,
    Drop,
    FakeOpenAIServer,
    Hang,
    RateLimit,
    ServerError,
    Unauthorized,
    embedding_for,
)
from recbole_llmhni.llm.client import OpenAIBackend, RetryPolicy, StopRequested, retry_after_seconds, run_bounded
from recbole_llmhni.llm.errors import BudgetExceededError, LLMRequestError, LLMUnavailableError
from recbole_llmhni.llm.ledger import Ledger
from recbole_llmhni.llm.settings import LLMSettings

KEY = "sk-client-test-5f2b9c7e1d"
MESSAGES = [{"role": "user", "content": "rate this"}]
PARAMS = {"temperature": 0.0, "max_tokens": 16}


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def make_backend(server, budget=None, **overrides):
    config = {
        "llmhni_api_base_url": server.base_url,
        "llmhni_api_key": KEY,
        "llmhni_request_timeout": 0.5,
        "llmhni_backoff_base": 0.001,
        "llmhni_backoff_max": 0.01,
        "llmhni_max_retries": 4,
        "llmhni_budget_usd": budget,
        "show_progress": False,
        **overrides,
    }
    settings = LLMSettings.from_config(config)
    backend = OpenAIBackend(settings, Ledger(settings.budget_usd), rng=random.Random(0))
    waits = []
    backend.on_retry = lambda reason, seconds: waits.append((reason, seconds))
    return backend, waits


# ----------------------------------------------------------------------------- policy
def test_backoff_grows_exponentially_with_jitter_and_caps():
    policy = RetryPolicy(max_retries=10, backoff_base=1.0, backoff_max=8.0)
    rng = random.Random(1)
    for retry in range(8):
        ceiling = min(8.0, 2.0 ** retry)
        delays = [policy.delay(retry, None, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not constant
    # Retry-After wins, never shortened, at most +10 %
    assert all(3.0 <= policy.delay(0, 3.0, rng) <= 3.3 for _ in range(100))


def test_retry_after_header_forms():
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds({"Retry-After": future}) <= 31
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"retry-after": "soon"}) is None


# ----------------------------------------------------------------------------- faults
@pytest.mark.parametrize(
    "fault, reason",
    [
        (RateLimit(retry_after=None), "rate_limit"),
        (ServerError(500), "http_500"),
        (ServerError(503), "http_503"),
        (Hang(seconds=3.0), "timeout"),
        (Drop(), "connection"),
        (BadBody(), "bad_response"),
    ],
)
def test_each_transient_fault_is_retried_until_answered(server, fault, reason):
    backend, waits = make_backend(server)
    server.inject(fault, times=2)
    answer = backend.chat("gpt-4o", MESSAGES, PARAMS)
    assert answer.content.startswith('{"rating": ')
    assert [w[0] for w in waits] == [reason, reason]
    assert server.count("ok") == 1 and server.count() == 3
    assert backend.ledger.counters[f"retry_{reason}"] == 2
    assert backend.ledger.requests == 1 and backend.ledger.prompt_tokens > 0  # paid once, from usage


def test_retry_after_is_honoured(server):
    backend, waits = make_backend(server)
    server.inject(RateLimit(retry_after=0.3))
    server.inject(RateLimit(retry_after=0.2, in_ms=True))
    backend.chat("gpt-4o", MESSAGES, PARAMS)
    assert [w[0] for w in waits] == ["rate_limit", "rate_limit"]
    assert 0.3 <= waits[0][1] <= 0.33 and 0.2 <= waits[1][1] <= 0.22  # not the 0.01 s backoff cap
    calls = server.calls
    assert calls[1].started - calls[0].finished >= 0.3  # the client really waited that long


def test_gives_up_after_max_retries_with_a_clear_error(server):
    backend, _ = make_backend(server, llmhni_max_retries=2)
    server.inject(ServerError(502), times=None)
    with pytest.raises(LLMUnavailableError, match="after 2 retries; last error: http_502"):
        backend.chat("gpt-4o", MESSAGES, PARAMS)
    assert server.count() == 3
    assert backend.ledger.reserved_usd == 0.0 and backend.ledger.requests == 0  # booking released


def test_refusals_are_not_retried_and_never_show_the_key(server):
    backend, waits = make_backend(server)
    server.inject(Unauthorized(echo_auth=True))
    with pytest.raises(LLMRequestError) as info:
        backend.chat("gpt-4o", MESSAGES, PARAMS)
    message = str(info.value)
    assert "HTTP 401" in message and "llmhni_api_key" in message
    assert "[REDACTED]" in message and KEY not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert server.calls[0].authorization == f"Bearer {KEY}"  # the key was used, just not shown
    assert waits == [] and server.count() == 1


def test_echoed_key_in_a_transient_error_is_redacted(server):
    backend, _ = make_backend(server, llmhni_max_retries=0)
    server.inject(ServerError(500, echo_auth=True))
    with pytest.raises(LLMUnavailableError) as info:
        backend.chat("gpt-4o", MESSAGES, PARAMS)
    assert KEY not in str(info.value) and "[REDACTED]" in str(info.value)


def test_bad_request_hints_at_structured_output(server):
    backend, waits = make_backend(server)
    server.inject(BadRequest("response_format json_schema is not supported"))
    with pytest.raises(LLMRequestError, match="HTTP 400.*not supported.*llmhni_response_format"):
        backend.chat("gpt-4o", MESSAGES, {**PARAMS, "response_format": {"type": "json_object"}})
    assert waits == [] and server.count() == 1
    assert backend.ledger.reserved_usd == 0.0


def test_wrong_key_is_refused_by_a_server_that_checks_it():
    with FakeOpenAIServer(api_key="sk-the-right-one-1234") as srv:
        backend, _ = make_backend(srv)  # sends KEY
        with pytest.raises(LLMRequestError, match="HTTP 401"):
            backend.chat("gpt-4o", MESSAGES, PARAMS)
        right, _ = make_backend(srv, llmhni_api_key="sk-the-right-one-1234")
        assert right.chat("gpt-4o", MESSAGES, PARAMS).content.startswith("{")


def test_missing_usage_is_estimated_and_flagged():
    with FakeOpenAIServer(include_usage=False) as srv:
        backend, _ = make_backend(srv)
        answer = backend.chat("gpt-4o", MESSAGES, PARAMS)
    assert not answer.usage_reported and answer.prompt_tokens > 0 and answer.completion_tokens > 0
    assert backend.ledger.usage_estimated == 1


def test_embeddings_in_input_order(server):
    backend, _ = make_backend(server)
    answer = backend.embed("text-embedding-3-small", ["a", "b", "c"], dimensions=5)
    assert answer.vectors.shape == (3, 5) and answer.vectors.dtype == np.float32
    np.testing.assert_allclose(answer.vectors[1], embedding_for("b", 5), rtol=1e-6)
    assert server.calls[0].body["encoding_format"] == "float" and server.calls[0].body["dimensions"] == 5


# ----------------------------------------------------------------------------- budget
def test_budget_books_the_worst_case_before_sending(server):
    backend, _ = make_backend(server, budget=0.0001)
    with pytest.raises(BudgetExceededError, match="raise llmhni_budget_usd"):
        backend.chat("gpt-4o", [{"role": "user", "content": "x" * 200}], PARAMS)
    assert server.count() == 0  # nothing was sent


# ----------------------------------------------------------------------------- concurrency
@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_is_bounded(limit):
    with FakeOpenAIServer(latency=0.05) as srv:
        backend, _ = make_backend(srv, llmhni_max_concurrency=limit)
        tasks = [[{"role": "user", "content": f"q{i}"}] for i in range(9)]
        answers = run_bounded(tasks, lambda m, stop: backend.chat("gpt-4o", m, PARAMS, stop), limit, "t", False)
        assert len(answers) == 9 and all(a is not None for a in answers)
        assert srv.max_in_flight <= limit
        if limit == 1:
            assert srv.max_in_flight == 1


def test_first_fatal_error_stops_new_work():
    started = []
    lock = threading.Lock()

    def work(task, stop):
        if stop.is_set():
            raise StopRequested()
        with lock:
            started.append(task)
        if task == 0:
            raise LLMRequestError("refused")
        time.sleep(0.01)
        return task

    with pytest.raises(LLMRequestError, match="refused"):
        run_bounded(list(range(200)), work, 2, "t", False)
    assert len(started) < 200  # the rest never started

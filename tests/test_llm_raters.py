"""Raters: the openai rater against the loopback server (every fault, repair turns, cache,
budget, dry run) and the semantic stand-in."""
from __future__ import annotations

import json
import math

import pytest

from fake_openai_server import (
    Drop,
    FakeOpenAIServer,
    Hang,
    InvalidLabel,
    MalformedAnswer,
    RateLimit,
    ServerError,
    label_for_prompt,
)
from recbole_llmhni.llm import BudgetExceededError, RatingRequest, make_rater
from recbole_llmhni.llm.cache import LLMCache
from recbole_llmhni.llm.ledger import upper_bound_chat_tokens
from recbole_llmhni.llm.prompts import PromptSet
from recbole_llmhni.llm.raters import OpenAIRater, SemanticRater

KEY = "sk-rater-test-77aa1e0c93"


def config(server, tmp_path, **overrides):
    return {
        "llmhni_rater": "openai",
        "llmhni_api_base_url": server.base_url,
        "llmhni_api_key": KEY,
        "llmhni_cache_dir": str(tmp_path / "cache"),
        "llmhni_request_timeout": 0.5,
        "llmhni_backoff_base": 0.001,
        "llmhni_backoff_max": 0.01,
        "llmhni_max_concurrency": 4,
        "show_progress": False,
        **overrides,
    }


def requests(n=12):
    return [
        RatingRequest(
            user_id=f"u{k % 5}",
            item_id=f"i{k}",
            user_profile=f"Reader {k % 5} who enjoys {['history', 'poetry', 'crime', 'cooking', 'travel'][k % 5]}.",
            item_profile=f"Book {k}: a volume about topic {k % 7}.",
            liked_item_profiles=[f"Liked book {k}-{j}." for j in range(3)],
        )
        for k in range(n)
    ]


def expected(request):
    """What the default responder answers for each view of ``request``."""
    prompts = PromptSet.load()
    user = prompts.user_messages(request.user_profile, request.item_profile)[-1]["content"]
    item = prompts.item_messages(request.liked_item_profiles, request.item_profile)[-1]["content"]
    return label_for_prompt(user), label_for_prompt(item)


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def test_rates_every_pair_from_both_views(server, tmp_path):
    rater = make_rater(config(server, tmp_path))
    assert isinstance(rater, OpenAIRater) and rater.name == "openai/gpt-4o" and not rater.is_stand_in
    reqs = requests()
    ratings = rater.rate(reqs)
    assert [(r.user_id, r.item_id) for r in ratings] == [(q.user_id, q.item_id) for q in reqs]
    for rating, request in zip(ratings, reqs):
        assert (rating.user_view, rating.item_view) == expected(request)
        assert rating.is_hard == (rating.user_view == rating.item_view == "High")
    assert server.count() == 24 and server.count("ok") == 24
    body = server.calls[0].body
    assert body["model"] == "gpt-4o" and body["temperature"] == 0.0 and body["max_tokens"] == 16
    assert body["response_format"]["type"] == "json_schema"
    assert rater.last_counts == {"views": 24, "from_cache": 0, "asked": 24, "unparsed": 0}
    assert rater.ledger.requests == 24 and rater.ledger.cost_usd > 0
    rater.close()


def test_second_run_is_served_by_the_cache(server, tmp_path):
    first = make_rater(config(server, tmp_path)).rate(requests())
    again = make_rater(config(server, tmp_path))
    assert again.rate(requests()) == first
    assert server.count() == 24  # no new call
    assert again.last_counts["from_cache"] == 24 and again.ledger.requests == 0
    # a changed profile asks only for the views that changed
    changed = requests()
    changed[3] = RatingRequest("u3", "i3", changed[3].user_profile, "A different book.", changed[3].liked_item_profiles)
    make_rater(config(server, tmp_path)).rate(changed)
    assert server.count() == 26


def test_identical_views_are_asked_once(server, tmp_path):
    request = requests(1)[0]
    ratings = make_rater(config(server, tmp_path)).rate([request] * 5)
    assert len(ratings) == 5 and len(set(ratings)) == 1
    assert server.count() == 2


def test_every_fault_ends_rated_or_unparsed_and_nothing_is_lost(server, tmp_path):
    reqs = requests(12)
    poisoned = reqs[5].item_profile  # every answer for this item's views is malformed
    server.inject(MalformedAnswer('{"rating": "High"'), times=None, match=poisoned)
    server.inject(RateLimit(retry_after=0.05), times=3)
    server.inject(ServerError(500), times=2)
    server.inject(ServerError(503), times=1)
    server.inject(Hang(seconds=3.0), times=1)
    server.inject(Drop(), times=2)
    server.inject(InvalidLabel("Very High"), times=2)
    server.inject(MalformedAnswer("High"), times=1)

    rater = make_rater(config(server, tmp_path, llmhni_unparsed_retries=2))
    ratings = rater.rate(reqs)

    assert len(ratings) == 12
    for i, (rating, request) in enumerate(zip(ratings, reqs)):
        if i == 5:
            assert rating.user_view == rating.item_view == "unparsed"
            assert rating.is_unparsed and not rating.is_hard
        else:
            assert (rating.user_view, rating.item_view) == expected(request)
    # the poisoned views: first ask + 2 repair turns each, then recorded as unparsed
    poisoned_calls = [c for c in server.calls if poisoned in c.prompt and c.status == 200]
    assert len(poisoned_calls) == 6
    repair = [c for c in poisoned_calls if c.body["messages"][-2:][0]["role"] == "assistant"]
    assert len(repair) == 4 and all(c.body["messages"][-2]["content"] == '{"rating": "High"' for c in repair)
    assert rater.last_counts["unparsed"] == 2
    # every answer the server delivered is in the cache, once
    delivered = [c for c in server.calls if c.status == 200]
    with LLMCache.in_dir(tmp_path / "cache") as cache:
        stored = {rater.key(row["request"]["messages"]) for row in cache.stored_requests()}
        assert cache.count("calls") == len(delivered)
        assert cache.count("usage") == len(delivered)
    assert {rater.key(c.body["messages"]) for c in delivered} == stored
    counters = rater.ledger.counters
    assert counters["retry_rate_limit"] == 3 and counters["retry_http_500"] == 2 and counters["retry_http_503"] == 1
    assert counters["retry_timeout"] == 1 and counters["retry_connection"] == 2
    assert counters["answers_not_parsed"] == 6 + 2 + 1  # poisoned + invalid labels + "High"

    # a restart asks nothing: unparsed views are settled, not missing
    before = server.count()
    again = make_rater(config(server, tmp_path, llmhni_unparsed_retries=2))
    assert again.rate(reqs) == ratings and server.count() == before


def test_more_repair_turns_resume_an_unparsed_view(server, tmp_path):
    request = requests(1)[0]
    server.inject(MalformedAnswer("sure!"), times=2, match=request.item_profile)
    first = make_rater(config(server, tmp_path, llmhni_unparsed_retries=0)).rate([request])[0]
    assert first.user_view == first.item_view == "unparsed"
    calls = server.count()
    # allowing one repair turn continues the chain from the cached bad answers
    second = make_rater(config(server, tmp_path, llmhni_unparsed_retries=1)).rate([request])[0]
    assert (second.user_view, second.item_view) == expected(request)
    assert server.count() == calls + 2  # one repair turn per view, the first turns came from the cache
    last_two = server.calls[-2:]
    assert all(c.body["messages"][-2] == {"role": "assistant", "content": "sure!"} for c in last_two)


def test_budget_stops_cleanly_and_a_rerun_continues(server, tmp_path):
    reqs = requests(10)
    # each call books its worst case (a token per prompt byte + max_tokens) and costs about a
    # quarter of that (the server counts ~4 characters per token): a cap of 1.5 worst cases
    # admits a few calls, then stops before the next one could pass it
    probe = make_rater(config(server, tmp_path))
    views = [m for r in reqs for m in (probe.prompts.user_messages(r.user_profile, r.item_profile),
                                       probe.prompts.item_messages(r.liked_item_profiles, r.item_profile))]
    worst = max(probe.backend.chat_prices.cost(upper_bound_chat_tokens(m), 16) for m in views)
    budget = 1.5 * worst
    capped = make_rater(config(server, tmp_path, llmhni_budget_usd=budget, llmhni_max_concurrency=2))
    with pytest.raises(BudgetExceededError) as info:
        capped.rate(reqs)
    assert "views answered so far" in str(info.value)
    spent = capped.ledger.cost_usd
    assert 0 < spent <= budget and capped.ledger.reserved_usd == 0.0
    assert spent + worst > budget  # it stopped only when the next worst case could not fit
    paid = server.count("ok")
    assert 2 <= paid < 20
    with LLMCache.in_dir(tmp_path / "cache") as cache:
        assert cache.count("calls") == paid  # every answer paid for is kept
    # a rerun with room to spare asks only for the rest
    ratings = make_rater(config(server, tmp_path)).rate(reqs)
    assert len(ratings) == 10 and server.count("ok") == 20
    assert max(server.ok_counts().values()) == 1


def test_dry_run_plan_sends_nothing(server, tmp_path):
    rater = make_rater(config(server, tmp_path, llmhni_price_per_1k_prompt=1.0, llmhni_price_per_1k_completion=2.0))
    plan = rater.plan(requests(6))
    assert plan.calls == 12 and plan.cached == 0 and plan.items == 12
    assert plan.est_prompt_tokens > 12 * 50 and plan.est_completion_tokens == 12 * 16
    assert plan.est_cost_usd == pytest.approx(plan.est_prompt_tokens / 1000 + plan.est_completion_tokens / 1000 * 2)
    text = plan.format()
    assert "API calls:            12" in text and "nothing was sent" in text
    assert server.count() == 0
    rater.rate(requests(3))
    assert rater.plan(requests(6)).calls == 6  # the cached views are free


# ----------------------------------------------------------------------------- semantic stand-in
def test_semantic_stand_in_thresholds_and_naming(caplog):
    rater = make_rater({"llmhni_rater": "semantic", "llmhni_semantic_thresholds": "absolute", "llmhni_semantic_high": 0.6, "llmhni_semantic_low": 0.3})
    assert isinstance(rater, SemanticRater) and rater.is_stand_in
    assert "stand-in" in rater.name
    reqs = [
        RatingRequest("u", "a", user_relevance=0.9, item_relevance=0.6),
        RatingRequest("u", "b", user_relevance=0.6, item_relevance=0.59),
        RatingRequest("u", "c", user_relevance=0.3, item_relevance=0.29),
        RatingRequest("u", "d", user_relevance=-1.0, item_relevance=0.45),
    ]
    with caplog.at_level("WARNING", logger="recbole_llmhni.llm"):
        ratings = rater.rate(reqs)
    assert [(r.user_view, r.item_view) for r in ratings] == [
        ("High", "High"), ("High", "Medium"), ("Medium", "Low"), ("Low", "Medium"),
    ]
    assert [r.is_hard for r in ratings] == [True, False, False, False]
    assert any("STAND-IN" in m for m in caplog.messages)
    plan = rater.plan(reqs)
    assert plan.calls == 0 and plan.est_cost_usd == 0.0


@pytest.mark.parametrize("bad", [None, math.nan])
def test_semantic_rater_requires_relevance(bad):
    rater = SemanticRater(0.5, 0.2)
    with pytest.raises(ValueError, match=r"request #1 \(user 'u7', item 'i9'\).*alignment stage"):
        rater.rate([RatingRequest("u", "i", user_relevance=0.1, item_relevance=0.1),
                    RatingRequest("u7", "i9", user_relevance=0.5, item_relevance=bad)])


def test_rating_serialises():
    rating = SemanticRater(0.5, 0.2).rate([RatingRequest("u1", "i1", user_relevance=0.9, item_relevance=0.9)])[0]
    assert json.loads(json.dumps(rating.to_dict())) == {
        "user_id": "u1", "item_id": "i1", "user_view": "High", "item_view": "High", "hard": True,
    }

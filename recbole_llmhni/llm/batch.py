"""Batch labelling: missing calls as JSONL lines, the OpenAI Batch API, results joined into the cache.

``llmhni_llm_mode: batch`` sends every call the cache lacks as one line of a JSONL file::

    {"custom_id": "<cache key>", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4o", "messages": [...], "temperature": 0.0, ...}}

and runs it through the Batch API (OpenAI bills it at half price, without rate limits, and
answers within 24 hours): ``files.create(purpose="batch")``, ``batches.create``,
``batches.retrieve`` polled with growing, jittered waits (``llmhni_batch_poll_interval`` times
1.5 per poll up to ``llmhni_batch_poll_max``), then ``files.content`` of the output and error
files. ``vllm run-batch`` reads and writes the same line formats, which is what the
``label --export-batch`` / ``--import-batch`` commands use (:func:`request_line`,
:func:`parse_result_lines`).

Nothing paid for is lost:

* the batch id is stored in the cache (table ``batches``) right after ``batches.create``
  returns, so a run killed while waiting finds it and polls it instead of submitting again
  (only a kill in the instant between the server's answer and that write can lose the id;
  a stored id the server answers 404 for -- another endpoint or account -- is closed as
  ``not_found`` and its calls are submitted anew);
* the output and error files are stored raw in that row the moment they are downloaded,
  before any line is parsed; then every answered line lands in ``calls`` / ``embeddings``
  in one transaction, and only then is the batch marked ``joined``;
* a batch that fails, expires or has error lines or malformed output lines keeps every line
  that did complete; the lines still missing go into a new batch, at most
  ``llmhni_batch_max_rounds`` submissions of a request in all, after which the run stops
  with an error (answers received so far stay cached).

Cost: each answered line is charged at ``llmhni_price_per_1k_*`` times
``llmhni_batch_price_factor`` (0.5: OpenAI's batch discount). The budget cap books an upper
bound of the whole batch before it is submitted.

Sources: OpenAI, "Batch API" guide and API reference (``/v1/files``, ``/v1/batches``; input
and output line formats, statuses validating / in_progress / finalizing / completed /
failed / expired / cancelling / cancelled); vLLM, "OpenAI batch file format" (``vllm
run-batch -i requests.jsonl -o results.jsonl --model ...``).
"""
from __future__ import annotations

import json
import logging
import random
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from recbole_llmhni.llm.cache import LLMCache, StoredBatch, UsageRecord
from recbole_llmhni.llm.client import OpenAIBackend
from recbole_llmhni.llm.errors import LLMRequestError, LLMUnavailableError
from recbole_llmhni.llm.ledger import (
    Ledger,
    Prices,
    estimate_chat_tokens,
    estimate_tokens,
    upper_bound_chat_tokens,
    upper_bound_tokens,
)
from recbole_llmhni.llm.settings import LLMSettings

__all__ = [
    "CHAT_URL",
    "EMBEDDINGS_URL",
    "TERMINAL",
    "request_line",
    "ParsedResults",
    "parse_result_lines",
    "Sink",
    "ChatSink",
    "EmbeddingSink",
    "BatchRunner",
    "batch_prices",
]

logger = logging.getLogger("recbole_llmhni.llm")

CHAT_URL = "/v1/chat/completions"
EMBEDDINGS_URL = "/v1/embeddings"
#: statuses after which a batch changes no more
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


def request_line(custom_id: str, url: str, body: Mapping[str, Any]) -> Dict[str, Any]:
    """One line of a batch input file (OpenAI and ``vllm run-batch`` format)."""
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": dict(body)}


def batch_prices(prices: Prices, factor: float) -> Prices:
    """``prices`` scaled by ``llmhni_batch_price_factor``."""
    return Prices(prices.prompt_per_1k * factor, prices.completion_per_1k * factor)


# --------------------------------------------------------------------------- result lines
@dataclass
class ParsedResults:
    """The lines of output / error files: answered bodies, failed lines, lines that did not parse."""

    ok: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # custom_id -> response body
    failed: Dict[str, str] = field(default_factory=dict)  # custom_id -> why
    malformed: int = 0  # lines that are not JSON or carry no custom_id

    def merge(self, other: "ParsedResults") -> None:
        for key, body in other.ok.items():
            self.ok.setdefault(key, body)
        for key, why in other.failed.items():
            if key not in self.ok:
                self.failed.setdefault(key, why)
        self.malformed += other.malformed


def parse_result_lines(text: Optional[str]) -> ParsedResults:
    """Parse a batch output or error file (``{"custom_id", "response": {"status_code", "body"},
    "error"}`` per line). A line whose status is not 200, or that has an ``error``, is failed;
    a line that is not JSON or has no ``custom_id`` is malformed (its request is simply missing)."""
    parsed = ParsedResults()
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            parsed.malformed += 1
            continue
        key = record.get("custom_id") if isinstance(record, dict) else None
        if not isinstance(key, str) or not key:
            parsed.malformed += 1
            continue
        response = record.get("response") if isinstance(record.get("response"), dict) else {}
        body = response.get("body")
        status = response.get("status_code")
        if record.get("error") or status != 200 or not isinstance(body, dict):
            error = record.get("error") or {}
            why = error.get("message") if isinstance(error, dict) else str(error)
            parsed.failed[key] = str(why or f"HTTP {status}")
            continue
        parsed.ok[key] = body
    return parsed


# --------------------------------------------------------------------------- sinks
class Sink(ABC):
    """Where a stage's batch answers go: decode a response body, store rows, say what is stored."""

    kind: str = ""
    url: str = ""

    @abstractmethod
    def have(self, keys: Sequence[str]) -> Set[str]:
        """The keys among ``keys`` whose answers are in the cache."""

    @abstractmethod
    def decode(self, body: Mapping[str, Any], request: Any) -> Tuple[Any, int, int, bool]:
        """``(value, prompt_tokens, completion_tokens, usage_reported)``; ValueError if the body is unusable."""

    @abstractmethod
    def store(self, rows: List[Tuple[str, Any, Any, UsageRecord]]) -> None:
        """Store ``(key, request, value, usage)`` rows in one transaction."""

    @abstractmethod
    def upper_bound(self, request: Any) -> Tuple[int, int]:
        """Prompt / completion tokens no answer to ``request`` exceeds (the budget booking)."""


class ChatSink(Sink):
    """Chat completions of a rater; ``request`` is ``{"messages": ..., "params": ...}``."""

    kind, url = "chat", CHAT_URL

    def __init__(self, cache: LLMCache, backend: str, model: str, run_id: str) -> None:
        self.cache, self.backend, self.model, self.run_id = cache, backend, model, run_id

    def body(self, request: Mapping[str, Any]) -> Dict[str, Any]:
        return {"model": self.model, "messages": list(request["messages"]), **dict(request["params"])}

    def have(self, keys: Sequence[str]) -> Set[str]:
        return set(self.cache.get_calls(keys))

    def decode(self, body: Mapping[str, Any], request: Any) -> Tuple[Any, int, int, bool]:
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ValueError("no choices in the response body")
        message = choices[0].get("message") or {}
        content = message.get("content")
        if content is None:  # a refusal or an empty answer: keep whatever text there is
            content = message.get("refusal") or ""
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        if usage.get("prompt_tokens") is not None:
            return str(content), int(usage["prompt_tokens"]), int(usage.get("completion_tokens") or 0), True
        return str(content), estimate_chat_tokens(request["messages"]), estimate_tokens(str(content)), False

    def store(self, rows: List[Tuple[str, Any, Any, UsageRecord]]) -> None:
        self.cache.put_calls([(key, self.backend, self.model, request, value, usage)
                              for key, request, value, usage in rows])

    def upper_bound(self, request: Any) -> Tuple[int, int]:
        return upper_bound_chat_tokens(request["messages"]), int(request["params"].get("max_tokens") or 0)


class EmbeddingSink(Sink):
    """Embeddings of an encoder, one text per line; ``request`` is ``{"text": ...}``."""

    kind, url = "embedding", EMBEDDINGS_URL

    def __init__(self, cache: LLMCache, backend: str, model: str, dimensions: Optional[int], run_id: str) -> None:
        self.cache, self.backend, self.model, self.dimensions, self.run_id = cache, backend, model, dimensions, run_id

    def body(self, request: Mapping[str, Any]) -> Dict[str, Any]:
        body: Dict[str, Any] = {"model": self.model, "input": request["text"], "encoding_format": "float"}
        if self.dimensions is not None:
            body["dimensions"] = int(self.dimensions)
        return body

    def have(self, keys: Sequence[str]) -> Set[str]:
        return set(self.cache.get_embeddings(keys))

    def decode(self, body: Mapping[str, Any], request: Any) -> Tuple[Any, int, int, bool]:
        data = body.get("data")
        if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
            raise ValueError("expected exactly one embedding in the response body")
        vector = np.asarray(data[0].get("embedding"), dtype=np.float32)
        if vector.ndim != 1 or vector.size == 0:
            raise ValueError("the embedding is not a vector of numbers")
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        if usage.get("prompt_tokens") is not None:
            return vector, int(usage["prompt_tokens"]), 0, True
        return vector, estimate_tokens(request["text"]), 0, False

    def store(self, rows: List[Tuple[str, Any, Any, UsageRecord]]) -> None:
        if not rows:
            return
        usage = UsageRecord(
            run_id=self.run_id, backend=self.backend, model=self.model, kind="embedding", n_inputs=len(rows),
            prompt_tokens=sum(u.prompt_tokens for *_, u in rows), completion_tokens=0,
            cost_usd=sum(u.cost_usd for *_, u in rows), usage_reported=all(u.usage_reported for *_, u in rows),
        )
        self.cache.put_embeddings([(key, value) for key, _, value, _ in rows], self.backend, self.model, usage)

    def upper_bound(self, request: Any) -> Tuple[int, int]:
        return upper_bound_tokens(request["text"]), 0


# --------------------------------------------------------------------------- runner
class BatchRunner:
    """Submit, poll and join Batch API jobs for one stage; see the module docstring.

    Args:
        settings: the ``llmhni_*`` settings (poll intervals, lines per batch, rounds, prices).
        cache: where batch ids, raw result files and answers go.
        ledger: the run's spending (batch prices) and counters (``batch_*``).
        backend: the API access (client, retries, redaction).
        prices: the stage's online prices; the runner scales them by the batch factor.
        sleep: ``seconds -> None`` between polls (tests may record it).
    """

    def __init__(
        self,
        settings: LLMSettings,
        cache: LLMCache,
        ledger: Ledger,
        backend: OpenAIBackend,
        prices: Prices,
        sleep: Callable[[float], None] = time.sleep,
        rng: Optional[random.Random] = None,
    ) -> None:
        self.settings, self.cache, self.ledger, self.backend = settings, cache, ledger, backend
        self.prices = batch_prices(prices, settings.batch_price_factor)
        self.sleep = sleep
        self._rng = rng or random.Random()
        self._bookings: Dict[str, float] = {}

    # ---- the whole job
    def run(self, sink: Sink, requests: Mapping[str, Any], desc: str = "batch") -> None:
        """Get an answer for every ``{key: request}`` into the cache, through as few batches as it takes.

        Raises:
            LLMUnavailableError: requests still unanswered after ``llmhni_batch_max_rounds``
                submissions each (every answer received is cached).
        """
        keys = list(requests)
        remaining = set(keys) - sink.have(keys)
        submissions: Counter = Counter()
        for stored in self.cache.batches(kind=sink.kind, state="open"):
            carried = remaining & set(stored.requests)
            if not carried:
                continue
            logger.info("%s: resuming batch %s (%d requests) submitted by an earlier run", desc, stored.id, len(carried))
            self.ledger.note("batch_resumed")
            try:
                self.finish(sink, stored)
            except LLMRequestError as exc:
                if "HTTP 404" not in str(exc):
                    raise
                # the server does not know the id (another endpoint or account): its calls are asked anew
                logger.warning("%s: batch %s is unknown to the server; its requests are submitted again", desc, stored.id)
                self.cache.update_batch(stored.id, "not_found", state="joined")
                continue
            submissions.update(carried)
            remaining -= sink.have(sorted(carried))
        while remaining:
            over = [k for k in remaining if submissions[k] >= self.settings.batch_max_rounds]
            if over:
                raise LLMUnavailableError(
                    f"{desc}: {len(over)} of {len(keys)} requests still unanswered after "
                    f"{self.settings.batch_max_rounds} batch submissions each; every answer received is "
                    "cached. Run again later, or raise llmhni_batch_max_rounds."
                )
            ordered = [k for k in keys if k in remaining]
            size = self.settings.batch_max_lines
            batches = [self.submit(sink, {k: requests[k] for k in ordered[s : s + size]})
                       for s in range(0, len(ordered), size)]
            submissions.update(ordered)
            for stored in batches:
                self.finish(sink, stored)
            remaining -= sink.have(ordered)

    # ---- one batch
    def submit(self, sink: Any, requests: Mapping[str, Any]) -> StoredBatch:
        """Upload the requests as JSONL, create the batch, record its id in the cache."""
        upper = 0.0
        for request in requests.values():
            upper += self.prices.cost(*sink.upper_bound(request))
        booking = self.ledger.reserve(upper)
        try:
            data = "".join(json.dumps(request_line(k, sink.url, sink.body(r)), ensure_ascii=False) + "\n"
                           for k, r in requests.items()).encode("utf-8")
            client = self.backend.client()
            model = sink.model
            uploaded = self.backend.request(
                "batch upload", model, lambda: client.files.create(file=("llmhni-batch.jsonl", data), purpose="batch")
            )
            batch = self.backend.request(
                "batch create", model,
                lambda: client.batches.create(input_file_id=uploaded.id, endpoint=sink.url, completion_window="24h",
                                              metadata={"source": "recbole-llmhni"}),
            )
        except BaseException:
            self.ledger.release(booking)
            raise
        self.cache.add_batch(batch.id, sink.kind, sink.url, requests, str(batch.status))
        self._bookings[batch.id] = booking
        self.ledger.note("batch_submitted")
        self.ledger.note("batch_lines_submitted", len(requests))
        logger.info("submitted batch %s: %d %s requests", batch.id, len(requests), sink.kind)
        return StoredBatch(batch.id, sink.kind, sink.url, dict(requests), "open", str(batch.status), None, None)

    def wait(self, batch_id: str, model: str) -> Any:
        """Poll ``batches.retrieve`` until the batch reaches a terminal status; the batch object.

        A tqdm bar shows the server's ``request_counts`` (completed + failed of total).
        """
        from tqdm import tqdm

        client = self.backend.client()
        interval = self.settings.batch_poll_interval
        with tqdm(desc=f"batch {batch_id}", unit="request", disable=not self.settings.show_progress,
                  leave=False, dynamic_ncols=True) as bar:
            while True:
                batch = self.backend.request("batch status", model, lambda: client.batches.retrieve(batch_id))
                status = str(batch.status)
                counts = getattr(batch, "request_counts", None)
                if counts is not None:
                    bar.total = int(getattr(counts, "total", 0) or 0)
                    bar.n = int(getattr(counts, "completed", 0) or 0) + int(getattr(counts, "failed", 0) or 0)
                    bar.set_postfix_str(status, refresh=True)
                self.cache.update_batch(batch_id, status)
                if status in TERMINAL:
                    return batch
                self.ledger.note("batch_polls")
                self.sleep(interval * (0.5 + 0.5 * self._rng.random()))
                interval = min(self.settings.batch_poll_max, interval * 1.5)

    def _download(self, file_id: Optional[str], model: str) -> Optional[str]:
        if not file_id:
            return None
        client = self.backend.client()
        content = self.backend.request("batch download", model, lambda: client.files.content(file_id))
        return content.text

    def finish(self, sink: Sink, stored: StoredBatch) -> None:
        """Wait for ``stored``, save its raw files, join every answered line into the cache, close it."""
        output, errors, status = stored.output, stored.errors, stored.status
        if output is None and errors is None:
            batch = self.wait(stored.id, sink.model)
            status = str(batch.status)
            output = self._download(getattr(batch, "output_file_id", None), sink.model)
            errors = self._download(getattr(batch, "error_file_id", None), sink.model)
            # raw files first: whatever fails below, nothing received is lost
            self.cache.update_batch(stored.id, status, output=output or "", errors=errors or "")
            if status != "completed":
                reason = _batch_errors(batch)
                logger.warning("batch %s ended %s%s; keeping its completed lines, resubmitting the rest",
                               stored.id, status, f" ({reason})" if reason else "")
                self.ledger.note(f"batch_{status}")
        self.join(sink, stored.id, stored.requests, [output, errors])
        self.cache.update_batch(stored.id, str(status), state="joined")

    def join(self, sink: Sink, batch_id: Optional[str], requests: Mapping[str, Any],
             files: Iterable[Optional[str]]) -> ParsedResults:
        """Store every answered line of ``files`` whose key is in ``requests`` and not cached yet."""
        parsed = ParsedResults()
        for text in files:
            parsed.merge(parse_result_lines(text))
        fresh = [k for k in parsed.ok if k in requests]
        already = sink.have(fresh)
        rows: List[Tuple[str, Any, Any, UsageRecord]] = []
        for key in fresh:
            if key in already:
                continue
            try:
                value, pt, ct, reported = sink.decode(parsed.ok[key], requests[key])
            except (ValueError, TypeError) as exc:
                parsed.failed[key] = f"unusable response body: {exc}"
                continue
            rows.append((key, requests[key], value, UsageRecord(
                run_id=self.ledger.run_id, backend=getattr(sink, "backend", sink.kind), model=sink.model,
                kind=sink.kind, n_inputs=1, prompt_tokens=pt, completion_tokens=ct,
                cost_usd=self.prices.cost(pt, ct), usage_reported=reported,
            )))
        sink.store(rows)
        booking = self._bookings.pop(batch_id, 0.0) if batch_id is not None else 0.0
        self.ledger.release(booking)
        for *_, usage in rows:
            self.ledger.settle(0.0, usage.prompt_tokens, usage.completion_tokens, usage.cost_usd, usage.usage_reported)
        unknown = sum(1 for k in parsed.ok if k not in requests)
        failed = sum(1 for k in parsed.failed if k in requests)
        self.ledger.note("batch_lines_answered", len(rows))
        for name, n in (("batch_lines_failed", failed), ("batch_lines_malformed", parsed.malformed),
                        ("batch_lines_unknown", unknown)):
            if n:
                self.ledger.note(name, n)
        if failed or parsed.malformed:
            logger.warning("batch %s: %d answered, %d error lines, %d malformed lines (those requests are asked again)",
                           batch_id or "import", len(rows), failed, parsed.malformed)
        return parsed


def _batch_errors(batch: Any) -> str:
    errors = getattr(batch, "errors", None)
    data = getattr(errors, "data", None) or []
    return "; ".join(str(getattr(e, "message", "") or getattr(e, "code", "")) for e in data)[:300]

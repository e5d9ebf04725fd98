"""Safe calls to an OpenAI-compatible API: retries, backoff, budget bookings, redacted errors.

:class:`OpenAIBackend` wraps one ``openai.OpenAI`` client (created lazily, so a dry run or a
fully cached run never needs the SDK or a key). The SDK's own retries are switched off and
replaced by one loop with a single policy for every request:

* transient faults -- HTTP 429, 408, 409, 5xx, timeouts, dropped connections and bodies that
  are not JSON -- are retried up to ``llmhni_max_retries`` times;
* the wait before retry ``n`` is ``min(backoff_max, backoff_base * 2**n)`` times a random
  factor in [0.5, 1] ("equal jitter": no herd of clients retrying in step, yet never much
  shorter than the exponential schedule); a ``Retry-After`` or ``retry-after-ms`` header
  replaces it (plus up to 10 % jitter, never less than the server asked for);
* anything else the server refuses (400, 401, 403, 404, 422) stops the run at once with a
  hint, because retrying cannot help and every further request would fail the same way;
* waits are interruptible: when a run stops (budget reached, fatal error, Ctrl-C) the
  waiting workers give up instead of sending more requests.

Every request books its worst-case cost with the :class:`~recbole_llmhni.llm.ledger.Ledger`
first (the budget cap) and settles the actual cost from the response's ``usage``.

No message produced here contains the API key: SDK errors are re-raised as
:class:`~recbole_llmhni.llm.errors.LLMError` with a :func:`redact`-ed text, ``from None``.

:func:`run_bounded` runs many such requests with at most ``llmhni_max_concurrency`` in
flight and a tqdm bar; the first fatal error stops new work while the requests already in
flight finish (their answers are cached by the caller).
"""
from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeVar
from urllib.parse import urlsplit

import numpy as np

from recbole_llmhni.llm.errors import LLMError, LLMRequestError, LLMUnavailableError
from recbole_llmhni.llm.ledger import (
    Ledger,
    Prices,
    estimate_chat_tokens,
    estimate_tokens,
    upper_bound_chat_tokens,
    upper_bound_tokens,
)
from recbole_llmhni.llm.redact import redact
from recbole_llmhni.llm.settings import LLMSettings

__all__ = [
    "RetryPolicy",
    "OpenAIBackend",
    "ChatAnswer",
    "EmbeddingAnswer",
    "StopRequested",
    "run_bounded",
    "retry_after_seconds",
]

logger = logging.getLogger("recbole_llmhni.llm")

TRANSIENT_STATUS = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 600.0  # a server asking for more than 10 minutes is treated as asking for 10

T = TypeVar("T")
R = TypeVar("R")


class StopRequested(Exception):
    """The run is stopping; this request was not sent (internal, never escapes a run)."""


class _Transient(Exception):
    """A fault worth retrying; ``reason`` names it, ``retry_after`` is the server's wish."""

    def __init__(self, reason: str, retry_after: Optional[float] = None, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.detail = detail


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait; see the module docstring."""

    max_retries: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0

    def delay(self, retry: int, retry_after: Optional[float], rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after is not None:
            wanted = min(max(0.0, retry_after), MAX_RETRY_AFTER)
            return wanted + wanted * 0.1 * rng.random()
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** retry))
        return ceiling * (0.5 + 0.5 * rng.random())


def retry_after_seconds(headers: Optional[Mapping[str, str]]) -> Optional[float]:
    """The wait a response asks for: ``retry-after-ms``, ``Retry-After`` seconds or HTTP date."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return float(lowered["retry-after-ms"]) / 1000.0
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return None if parsed is None else max(0.0, parsed.timestamp() - time.time())


@dataclass(frozen=True)
class ChatAnswer:
    """One chat completion as received (content may be anything; parsing is the caller's job)."""

    content: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    usage_reported: bool
    finish_reason: Optional[str]


@dataclass(frozen=True)
class EmbeddingAnswer:
    vectors: np.ndarray  # float32 [n, d], rows in input order
    prompt_tokens: int
    cost_usd: float
    usage_reported: bool


def _endpoint(base_url: Optional[str]) -> str:
    """Host[:port] of the server, without credentials or query (safe to print)."""
    if not base_url:
        return "the OpenAI API"
    parts = urlsplit(base_url)
    host = parts.hostname or base_url
    return f"{host}:{parts.port}" if parts.port else host


class OpenAIBackend:
    """Thread-safe access to one OpenAI-compatible server (chat completions and embeddings).

    Args:
        settings: the ``llmhni_*`` settings (URL, key, timeouts, retries, prices).
        ledger: books and records every request's cost; enforces the budget.
        rng: source of jitter (tests pass a seeded one).
    """

    def __init__(self, settings: LLMSettings, ledger: Ledger, rng: Optional[random.Random] = None) -> None:
        self.settings = settings
        self.ledger = ledger
        self.policy = RetryPolicy(settings.max_retries, settings.backoff_base, settings.backoff_max)
        self.chat_prices = Prices(settings.price_per_1k_prompt, settings.price_per_1k_completion)
        self.embedding_prices = Prices(settings.price_per_1k_embedding, 0.0)
        self.endpoint = _endpoint(settings.api_base_url)
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._client: Any = None
        self._client_lock = threading.Lock()
        #: called as ``on_retry(reason, seconds)`` before each wait; default logs it
        self.on_retry: Callable[[str, float], None] = self._log_retry

    # ------------------------------------------------------------------ client
    def client(self) -> Any:
        """The ``openai.OpenAI`` client, created on first use (SDK retries off)."""
        with self._client_lock:
            if self._client is None:
                import openai  # heavy; only when a request is really made

                self._client = openai.OpenAI(
                    api_key=self.settings.resolve_api_key(),
                    base_url=self.settings.api_base_url,
                    timeout=self.settings.request_timeout,
                    max_retries=0,
                )
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # ------------------------------------------------------------------ requests
    def chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, str]],
        params: Mapping[str, Any],
        stop: Optional[threading.Event] = None,
    ) -> ChatAnswer:
        """One chat completion with retries; books its worst-case cost first.

        Raises:
            BudgetExceededError: the call could pass the budget; it was not sent.
            LLMRequestError / LLMUnavailableError: see the module docstring.
            StopRequested: ``stop`` was set while waiting to retry.
        """
        upper = self.chat_prices.cost(upper_bound_chat_tokens(messages), int(params.get("max_tokens") or 0))
        booking = self.ledger.reserve(upper)
        settled = False
        try:
            response = self._with_retries(
                "chat",
                model,
                lambda: self.client().chat.completions.create(model=model, messages=list(messages), **params),
                stop,
            )
            choice = response.choices[0] if getattr(response, "choices", None) else None
            message = getattr(choice, "message", None)
            content = getattr(message, "content", None)
            if content is None:  # a refusal or an empty answer: keep whatever text there is
                content = getattr(message, "refusal", None) or ""
            usage = getattr(response, "usage", None)
            if usage is not None and getattr(usage, "prompt_tokens", None) is not None:
                prompt_tokens = int(usage.prompt_tokens)
                completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
                reported = True
            else:
                prompt_tokens = estimate_chat_tokens(messages)
                completion_tokens, reported = estimate_tokens(str(content)), False
            cost = self.chat_prices.cost(prompt_tokens, completion_tokens)
            self.ledger.settle(booking, prompt_tokens, completion_tokens, cost, reported)
            settled = True
        finally:
            if not settled:  # the request failed: it costs nothing, free its booking
                self.ledger.release(booking)
        return ChatAnswer(
            content=str(content),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            usage_reported=reported,
            finish_reason=getattr(choice, "finish_reason", None),
        )

    def embed(
        self,
        model: str,
        texts: Sequence[str],
        dimensions: Optional[int] = None,
        stop: Optional[threading.Event] = None,
    ) -> EmbeddingAnswer:
        """Embed ``texts`` in one request with retries; books its worst-case cost first."""
        upper = self.embedding_prices.cost(sum(upper_bound_tokens(t) for t in texts))
        booking = self.ledger.reserve(upper)
        kwargs: Dict[str, Any] = {"model": model, "input": list(texts), "encoding_format": "float"}
        if dimensions is not None:
            kwargs["dimensions"] = int(dimensions)
        settled = False
        try:
            response = self._with_retries(
                "embeddings", model, lambda: self.client().embeddings.create(**kwargs), stop
            )
            data = sorted(response.data, key=lambda d: d.index)
            if len(data) != len(texts):
                raise LLMUnavailableError(
                    f"embeddings request to {self.endpoint} returned {len(data)} vectors for "
                    f"{len(texts)} inputs; the server is not OpenAI-compatible here."
                )
            vectors = np.asarray([d.embedding for d in data], dtype=np.float32)
            usage = getattr(response, "usage", None)
            if usage is not None and getattr(usage, "prompt_tokens", None) is not None:
                tokens, reported = int(usage.prompt_tokens), True
            else:
                tokens, reported = sum(estimate_tokens(t) for t in texts), False
            cost = self.embedding_prices.cost(tokens)
            self.ledger.settle(booking, tokens, 0, cost, reported)
            settled = True
        finally:
            if not settled:
                self.ledger.release(booking)
        return EmbeddingAnswer(vectors=vectors, prompt_tokens=tokens, cost_usd=cost, usage_reported=reported)

    def request(self, what: str, model: str, send: Callable[[], Any], stop: Optional[threading.Event] = None) -> Any:
        """Any other SDK call (files, batches) under the same retry policy and error redaction."""
        return self._with_retries(what, model, send, stop)

    # ------------------------------------------------------------------ retry loop
    def _with_retries(
        self, what: str, model: str, send: Callable[[], Any], stop: Optional[threading.Event]
    ) -> Any:
        retry = 0
        while True:
            if stop is not None and stop.is_set():
                raise StopRequested()
            try:
                return self._classify(what, model, send)
            except _Transient as fault:
                self.ledger.note(f"retry_{fault.reason}")
                if retry >= self.policy.max_retries:
                    raise LLMUnavailableError(
                        f"{what} request to {self.endpoint} (model {model}) still failing after "
                        f"{self.policy.max_retries} retries; last error: {fault.reason}"
                        f"{': ' + fault.detail if fault.detail else ''}. Answers received so far are "
                        "cached; run again later, or raise llmhni_max_retries / llmhni_request_timeout."
                    ) from None
                with self._rng_lock:
                    seconds = self.policy.delay(retry, fault.retry_after, self._rng)
                self.on_retry(fault.reason, seconds)
                retry += 1
                if stop is not None:
                    if stop.wait(seconds):
                        raise StopRequested() from None
                else:
                    time.sleep(seconds)

    def _classify(self, what: str, model: str, send: Callable[[], Any]) -> Any:
        """Call ``send``; turn SDK errors into :class:`_Transient` or a redacted :class:`LLMError`."""
        import openai

        try:
            return send()
        except openai.APITimeoutError:
            raise _Transient("timeout") from None
        except openai.APIConnectionError:
            raise _Transient("connection") from None
        except openai.APIStatusError as exc:
            status = int(exc.status_code)
            headers = getattr(getattr(exc, "response", None), "headers", None)
            if status in TRANSIENT_STATUS or status >= 500:
                reason = "rate_limit" if status == 429 else f"http_{status}"
                raise _Transient(reason, retry_after_seconds(headers), _short(exc)) from None
            raise LLMRequestError(self._refusal_message(what, model, status, exc)) from None
        except (json.JSONDecodeError, openai.APIResponseValidationError) as exc:
            raise _Transient("bad_response", None, _short(exc)) from None
        except LLMError:
            raise
        except openai.OpenAIError as exc:
            raise LLMRequestError(
                f"{what} request to {self.endpoint} failed: {type(exc).__name__}: {_short(exc)}"
            ) from None

    def _refusal_message(self, what: str, model: str, status: int, exc: Exception) -> str:
        hints = {
            400: "the server rejected the request's form; if it does not support structured output, "
            "set llmhni_response_format to json_object_schema, json_object or none",
            401: f"check the API key (environment variable {self.settings.api_key_env} or llmhni_api_key)",
            403: "the key may not use this model or endpoint",
            404: "check llmhni_api_base_url (it usually ends in /v1) and the model name",
            422: "the server rejected the request's parameters",
        }
        hint = hints.get(status, "retrying will not help")
        return (
            f"{what} request to {self.endpoint} (model {model}) refused with HTTP {status}: "
            f"{_short(exc)}. Hint: {hint}."
        )

    @staticmethod
    def _log_retry(reason: str, seconds: float) -> None:
        logger.info("transient %s; retrying in %.2f s", reason, seconds)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = redact(exc)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------- concurrency
def run_bounded(
    tasks: Sequence[T],
    work: Callable[[T, threading.Event], R],
    max_workers: int,
    desc: str,
    show_progress: bool = True,
    unit: str = "call",
) -> List[Optional[R]]:
    """``[work(task, stop) for task in tasks]`` with at most ``max_workers`` running at once.

    The first exception stops the run: pending tasks are cancelled, ``stop`` is set (running
    workers see it before their next request or retry), the tasks in flight finish, and the
    exception is re-raised. A task that raised :class:`StopRequested` leaves ``None``.
    KeyboardInterrupt stops the same way.
    """
    results: List[Optional[R]] = [None] * len(tasks)
    if not tasks:
        return results
    stop = threading.Event()
    first_error: Optional[BaseException] = None
    bar = _progress(len(tasks), desc, unit, show_progress)
    executor = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(tasks))), thread_name_prefix="llmhni")
    try:
        futures: Dict[Future, int] = {executor.submit(work, task, stop): i for i, task in enumerate(tasks)}
        for future in as_completed(futures):
            if future.cancelled():
                continue
            try:
                results[futures[future]] = future.result()
            except StopRequested:
                pass
            except BaseException as exc:  # noqa: BLE001 -- first error decides, the rest drain
                if first_error is None:
                    first_error = exc
                    stop.set()
                    for other in futures:
                        other.cancel()
            bar.update(1)
    except BaseException:
        stop.set()
        executor.shutdown(wait=True, cancel_futures=True)
        bar.close()
        raise
    executor.shutdown(wait=True)
    bar.close()
    if first_error is not None:
        raise first_error
    return results


def _progress(total: int, desc: str, unit: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False, dynamic_ncols=True)

"""Tokens, money and the budget cap: what a run spends, may spend and would spend.

Three jobs:

* **Ledger** -- counts prompt/completion tokens from the API's ``usage`` fields (an estimate,
  flagged as such, when a server sends none) and their cost at the configured prices. Every
  paid request is also persisted as a ``usage`` row of the cache, in the same transaction as
  the answer, so the spending of a killed run is not lost either.
* **Budget cap** -- before a request is sent, :meth:`Ledger.reserve` books an *upper bound*
  of its cost: prompt tokens <= UTF-8 bytes of the prompt (a BPE token covers at least one
  byte) plus a few tokens per message, completion tokens <= ``max_tokens``. The request starts
  only if the money spent plus every open reservation stays within ``llmhni_budget_usd``
  (a request that does not fit waits for those in flight to settle, then tries again); when
  it arrives, the reservation is replaced by the actual cost. The cap therefore holds even
  with many requests in flight; the price is that a run may stop a little before the cap
  (by at most one worst-case request).
* **Dry run** -- :class:`CallPlan` reports, before anything is spent, how many calls a stage
  would make (cache hits are free and excluded), the estimated tokens (~4 characters per
  token) and the estimated cost.
"""
from __future__ import annotations

import math
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence

from recbole_llmhni.llm.errors import BudgetExceededError

__all__ = [
    "Prices",
    "Ledger",
    "CallPlan",
    "estimate_tokens",
    "upper_bound_tokens",
    "estimate_chat_tokens",
    "upper_bound_chat_tokens",
]

_TOKENS_PER_MESSAGE = 4  # role and separators of the chat format
_TOKENS_PER_REPLY = 3  # the primed assistant turn


def estimate_tokens(text: str) -> int:
    """Expected tokens of ``text`` for English-like prose (about 4 characters per token)."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def upper_bound_tokens(text: str) -> int:
    """A bound no tokenizer exceeds: one token per UTF-8 byte."""
    return len(text.encode("utf-8"))


def estimate_chat_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(estimate_tokens(str(m.get("content", ""))) + _TOKENS_PER_MESSAGE for m in messages) + _TOKENS_PER_REPLY


def upper_bound_chat_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    return (
        sum(upper_bound_tokens(str(m.get("content", ""))) + 2 * _TOKENS_PER_MESSAGE for m in messages)
        + 2 * _TOKENS_PER_REPLY
    )


@dataclass(frozen=True)
class Prices:
    """USD per 1,000 prompt (input) and completion (output) tokens."""

    prompt_per_1k: float
    completion_per_1k: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int = 0) -> float:
        return prompt_tokens / 1000.0 * self.prompt_per_1k + completion_tokens / 1000.0 * self.completion_per_1k


class Ledger:
    """Thread-safe spending of one run, with the optional budget cap.

    Counters (:attr:`counters`) also record what the run did besides paying: ``cache_hits``,
    ``unparsed``, and ``retry_<reason>`` per transient fault.
    """

    def __init__(self, budget_usd: Optional[float] = None, run_id: Optional[str] = None) -> None:
        self.budget_usd = budget_usd
        self.run_id = run_id or uuid.uuid4().hex
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)  # notified when a booking closes
        self._reserved = 0.0
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0
        self.usage_estimated = 0  # requests whose server sent no usage
        self.counters: Counter = Counter()

    # ---------------------------------------------------------------- budget
    def reserve(self, upper_bound_usd: float) -> float:
        """Book ``upper_bound_usd`` for a request about to be sent; returns the booking.

        If it does not fit while other requests are in flight, waits for them to settle
        (their actual cost is usually far below their booking) and tries again.

        Raises:
            BudgetExceededError: spent + this booking would pass the budget even with nothing
                else in flight.
        """
        with self._settled:
            while self.budget_usd is not None and self.cost_usd + self._reserved + upper_bound_usd > self.budget_usd:
                if self._reserved > 0:
                    self._settled.wait()
                    continue
                raise BudgetExceededError(
                    f"budget of ${self.budget_usd:.4f} reached: ${self.cost_usd:.4f} spent, "
                    f"${self._reserved:.4f} booked by requests in flight, and the next request "
                    f"may cost up to ${upper_bound_usd:.4f}. Every answer received so far is "
                    "cached: raise llmhni_budget_usd (or --budget) and run again to continue."
                )
            self._reserved += upper_bound_usd
            return upper_bound_usd

    def release(self, booking: float) -> None:
        """Cancel a booking (the request failed and costs nothing)."""
        with self._settled:
            self._reserved = max(0.0, self._reserved - booking)
            self._settled.notify_all()

    def settle(
        self, booking: float, prompt_tokens: int, completion_tokens: int, cost_usd: float, reported: bool
    ) -> None:
        """Replace a booking by what the request actually cost."""
        with self._settled:
            self._reserved = max(0.0, self._reserved - booking)
            self._settled.notify_all()
            self.requests += 1
            self.prompt_tokens += int(prompt_tokens)
            self.completion_tokens += int(completion_tokens)
            self.cost_usd += float(cost_usd)
            if not reported:
                self.usage_estimated += 1

    @property
    def reserved_usd(self) -> float:
        with self._lock:
            return self._reserved

    # ---------------------------------------------------------------- counters
    def note(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def summary(self) -> Dict[str, Any]:
        """What this run spent and did, for logs and report files."""
        with self._lock:
            return {
                "run_id": self.run_id,
                "requests": self.requests,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cost_usd": round(self.cost_usd, 6),
                "usage_estimated": self.usage_estimated,
                "budget_usd": self.budget_usd,
                **{k: v for k, v in sorted(self.counters.items())},
            }


@dataclass
class CallPlan:
    """What a stage would do: printed by ``--dry-run`` before anything is spent."""

    stage: str  # "label" | "encode"
    backend: str
    model: str
    items: int  # requested texts / rating views
    cached: int  # answered from the cache, free
    calls: int  # API requests the stage would make (at least)
    est_prompt_tokens: int
    est_completion_tokens: int
    prices: Prices
    budget_usd: Optional[float] = None
    notes: Sequence[str] = field(default_factory=tuple)

    @property
    def est_cost_usd(self) -> float:
        return self.prices.cost(self.est_prompt_tokens, self.est_completion_tokens)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "stage": self.stage,
            "backend": self.backend,
            "model": self.model,
            "items": self.items,
            "cached": self.cached,
            "calls": self.calls,
            "est_prompt_tokens": self.est_prompt_tokens,
            "est_completion_tokens": self.est_completion_tokens,
            "est_cost_usd": round(self.est_cost_usd, 6),
            "budget_usd": self.budget_usd,
        }

    def format(self) -> str:
        unit = "views" if self.stage == "label" else "texts"
        lines = [
            f"dry run: {self.stage} with {self.backend} / {self.model}",
            f"  {unit}:                {self.items:,} ({self.cached:,} cached, {self.items - self.cached:,} to do)",
            f"  API calls:            {self.calls:,}",
            f"  est. prompt tokens:   {self.est_prompt_tokens:,}",
            f"  est. completion tok.: {self.est_completion_tokens:,}",
            f"  est. cost:            ${self.est_cost_usd:.4f} (at ${self.prices.prompt_per_1k:g} / "
            f"${self.prices.completion_per_1k:g} per 1K prompt / completion tokens)",
            f"  budget:               {'none' if self.budget_usd is None else f'${self.budget_usd:.4f}'}",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        lines.append("nothing was sent.")
        return "\n".join(lines)

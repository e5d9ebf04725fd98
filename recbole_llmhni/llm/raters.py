"""Raters (stage S6): candidate pairs in, a High/Medium/Low judgement per pair and view out.

Every candidate pair (u, i) gets two views:

* **user-centric** -- the user's profile P_u against the item's profile P_i;
* **item-centric** -- the profiles of the user's L best-scored liked items against P_i.

A pair is *hard* when both views are ``High`` (:attr:`Rating.is_hard`); S7 treats the rest as
noisy. A view whose answer never parsed is ``"unparsed"``: counted, and never ``High``.

Two raters share this interface:

:class:`OpenAIRater`
    Chat completions (gpt-4o by default) against any OpenAI-compatible server. Each view is
    one request whose answer is looked up in / written to the SQLite cache the moment it
    arrives, keyed by (backend, model, messages, parameters); identical views are asked
    once. An answer that does not parse is followed by a repair turn (the answer plus
    ``repair.txt``) up to ``llmhni_unparsed_retries`` times; every such turn is its own
    cached call, so a restarted run resumes exactly where the killed one stopped. With
    ``llmhni_llm_mode: batch`` the missing calls go through the OpenAI Batch API instead
    (:mod:`recbole_llmhni.llm.batch`): one batch per turn (first questions, then the repair
    turns of answers that did not parse), joined into the same cache under the same keys;
    :meth:`OpenAIRater.export_batch` / :meth:`OpenAIRater.import_batch` do the same through
    files for ``vllm run-batch``.
:class:`SemanticRater`
    The offline stand-in: each view from a semantic relevance with thresholds --
    user-centric from s(u, i), item-centric from the mean s(j, i) over the liked items j.
    No language model is involved, and its name, :attr:`Rater.is_stand_in`, the logs and the
    CLI's report say so.
"""
from __future__ import annotations

import json
import logging
import math
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from recbole_llmhni.llm.batch import CHAT_URL, BatchRunner, ChatSink, ParsedResults, batch_prices, request_line
from recbole_llmhni.llm.cache import LLMCache, UsageRecord, cache_key
from recbole_llmhni.llm.client import OpenAIBackend, run_bounded
from recbole_llmhni.llm.errors import LLMError, LLMUnavailableError
from recbole_llmhni.llm.ledger import CallPlan, Ledger, Prices, estimate_chat_tokens
from recbole_llmhni.llm.prompts import LABELS, UNPARSED, PromptSet, parse_rating, response_format
from recbole_llmhni.llm.settings import LLMSettings

__all__ = ["RatingRequest", "Rating", "Rater", "SemanticRater", "OpenAIRater", "VIEW_LABELS"]

logger = logging.getLogger("recbole_llmhni.llm")

#: every value a view can take
VIEW_LABELS = LABELS + (UNPARSED,)

Messages = List[Dict[str, str]]


@dataclass(frozen=True)
class RatingRequest:
    """One candidate pair to rate. Ids are RecBole *raw* tokens.

    ``liked_item_profiles`` are the profiles of the user's L best-scored liked items (the
    item-centric view). ``user_relevance`` = s(u, i) and ``item_relevance`` = mean s(j, i)
    over those liked items j are needed by the semantic rater only.
    """

    user_id: str
    item_id: str
    user_profile: str = ""
    item_profile: str = ""
    liked_item_profiles: Sequence[str] = ()
    user_relevance: Optional[float] = None
    item_relevance: Optional[float] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_id", str(self.user_id))
        object.__setattr__(self, "item_id", str(self.item_id))
        object.__setattr__(self, "liked_item_profiles", tuple(self.liked_item_profiles))


@dataclass(frozen=True)
class Rating:
    """The two views of one pair, each ``High``, ``Medium``, ``Low`` or ``unparsed``."""

    user_id: str
    item_id: str
    user_view: str
    item_view: str

    @property
    def is_hard(self) -> bool:
        """Both views ``High`` (an unparsed view never is)."""
        return self.user_view == "High" and self.item_view == "High"

    @property
    def is_unparsed(self) -> bool:
        return self.user_view == UNPARSED or self.item_view == UNPARSED

    def to_dict(self) -> Dict[str, Any]:
        return {
            "user_id": self.user_id,
            "item_id": self.item_id,
            "user_view": self.user_view,
            "item_view": self.item_view,
            "hard": self.is_hard,
        }


class Rater(ABC):
    """Pairs in, :class:`Rating` per pair out (same order)."""

    #: backend and model, e.g. ``openai/gpt-4o``; says "stand-in" for the semantic rater
    name: str = "rater"
    #: True for a rater that is not an LLM (the semantic stand-in)
    is_stand_in: bool = False

    def __init__(self, ledger: Optional[Ledger] = None) -> None:
        self.ledger = ledger or Ledger()

    @abstractmethod
    def rate(self, requests: Sequence[RatingRequest]) -> List[Rating]:
        """Rate every request; the result has one :class:`Rating` per request, in order."""

    @abstractmethod
    def plan(self, requests: Sequence[RatingRequest]) -> CallPlan:
        """What :meth:`rate` would call and cost, without calling anything (the dry run)."""

    def close(self) -> None:
        """Release connections and files."""


# ---------------------------------------------------------------------------- semantic
class SemanticRater(Rater):
    """Offline stand-in for an LLM: each view from semantic relevance and two thresholds.

    A view's relevance ``s >= high`` is ``High``, ``s < low`` is ``Low``, anything between
    ``Medium``. The user-centric view uses ``(high, low)``, the item-centric view
    ``(item_high, item_low)`` (default: the same). ``note`` says where the thresholds came
    from (e.g. quantiles of the training positives' relevance) and is part of the name.
    """

    is_stand_in = True

    def __init__(self, high: float, low: float, ledger: Optional[Ledger] = None,
                 item_high: Optional[float] = None, item_low: Optional[float] = None, note: str = "") -> None:
        super().__init__(ledger)
        item_high = high if item_high is None else item_high
        item_low = low if item_low is None else item_low
        for view, (h, l) in (("user", (high, low)), ("item", (item_high, item_low))):
            if l > h:
                raise ValueError(f"semantic rater: {view} view's low threshold {l} is above its high threshold {h}.")
        self.high, self.low = float(high), float(low)
        self.item_high, self.item_low = float(item_high), float(item_low)
        if (self.item_high, self.item_low) == (self.high, self.low) and not note:
            self.name = f"semantic-stand-in(high={self.high:g},low={self.low:g})"
        else:
            self.name = (f"semantic-stand-in(user high={self.high:.4g},low={self.low:.4g}; "
                         f"item high={self.item_high:.4g},low={self.item_low:.4g}{'; ' + note if note else ''})")
        self._announced = False

    @staticmethod
    def _label(relevance: float, high: float, low: float) -> str:
        if relevance >= high:
            return "High"
        if relevance < low:
            return "Low"
        return "Medium"

    def label(self, relevance: float) -> str:
        """The user-centric view's label of ``relevance``."""
        return self._label(relevance, self.high, self.low)

    def item_label(self, relevance: float) -> str:
        """The item-centric view's label of ``relevance``."""
        return self._label(relevance, self.item_high, self.item_low)

    def rate(self, requests: Sequence[RatingRequest]) -> List[Rating]:
        if not self._announced:
            logger.warning(
                "rating with %s: an offline STAND-IN for an LLM rater; both views are derived "
                "from semantic relevance thresholds, not from a language model",
                self.name,
            )
            self._announced = True
        ratings = []
        for index, request in enumerate(requests):
            values = (request.user_relevance, request.item_relevance)
            if any(v is None or not math.isfinite(float(v)) for v in values):
                raise ValueError(
                    f"semantic rater: request #{index} (user {request.user_id!r}, item "
                    f"{request.item_id!r}) has user_relevance={values[0]!r}, item_relevance="
                    f"{values[1]!r}; both must be finite numbers. Compute them with the alignment "
                    "stage (s(u,i) and the mean s(j,i) over the liked items), or set llmhni_rater=openai."
                )
            ratings.append(
                Rating(request.user_id, request.item_id, self.label(float(values[0])), self.item_label(float(values[1])))
            )
        return ratings

    def plan(self, requests: Sequence[RatingRequest]) -> CallPlan:
        return CallPlan(
            stage="label",
            backend="semantic",
            model=self.name,
            items=2 * len(requests),
            cached=0,
            calls=0,
            est_prompt_tokens=0,
            est_completion_tokens=0,
            prices=Prices(0.0, 0.0),
            budget_usd=self.ledger.budget_usd,
            notes=("offline stand-in for an LLM: no API calls, no cost",),
        )


# ---------------------------------------------------------------------------- openai
@dataclass
class _View:
    """A view still to be answered: where its chain of turns stands."""

    base_key: str
    messages: Messages
    attempt: int = 0  # repair turns so far


@dataclass
class _Prepared:
    view_keys: List[Tuple[str, str]]  # per request: (user view key, item view key)
    labels: Dict[str, str]  # base key -> final label, for views resolved from the cache
    pending: List[_View] = field(default_factory=list)


class OpenAIRater(Rater):
    """LLM rater over chat completions; see the module docstring.

    Args:
        settings: the ``llmhni_*`` settings.
        cache: the answer cache (shared with other stages is fine).
        ledger: tokens, cost, budget; a new one if omitted.
        backend: the API access (tests may pass one with a seeded jitter source).
        prompts: the templates (default: ``llmhni_prompt_dir`` or the packaged ones).
        owns_cache: close ``cache`` in :meth:`close`.
    """

    BACKEND = "openai-chat"

    def __init__(
        self,
        settings: LLMSettings,
        cache: LLMCache,
        ledger: Optional[Ledger] = None,
        backend: Optional[OpenAIBackend] = None,
        prompts: Optional[PromptSet] = None,
        owns_cache: bool = False,
    ) -> None:
        super().__init__(ledger or Ledger(settings.budget_usd))
        self.settings = settings
        self.cache = cache
        self._owns_cache = owns_cache
        self.model = settings.rater_model
        self.backend = backend or OpenAIBackend(settings, self.ledger)
        self.prompts = prompts or PromptSet.load(settings.prompt_dir)
        params: Dict[str, Any] = {"temperature": settings.temperature, "max_tokens": settings.max_tokens}
        fmt = response_format(settings.response_format)
        if fmt is not None:
            params["response_format"] = fmt
        self.params = params
        self.name = f"openai/{self.model}"
        #: outcome of the last :meth:`rate`: views, from_cache, asked, unparsed
        self.last_counts: Dict[str, int] = {}

    # ---- keys and the cached chain of turns
    def key(self, messages: Sequence[Mapping[str, str]]) -> str:
        """Cache key of one call: hash of backend, model, messages and parameters."""
        return cache_key(self.BACKEND, self.model, list(messages), self.params)

    def _follow(self, view: _View, first: str) -> Optional[str]:
        """Walk ``view``'s turns through the cache; the final label, or ``None`` if a call is missing.

        ``first`` is the cached answer of the first turn (looked up in bulk). Only views whose
        answers did not parse have further turns to look up. On ``None``, ``view`` is left at
        the first turn that has no cached answer.
        """
        answer: Optional[str] = first
        while True:
            if answer is None:
                cached = self.cache.get_call(self.key(view.messages))
                if cached is None:
                    return None
                answer = cached.response
            label = parse_rating(answer)
            if label is not None:
                return label
            if view.attempt >= self.settings.unparsed_retries:
                return UNPARSED
            view.messages = self.prompts.repair_messages(view.messages, answer)
            view.attempt += 1
            answer = None

    def _prepare(self, requests: Sequence[RatingRequest]) -> _Prepared:
        messages_by_key: Dict[str, Messages] = {}
        view_keys: List[Tuple[str, str]] = []
        for request in requests:
            user_msgs = self.prompts.user_messages(request.user_profile, request.item_profile)
            item_msgs = self.prompts.item_messages(request.liked_item_profiles, request.item_profile)
            keys = (self.key(user_msgs), self.key(item_msgs))
            messages_by_key.setdefault(keys[0], user_msgs)
            messages_by_key.setdefault(keys[1], item_msgs)
            view_keys.append(keys)
        cached = self.cache.get_calls(list(messages_by_key))
        prepared = _Prepared(view_keys=view_keys, labels={})
        for key, messages in messages_by_key.items():
            view = _View(key, messages)
            hit = cached.get(key)
            label = None if hit is None else self._follow(view, hit.response)
            if label is None:
                prepared.pending.append(view)
            else:
                prepared.labels[key] = label
        return prepared

    # ---- the work of one view
    def _answer(self, view: _View, stop: threading.Event) -> str:
        """Ask (and re-ask) until the view's answer parses or the repair turns run out."""
        while True:
            key = self.key(view.messages)
            cached = self.cache.get_call(key)  # another process may have answered meanwhile
            if cached is not None:
                content = cached.response
                self.ledger.note("cache_hits")
            else:
                answer = self.backend.chat(self.model, view.messages, self.params, stop)
                self.cache.put_call(
                    key,
                    self.BACKEND,
                    self.model,
                    {"messages": view.messages, "params": self.params},
                    answer.content,
                    UsageRecord(
                        run_id=self.ledger.run_id,
                        backend=self.BACKEND,
                        model=self.model,
                        kind="chat",
                        n_inputs=1,
                        prompt_tokens=answer.prompt_tokens,
                        completion_tokens=answer.completion_tokens,
                        cost_usd=answer.cost_usd,
                        usage_reported=answer.usage_reported,
                    ),
                )
                content = answer.content
            label = parse_rating(content)
            if label is not None:
                self.ledger.note("views_answered")
                return label
            self.ledger.note("answers_not_parsed")
            if view.attempt >= self.settings.unparsed_retries:
                self.ledger.note("views_answered")
                return UNPARSED
            view.messages = self.prompts.repair_messages(view.messages, content)
            view.attempt += 1

    # ---- batch mode and batch files
    def _sink(self) -> ChatSink:
        return ChatSink(self.cache, self.BACKEND, self.model, self.ledger.run_id)

    def _batch_requests(self, pending: Sequence[_View]) -> Dict[str, Dict[str, Any]]:
        """``{cache key: {"messages", "params"}}`` of the calls the pending views need next."""
        out: Dict[str, Dict[str, Any]] = {}
        for view in pending:
            out.setdefault(self.key(view.messages), {"messages": view.messages, "params": self.params})
        return out

    def _rate_batch(self, requests: Sequence[RatingRequest], prepared: _Prepared) -> Dict[str, str]:
        """Labels of every view through Batch API rounds: one round per turn still missing."""
        runner = BatchRunner(self.settings, self.cache, self.ledger, self.backend, self.backend.chat_prices)
        from_cache = len(prepared.labels)
        for turn in range(self.settings.unparsed_retries + 1):
            if not prepared.pending:
                break
            runner.run(self._sink(), self._batch_requests(prepared.pending), desc=f"rating turn {turn + 1}")
            prepared = self._prepare(requests)
        if prepared.pending:  # cannot happen: each turn answers every pending view's next call
            raise LLMUnavailableError(f"{len(prepared.pending)} views still unanswered after the batch rounds")
        self.ledger.note("views_answered", len(prepared.labels) - from_cache)
        return dict(prepared.labels)

    def pending_batch(self, requests: Sequence[RatingRequest]) -> Dict[str, Dict[str, Any]]:
        """The calls the cache still lacks for ``requests`` (next turn of every unresolved view)."""
        return self._batch_requests(self._prepare(requests).pending)

    def export_batch(self, requests: Sequence[RatingRequest], path: Any) -> int:
        """Write the missing calls as batch input lines (``custom_id`` = cache key); how many."""
        from pathlib import Path

        from recbole_llmhni.artifacts.files import atomic_write_text

        sink = self._sink()
        lines = [json.dumps(request_line(key, CHAT_URL, sink.body(request)), ensure_ascii=False) + "\n"
                 for key, request in self.pending_batch(requests).items()]
        atomic_write_text(Path(path), "".join(lines))
        return len(lines)

    def import_batch(self, requests: Sequence[RatingRequest], path: Any) -> ParsedResults:
        """Join a batch output file (OpenAI or ``vllm run-batch``) into the cache.

        Only lines answering a call that ``requests`` still needs are stored (others are
        counted as ``batch_lines_unknown``); charged at the batch prices.
        """
        from pathlib import Path

        text = Path(path).read_text(encoding="utf-8")
        runner = BatchRunner(self.settings, self.cache, self.ledger, self.backend, self.backend.chat_prices)
        return runner.join(self._sink(), None, self.pending_batch(requests), [text])

    # ---- public
    def rate(self, requests: Sequence[RatingRequest]) -> List[Rating]:
        prepared = self._prepare(requests)
        labels = dict(prepared.labels)
        n_views = len(prepared.labels) + len(prepared.pending)
        logger.info(
            "rating %d pairs with %s: %d distinct views, %d answered from the cache, %d to ask%s",
            len(requests), self.name, n_views, len(prepared.labels), len(prepared.pending),
            " (Batch API)" if self.settings.llm_mode == "batch" and prepared.pending else "",
        )
        self.ledger.note("views_from_cache", len(prepared.labels))
        if self.settings.llm_mode == "batch":
            labels = self._rate_batch(requests, prepared) if prepared.pending else labels
            return self._finish(requests, prepared, labels, n_views)
        answered_before = self.ledger.counters["views_answered"]
        try:
            results = run_bounded(
                prepared.pending,
                self._answer,
                self.settings.max_concurrency,
                desc=f"rating with {self.model}",
                show_progress=self.settings.show_progress,
                unit="view",
            )
        except LLMError as exc:
            done = len(prepared.labels) + self.ledger.counters["views_answered"] - answered_before
            raise type(exc)(f"{exc} [{done} of {n_views} views answered so far]") from None
        for view, label in zip(prepared.pending, results):
            if label is None:  # only when stopped, which raised above
                raise RuntimeError(f"view {view.base_key} was not answered")
            labels[view.base_key] = label
        return self._finish(requests, prepared, labels, n_views)

    def _finish(self, requests: Sequence[RatingRequest], prepared: _Prepared, labels: Mapping[str, str],
                n_views: int) -> List[Rating]:
        ratings = [
            Rating(r.user_id, r.item_id, labels[uk], labels[ik]) for r, (uk, ik) in zip(requests, prepared.view_keys)
        ]
        unparsed = sum(1 for label in labels.values() if label == UNPARSED)
        self.last_counts = {
            "views": n_views,
            "from_cache": len(prepared.labels),
            "asked": len(prepared.pending),
            "unparsed": unparsed,
        }
        if unparsed:
            logger.warning("%d of %d views did not parse after %d repair turns; recorded as unparsed",
                           unparsed, n_views, self.settings.unparsed_retries)
        return ratings

    def plan(self, requests: Sequence[RatingRequest]) -> CallPlan:
        prepared = self._prepare(requests)
        n_views = len(prepared.labels) + len(prepared.pending)
        return CallPlan(
            stage="label",
            backend=self.BACKEND,
            model=self.model,
            items=n_views,
            cached=len(prepared.labels),
            calls=len(prepared.pending),
            est_prompt_tokens=sum(estimate_chat_tokens(v.messages) for v in prepared.pending),
            est_completion_tokens=self.settings.max_tokens * len(prepared.pending),
            prices=self._prices(),
            budget_usd=self.ledger.budget_usd,
            notes=self._mode_notes() + (
                f"completion tokens counted at llmhni_max_tokens={self.settings.max_tokens} per call (an upper bound)",
                f"an answer that does not parse is asked again, up to {self.settings.unparsed_retries} more calls",
                f"identical views are asked once; {len(requests):,} pairs give {n_views:,} distinct views",
            ),
        )

    def _prices(self) -> Prices:
        if self.settings.llm_mode == "batch":
            return batch_prices(self.backend.chat_prices, self.settings.batch_price_factor)
        return self.backend.chat_prices

    def _mode_notes(self) -> Tuple[str, ...]:
        if self.settings.llm_mode != "batch":
            return ()
        return (f"Batch API: prices x {self.settings.batch_price_factor:g} (llmhni_batch_price_factor); "
                "answers within the batch's 24 h window",)

    def close(self) -> None:
        self.backend.close()
        if self._owns_cache:
            self.cache.close()

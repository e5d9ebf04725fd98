"""Errors of the LLM access layer. Every message is built with :func:`redact` (no API key)."""
from __future__ import annotations

__all__ = ["LLMError", "LLMRequestError", "LLMUnavailableError", "BudgetExceededError"]


class LLMError(RuntimeError):
    """Base class: an LLM stage could not finish. Answers received so far are cached."""


class LLMRequestError(LLMError):
    """The server refused a request for good (HTTP 400/401/403/404/422 ...): retrying cannot help."""


class LLMUnavailableError(LLMError):
    """A request still failed after every retry (429, 5xx, timeouts, dropped connections)."""


class BudgetExceededError(LLMError):
    """The next call could exceed ``llmhni_budget_usd``; the run stopped before making it."""

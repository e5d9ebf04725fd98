"""Keep the API key out of every message, log line and file.

The key is registered once, when a client resolves it (:meth:`LLMSettings.resolve_api_key`).
From then on :func:`redact` replaces it (and its ``Bearer`` form) in any text. Errors raised
by the OpenAI SDK can carry the key in URLs, headers or a server's echo of the request, so the
client wrapper turns every SDK error into a message built with :func:`redact` and raises it
``from None``, dropping the original exception (and its traceback text) from the chain.
:class:`RedactingFormatter` does the same for log handlers the CLI installs.
"""
from __future__ import annotations

import logging
import threading
from typing import Set

__all__ = ["register_secret", "redact", "RedactingFormatter", "MASK"]

MASK = "[REDACTED]"
_MIN_SECRET_LENGTH = 6  # shorter "keys" (e.g. "EMPTY") are placeholders, not secrets
_secrets: Set[str] = set()
_lock = threading.Lock()


def register_secret(secret: str) -> None:
    """Mask ``secret`` from now on in everything :func:`redact` sees."""
    if secret and len(secret) >= _MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(secret)


def redact(text: object) -> str:
    """``str(text)`` with every registered secret replaced by :data:`MASK`."""
    message = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in message:
            message = message.replace(secret, MASK)
    return message


class RedactingFormatter(logging.Formatter):
    """A formatter whose output (message, arguments and traceback) passes through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

"""Log records of one package logger to stderr for the duration of a sub-command."""
from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator, Optional

__all__ = ["stderr_logging"]


@contextlib.contextmanager
def stderr_logging(logger_name: str, quiet: bool, formatter: Optional[logging.Formatter] = None) -> Iterator[None]:
    """Send ``logger_name``'s records (INFO and up, WARNING and up when ``quiet``) to stderr only."""
    log = logging.getLogger(logger_name)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter or logging.Formatter("%(message)s"))
    saved = (log.level, log.propagate)
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]

"""Command-line helpers shared by the sub-commands: ``KEY=VALUE`` settings and RecBole's argv."""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Dict, Iterable, Iterator, Optional

import yaml

__all__ = ["parse_key_values", "isolated_argv"]


def parse_key_values(items: Iterable[str], allowed: Optional[Iterable[str]] = None) -> Dict[str, Any]:
    """``["a=1", "--b=[1, 2]"]`` -> ``{"a": 1, "b": [1, 2]}``: values parsed as YAML.

    A leading ``--`` is dropped (``--key=value``, as RecBole's command line writes it, and
    ``--set key=value`` both work). With ``allowed``, any other key is a one-line error.
    """
    known = None if allowed is None else set(allowed)
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE (or --KEY=VALUE), got {item!r}")
        if known is not None and key not in known:
            raise ValueError(f"{key!r} is not a key of this command; use one of: {', '.join(sorted(known))}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key] = value
    return out


@contextlib.contextmanager
def isolated_argv() -> Iterator[None]:
    """RecBole's Config reads every ``--key=value`` of ``sys.argv``; commands pass their keys explicitly."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved

"""The plugin's defaults, read from the one place they live: ``properties/overall.yaml``.

:func:`config_get` is the one accessor for plugin code: ``config[key]`` when the config
(RecBole's ``Config`` or any mapping) holds a value, else the shipped default of an
``llmhni_*`` key, else ``default``.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Dict

import yaml

__all__ = ["PROPERTIES_DIR", "OVERALL_YAML", "plugin_defaults", "model_defaults", "config_get", "neg_mode_of"]

PROPERTIES_DIR = Path(__file__).resolve().parents[1] / "properties"
OVERALL_YAML = PROPERTIES_DIR / "overall.yaml"


def _yaml_loader() -> type:
    """RecBole's YAML loader (it reads ``1e-05`` as a float, as RecBole does)."""
    from recbole.config.configurator import Config

    return Config._build_yaml_loader(None)


@lru_cache(maxsize=1)
def plugin_defaults() -> Dict[str, Any]:
    """``{llmhni_key: default}`` from ``properties/overall.yaml`` (read once)."""
    try:
        loader = _yaml_loader()
    except Exception:  # noqa: BLE001  (RecBole not importable: plain YAML reads these keys the same)
        loader = yaml.SafeLoader
    document = yaml.load(OVERALL_YAML.read_text(encoding="utf-8"), Loader=loader) or {}
    return {k: v for k, v in document.items() if k.startswith("llmhni_")}


@lru_cache(maxsize=None)
def model_defaults(model: str) -> Dict[str, Any]:
    """The keys of a plugin model's ``properties/model/<model>.yaml`` (``{}`` if it has none)."""
    path = PROPERTIES_DIR / "model" / f"{model}.yaml"
    if not path.is_file():
        return {}
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader()) or {}


_MISSING = object()


def config_get(config: Any, key: str, default: Any = None) -> Any:
    """``config[key]`` if present and not ``None``; else the shipped default of a plugin key; else ``default``."""
    try:
        value = config[key] if key in config else None
    except (KeyError, TypeError):
        value = None
    if value is not None:
        return value
    shipped = plugin_defaults().get(key, _MISSING) if key.startswith("llmhni_") else _MISSING
    return default if shipped is _MISSING or shipped is None else shipped


def neg_mode_of(config: Any) -> str:
    """``llmhni_neg_mode`` as a run uses it: the value set, else (``~``, the shipped default) the
    model's own: its class's ``default_neg_mode`` (``semantic`` for the LLMHNI models), or
    ``uniform`` (RecBole's sampled negatives, as ``train_neg_sample_args`` says) for any other."""
    value = config_get(config, "llmhni_neg_mode")
    if value is not None:
        return value
    return getattr(getattr(config, "model_class", None), "default_neg_mode", "uniform")

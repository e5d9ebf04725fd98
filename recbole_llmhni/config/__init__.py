"""Configuration: the plugin's keys, their defaults, their checks, and RecBole's Config with them.

* :mod:`.schema` -- what each ``llmhni_*`` key may hold;
* :mod:`.defaults` -- the defaults, read from ``properties/overall.yaml`` (their one home),
  and :func:`config_get`, the one accessor;
* :mod:`.validate` -- :func:`validate`, run when the config is built;
* :mod:`.recbole_config` -- :class:`LLMHNIConfig`, RecBole's ``Config`` with the plugin's
  models and YAML layered in (imported lazily: it imports RecBole).
"""
from recbole_llmhni._lazy import lazy_getattr
from recbole_llmhni.config.defaults import PROPERTIES_DIR, config_get, plugin_defaults
from recbole_llmhni.config.validate import ConfigError, validate

__all__ = ["LLMHNIConfig", "PROPERTIES_DIR", "ConfigError", "config_get", "plugin_defaults", "validate"]

__getattr__ = lazy_getattr(__name__, {"LLMHNIConfig": "recbole_llmhni.config.recbole_config"})

"""Model registry: plugin models first, then every RecBole built-in general recommender.

Plugin models are listed by name with the module that defines them and imported only when
asked for, so ``--model=BPR`` never imports the LLM stack. A name that is neither a plugin
model nor a RecBole general recommender raises :class:`UnknownModelError`, listing the
known names (RecBole's own ``get_model`` raises a misleading ImportError about lightgbm).
"""
from __future__ import annotations

import importlib
import inspect
from functools import lru_cache
from typing import Dict, List, Type

__all__ = ["PLUGIN_MODELS", "UnknownModelError", "get_model", "is_plugin_model", "known_models"]

#: plugin model name -> module defining a class of that name
PLUGIN_MODELS: Dict[str, str] = {
    "BackboneLightGCN": "recbole_llmhni.models.backbones",
    "BackboneNGCF": "recbole_llmhni.models.backbones",
    "LLMHNI_LightGCN": "recbole_llmhni.models.llmhni",
    "LLMHNI_NGCF": "recbole_llmhni.models.llmhni",
    "SimGCL": "recbole_llmhni.models.simgcl",
    "XSimGCL": "recbole_llmhni.models.simgcl",
    "RLMRec_Con": "recbole_llmhni.models.rlmrec",
    "RLMRec_Gen": "recbole_llmhni.models.rlmrec",
    "WBPR_LightGCN": "recbole_llmhni.models.denoisers",
    "WBPR_NGCF": "recbole_llmhni.models.denoisers",
    "TCE_LightGCN": "recbole_llmhni.models.denoisers",
    "TCE_NGCF": "recbole_llmhni.models.denoisers",
    "RCE_LightGCN": "recbole_llmhni.models.denoisers",
    "RCE_NGCF": "recbole_llmhni.models.denoisers",
    "BOD_LightGCN": "recbole_llmhni.models.denoisers",
    "BOD_NGCF": "recbole_llmhni.models.denoisers",
    "DCF_LightGCN": "recbole_llmhni.models.denoisers",
    "DCF_NGCF": "recbole_llmhni.models.denoisers",
}


class UnknownModelError(ValueError):
    """``--model`` names no plugin model and no RecBole general recommender."""


@lru_cache(maxsize=1)
def _recbole_general_models() -> Dict[str, Type]:
    from recbole.model.abstract_recommender import GeneralRecommender

    module = importlib.import_module("recbole.model.general_recommender")
    return {
        name: cls
        for name, cls in vars(module).items()
        if inspect.isclass(cls) and issubclass(cls, GeneralRecommender) and cls is not GeneralRecommender
    }


def is_plugin_model(name: str) -> bool:
    return name in PLUGIN_MODELS


def known_models() -> List[str]:
    """Plugin models, then RecBole's general recommenders, each group sorted."""
    return sorted(PLUGIN_MODELS) + sorted(_recbole_general_models())


def get_model(name: str) -> Type:
    """Resolve a model name to its class (plugin first, then RecBole)."""
    if name in PLUGIN_MODELS:
        return getattr(importlib.import_module(PLUGIN_MODELS[name]), name)
    builtin = _recbole_general_models().get(name)
    if builtin is not None:
        return builtin
    lowered = {known.lower(): known for known in known_models()}
    hint = f" Did you mean '{lowered[name.lower()]}'?" if name.lower() in lowered else ""
    raise UnknownModelError(
        f"Unknown model '{name}'.{hint} Known models: plugin: {', '.join(sorted(PLUGIN_MODELS))}; "
        f"RecBole general recommenders: {', '.join(sorted(_recbole_general_models()))}."
    )

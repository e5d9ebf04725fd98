"""Models of recbole-llmhni. Submodules load on first attribute access (no torch at import)."""
from importlib import import_module

_EXPORTS = {
    "GraphRecommender": "recbole_llmhni.models.graph_recommender",
    "BackboneLightGCN": "recbole_llmhni.models.backbones",
    "BackboneNGCF": "recbole_llmhni.models.backbones",
    "LLMHNI_LightGCN": "recbole_llmhni.models.llmhni",
    "LLMHNI_NGCF": "recbole_llmhni.models.llmhni",
    "LightGCNPropagation": "recbole_llmhni.models.propagation",
    "NGCFPropagation": "recbole_llmhni.models.propagation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'recbole_llmhni.models' has no attribute {name!r}")

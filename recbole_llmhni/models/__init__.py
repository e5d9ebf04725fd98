"""Models of recbole-llmhni. Submodules load on first attribute access (no torch at import)."""
from recbole_llmhni._lazy import lazy_getattr
from recbole_llmhni.registry import PLUGIN_MODELS

_EXPORTS = {
    **PLUGIN_MODELS,  # every plugin model, from its one list
    "GraphRecommender": "recbole_llmhni.models.graph_recommender",
    "LightGCNPropagation": "recbole_llmhni.models.propagation",
    "NGCFPropagation": "recbole_llmhni.models.propagation",
    "LLMHNIInputs": "recbole_llmhni.models.inputs",
    "DenoisedEdges": "recbole_llmhni.models.inputs",
    "PairState": "recbole_llmhni.models.sample_state",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)

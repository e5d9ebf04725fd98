"""Models of recbole-llmhni. Submodules load on first attribute access (no torch at import)."""
from recbole_llmhni._lazy import lazy_getattr

_EXPORTS = {
    "GraphRecommender": "recbole_llmhni.models.graph_recommender",
    "BackboneLightGCN": "recbole_llmhni.models.backbones",
    "BackboneNGCF": "recbole_llmhni.models.backbones",
    "LLMHNI_LightGCN": "recbole_llmhni.models.llmhni",
    "LLMHNI_NGCF": "recbole_llmhni.models.llmhni",
    "SimGCL": "recbole_llmhni.models.simgcl",
    "XSimGCL": "recbole_llmhni.models.simgcl",
    "RLMRec_Con": "recbole_llmhni.models.rlmrec",
    "RLMRec_Gen": "recbole_llmhni.models.rlmrec",
    "LightGCNPropagation": "recbole_llmhni.models.propagation",
    "NGCFPropagation": "recbole_llmhni.models.propagation",
    "LLMHNIInputs": "recbole_llmhni.models.inputs",
    "DenoisedEdges": "recbole_llmhni.models.inputs",
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
    "PairState": "recbole_llmhni.models.sample_state",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)

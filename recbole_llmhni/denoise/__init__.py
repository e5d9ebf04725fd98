"""LLMHNI's denoising stages S4-S7 and the S8 losses.

* :mod:`.pretrain` (S4): ``Rec_pre``, the backbone trained on G with plain BPR.
* :mod:`.candidates` (S5): high-score negatives and low-score positives per user.
* :mod:`.rating` (S6): dual rating of every candidate through :mod:`recbole_llmhni.llm`.
* :mod:`.rewrite` (S7): G' = G - noisy low-score positives + hard high-score negatives.
* :mod:`.report`: identification quality against injected noise.
* :mod:`.pipeline`: :func:`build_denoised_graph`, S4 -> S7 with artifact reuse.
* :mod:`.losses` (S8): :func:`cross_graph_infonce` (L_de) and :func:`view_contrast` (L_hal).

Submodules load on first attribute access.
"""
from recbole_llmhni._lazy import lazy_getattr

_EXPORTS = {
    "build_denoised_graph": "recbole_llmhni.denoise.pipeline",
    "DenoisePipeline": "recbole_llmhni.denoise.pipeline",
    "DenoisedGraph": "recbole_llmhni.denoise.pipeline",
    "DEFAULTS": "recbole_llmhni.denoise.pipeline",
    "EdgeList": "recbole_llmhni.denoise.rewrite",
    "rewrite_edges": "recbole_llmhni.denoise.rewrite",
    "Relevance": "recbole_llmhni.denoise.rating",
    "EmbeddingRelevance": "recbole_llmhni.denoise.rating",
    "identification_report": "recbole_llmhni.denoise.report",
    "format_report": "recbole_llmhni.denoise.report",
    "info_nce": "recbole_llmhni.denoise.losses",
    "cross_graph_infonce": "recbole_llmhni.denoise.losses",
    "view_contrast": "recbole_llmhni.denoise.losses",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)

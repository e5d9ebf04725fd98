"""LLMHNI's denoising stages S4-S7.

* :mod:`.pretrain` (S4): ``Rec_pre``, the backbone trained on G with plain BPR.
* :mod:`.candidates` (S5): high-score negatives and low-score positives per user.
* :mod:`.rating` (S6): dual rating of every candidate through :mod:`recbole_llmhni.llm`.
* :mod:`.rewrite` (S7): G' = G - noisy low-score positives + hard high-score negatives.
* :mod:`.report`: identification quality against injected noise.
The stages are run, with artifact reuse, by :class:`recbole_llmhni.pipeline.LLMHNIPipeline`;
S8's losses are in :mod:`recbole_llmhni.models.losses`.

Submodules load on first attribute access.
"""
from recbole_llmhni._lazy import lazy_getattr

_EXPORTS = {
    "EdgeList": "recbole_llmhni.denoise.rewrite",
    "rewrite_edges": "recbole_llmhni.denoise.rewrite",
    "Relevance": "recbole_llmhni.denoise.rating",
    "EmbeddingRelevance": "recbole_llmhni.denoise.rating",
    "identification_report": "recbole_llmhni.denoise.report",
    "format_report": "recbole_llmhni.denoise.report",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)

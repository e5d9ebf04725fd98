"""Semantic relevance of LLMHNI (stages S1-S3).

* :mod:`~recbole_llmhni.semantic.alignment`: S2, the projection MLP trained by InfoNCE on
  pseudo-labels from the training interactions.
* :mod:`~recbole_llmhni.semantic.store`: S1 and S2 as cached stages keyed by raw ids (run by
  :class:`recbole_llmhni.pipeline.LLMHNIPipeline`).
* :mod:`~recbole_llmhni.semantic.sampling`: S3, semantic-guided hard negatives inside the
  training step, vectorised over the batch.
* :mod:`~recbole_llmhni.semantic.negative_loader`: the same S3 as a train loader, for any
  pairwise RecBole model (``llmhni_neg_mode: semantic`` / ``dns``).
* :mod:`~recbole_llmhni.semantic.check`: the alignment check (Recall@K of raw cosine,
  popularity and aligned relevance on a held-out split).
"""
from recbole_llmhni._lazy import lazy_getattr

_EXPORTS = {
    "AlignmentSettings": "recbole_llmhni.semantic.alignment",
    "train_alignment": "recbole_llmhni.semantic.alignment",
    "pseudo_labels": "recbole_llmhni.semantic.alignment",
    "encode_profiles": "recbole_llmhni.semantic.store",
    "aligned_embeddings": "recbole_llmhni.semantic.store",
    "SemanticInputs": "recbole_llmhni.semantic.store",
    "NEG_MODES": "recbole_llmhni.semantic.sampling",
    "TrainingPositives": "recbole_llmhni.semantic.sampling",
    "draw_candidates": "recbole_llmhni.semantic.sampling",
    "select_negatives": "recbole_llmhni.semantic.sampling",
    "per_user_quantile": "recbole_llmhni.semantic.sampling",
    "alignment_check_on_splits": "recbole_llmhni.semantic.check",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)

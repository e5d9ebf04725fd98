"""``make_encoder`` / ``make_rater``: the configured encoder and rater from ``llmhni_*`` keys.

Both accept any mapping (a dict, RecBole's ``Config``); missing keys take the defaults in
:mod:`recbole_llmhni.llm.settings`. Pass ``cache`` / ``ledger`` to share one SQLite cache or
one budget between stages; by default each gets the cache in ``llmhni_cache_dir`` and its
own ledger with ``llmhni_budget_usd``.
"""
from __future__ import annotations

from typing import Any, Optional

from recbole_llmhni.llm.cache import LLMCache
from recbole_llmhni.llm.encoders import (
    BUNDLED_MODEL,
    CachedTextEncoder,
    Encoder,
    OpenAIEmbeddingEncoder,
    SentenceTransformerEncoder,
)
from recbole_llmhni.llm.ledger import Ledger
from recbole_llmhni.llm.precomputed import PrecomputedEncoder
from recbole_llmhni.llm.raters import OpenAIRater, Rater, SemanticRater
from recbole_llmhni.llm.settings import LLMSettings

__all__ = ["make_encoder", "make_rater"]


def _settings(config: Any) -> LLMSettings:
    return config if isinstance(config, LLMSettings) else LLMSettings.from_config(config)


def make_encoder(config: Any, cache: Optional[LLMCache] = None, ledger: Optional[Ledger] = None) -> Encoder:
    """The encoder ``llmhni_encoder`` names (sentence-transformers, openai or precomputed)."""
    settings = _settings(config)
    if settings.encoder == "precomputed":
        return PrecomputedEncoder(settings.precomputed_user_emb, settings.precomputed_item_emb)
    owns_cache = cache is None
    cache = cache or LLMCache.in_dir(settings.cache_dir)
    encoder: CachedTextEncoder
    if settings.encoder == "openai":
        encoder = OpenAIEmbeddingEncoder(settings, cache, ledger or Ledger(settings.budget_usd))
    else:
        encoder = SentenceTransformerEncoder(
            cache,
            model=settings.encoder_model or BUNDLED_MODEL,
            batch_size=settings.encoder_batch_size,
            device=settings.encoder_device,
            show_progress=settings.show_progress,
            runtime=settings.encoder_backend,
        )
    encoder.owns_cache = owns_cache
    return encoder


def make_rater(config: Any, cache: Optional[LLMCache] = None, ledger: Optional[Ledger] = None) -> Rater:
    """The rater ``llmhni_rater`` names (openai, or the semantic stand-in)."""
    settings = _settings(config)
    ledger = ledger or Ledger(settings.budget_usd)
    if settings.rater == "semantic":
        if settings.semantic_thresholds != "absolute":
            raise ValueError(
                "llmhni_semantic_thresholds=quantile: the stand-in's thresholds are quantiles of the training "
                "positives' relevance, calibrated by the pipeline (recbole_llmhni.denoise.calibrate); set "
                "llmhni_semantic_thresholds=absolute to give relevance values instead."
            )
        return SemanticRater(settings.semantic_high, settings.semantic_low, ledger)
    if settings.rater == "oracle":
        raise ValueError("llmhni_rater=oracle is a simulated rater built by the pipeline from the injected noise "
                         "(recbole_llmhni.denoise.simulated); it has no standalone form.")
    if cache is None:
        return OpenAIRater(settings, LLMCache.in_dir(settings.cache_dir), ledger, owns_cache=True)
    return OpenAIRater(settings, cache, ledger)

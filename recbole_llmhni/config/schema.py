"""What every ``llmhni_*`` key may hold: type, range, allowed names. Never a default.

Defaults live in the shipped ``properties/overall.yaml`` only (:mod:`.defaults`); this table
says what a value must look like, so :func:`~recbole_llmhni.config.validate.validate` can
refuse a bad one with one line before any stage runs. A test keeps this table and the YAML
naming the same keys.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

__all__ = ["Spec", "KEYS", "ENCODERS", "ENCODER_BACKENDS", "PROFILELESS_USERS", "RATERS", "SEMANTIC_THRESHOLDS", "RESPONSE_FORMATS", "NEG_MODES", "BACKBONES", "ADJ_LAYOUTS",
           "LLM_MODES",
           "DENOISER_KEYS"]

ENCODERS = ("sentence-transformers", "openai", "precomputed")
ENCODER_BACKENDS = ("torch", "onnx", "onnx-int8")
PROFILELESS_USERS = ("compose", "item_mean")
RATERS = ("semantic", "openai", "oracle")
SEMANTIC_THRESHOLDS = ("quantile", "absolute")
RESPONSE_FORMATS = ("json_schema", "json_object_schema", "json_object", "none")
NEG_MODES = ("uniform", "dns", "semantic")
BACKBONES = ("BackboneLightGCN", "BackboneNGCF")
ADJ_LAYOUTS = ("csr", "coo")
LLM_MODES = ("online", "batch")


@dataclass(frozen=True)
class Spec:
    """The allowed values of one key.

    ``kind`` is ``int``, ``float``, ``bool`` or ``str``; ``low`` / ``high`` bound numbers
    (``low_open`` / ``high_open`` make a bound exclusive); ``choices`` lists the allowed
    strings; ``nullable`` admits ``None`` (YAML ``~``); ``words``: strings a number key also
    takes (``auto`` for ``llmhni_fn_quantile`` and ``llmhni_neg_candidates``).
    """

    kind: type
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    choices: Tuple[str, ...] = ()
    nullable: bool = False
    words: Tuple[str, ...] = ()

    def describe(self) -> str:
        """What is allowed, in words: ``an integer >= 1``, ``one of: csr, coo``, ..."""
        if self.choices:
            text = "one of: " + ", ".join(self.choices)
        else:
            text = {int: "an integer", float: "a number", bool: "True or False", str: "a string"}[self.kind]
            bounds = []
            if self.low is not None:
                bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
            if self.high is not None:
                bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
            if bounds:
                text += " " + " and ".join(bounds)
        if self.words:
            text += " or " + " or ".join(self.words)
        return text + (" (or ~ for none)" if self.nullable else "")

    def accepts(self, value: Any) -> Tuple[bool, Any]:
        """``(ok, normalised value)``: ints given as whole floats (``1e3``) become ints."""
        if value is None:
            return self.nullable, None
        if self.kind is bool:
            return isinstance(value, bool), value
        if self.kind is str:
            if not isinstance(value, str):
                return False, value
            if self.choices:
                matched = {c.lower(): c for c in self.choices}.get(value.strip().lower())
                return matched is not None, matched
            return True, value
        if isinstance(value, str) and value.strip().lower() in self.words:
            return True, value.strip().lower()
        if isinstance(value, str):  # "2.5" from a quoted YAML value or an environment variable
            try:
                value = float(value)
            except ValueError:
                return False, value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                return False, value
            value = int(value)
        else:
            value = float(value)
        if value != value:  # NaN
            return False, value
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False, value
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False, value
        return True, value


def _int(low: Optional[float] = None, high: Optional[float] = None, nullable: bool = False) -> Spec:
    return Spec(int, low=low, high=high, nullable=nullable)


def _float(low: Optional[float] = None, high: Optional[float] = None, low_open: bool = False,
           high_open: bool = False, nullable: bool = False) -> Spec:
    return Spec(float, low=low, high=high, low_open=low_open, high_open=high_open, nullable=nullable)


def _choice(choices: Tuple[str, ...], nullable: bool = False) -> Spec:
    return Spec(str, choices=choices, nullable=nullable)


BOOL = Spec(bool)
STR = Spec(str)
OPTIONAL_STR = Spec(str, nullable=True)
POSITIVE = _float(0, low_open=True)
NON_NEGATIVE = _float(0)

#: every plugin key, grouped as in ``properties/overall.yaml``
KEYS: Dict[str, Spec] = {
    # data
    "llmhni_artifact_dir": STR,
    "llmhni_profile_history_len": _int(0),
    "llmhni_profileless_users": _choice(PROFILELESS_USERS),
    "llmhni_noise_ratio": _float(0, 1),
    "llmhni_noise_seed": _int(),
    # backbones
    "llmhni_adj_layout": _choice(ADJ_LAYOUTS),
    # S1 encoders, S6 raters, API access
    "llmhni_encoder": _choice(ENCODERS),
    "llmhni_encoder_model": OPTIONAL_STR,
    "llmhni_encoder_backend": _choice(ENCODER_BACKENDS),
    "llmhni_encoder_batch_size": _int(1),
    "llmhni_encoder_dimensions": _int(1, nullable=True),
    "llmhni_encoder_device": OPTIONAL_STR,
    "llmhni_precomputed_user_emb": OPTIONAL_STR,
    "llmhni_precomputed_item_emb": OPTIONAL_STR,
    "llmhni_price_per_1k_embedding": NON_NEGATIVE,
    "llmhni_rater": _choice(RATERS),
    "llmhni_rater_model": STR,
    "llmhni_temperature": _float(0, 2),
    "llmhni_max_tokens": _int(1),
    "llmhni_response_format": _choice(RESPONSE_FORMATS),
    "llmhni_prompt_dir": OPTIONAL_STR,
    "llmhni_unparsed_retries": _int(0),
    "llmhni_semantic_thresholds": _choice(SEMANTIC_THRESHOLDS),
    "llmhni_semantic_high": _float(),
    "llmhni_semantic_low": _float(),
    "llmhni_oracle_accuracy": _float(0, 1),
    "llmhni_price_per_1k_prompt": NON_NEGATIVE,
    "llmhni_price_per_1k_completion": NON_NEGATIVE,
    "llmhni_api_base_url": OPTIONAL_STR,
    "llmhni_api_key": OPTIONAL_STR,
    "llmhni_api_key_env": STR,
    "llmhni_max_concurrency": _int(1),
    "llmhni_max_retries": _int(0),
    "llmhni_request_timeout": POSITIVE,
    "llmhni_backoff_base": NON_NEGATIVE,
    "llmhni_backoff_max": NON_NEGATIVE,
    "llmhni_budget_usd": _float(0, nullable=True),
    "llmhni_cache_dir": STR,
    "llmhni_llm_mode": _choice(LLM_MODES),
    "llmhni_batch_price_factor": NON_NEGATIVE,
    "llmhni_batch_poll_interval": POSITIVE,
    "llmhni_batch_poll_max": POSITIVE,
    "llmhni_batch_max_lines": _int(1),
    "llmhni_batch_max_rounds": _int(1),
    # S2 alignment
    "llmhni_align_top_n": _int(1),
    "llmhni_align_hidden_size": _int(1),
    "llmhni_align_output_size": _int(1),
    "llmhni_align_shared": BOOL,
    "llmhni_align_epochs": _int(1),
    "llmhni_align_learning_rate": POSITIVE,
    "llmhni_align_temperature": POSITIVE,
    "llmhni_align_batch_size": _int(1),
    # S3 sampling
    "llmhni_neg_mode": _choice(NEG_MODES, nullable=True),
    "llmhni_neg_candidates": Spec(int, low=1, words=("auto",)),
    "llmhni_neg_topk": _int(1),
    "llmhni_fn_quantile": Spec(float, low=0, high=1, words=("auto",)),
    "llmhni_use_alignment": BOOL,
    # S4-S7 denoising
    "llmhni_denoise": BOOL,
    "llmhni_pretrain_epochs": _int(1),
    "llmhni_pretrain_backbone": _choice(BACKBONES, nullable=True),
    "llmhni_cand_kn": _int(0),
    "llmhni_cand_kp": _int(0),
    "llmhni_cand_max_pairs": _int(0),
    "llmhni_liked_items": _int(1),
    "llmhni_score_batch_size": _int(1),
    # S8
    "llmhni_lambda1": NON_NEGATIVE,
    "llmhni_lambda2": NON_NEGATIVE,
    "llmhni_cl_temperature": POSITIVE,
    "llmhni_edge_drop_rate": _float(0, 1, high_open=True),
    "llmhni_cl_eps": NON_NEGATIVE,
    "llmhni_cl_nodes": _int(0),
    "llmhni_cl_scale_ref": NON_NEGATIVE,
    "llmhni_cl_every": _int(1),
    "llmhni_warm_start": BOOL,
    # run records
    "llmhni_result_file": OPTIONAL_STR,
}


#: the denoising baselines' own keys (``WBPR_*``, ``TCE_*``, ``RCE_*``, ``BOD_*``, ``DCF_*``):
#: model hyper-parameters, like RecBole's ``n_layers``, so unprefixed; their defaults live in
#: the models' YAMLs (``properties/model/<MODEL>.yaml``), never here.
DENOISER_KEYS: Dict[str, Spec] = {
    "wbpr_alpha": NON_NEGATIVE,
    "tce_eps_max": _float(0, 1, high_open=True),
    "tce_eps_n": _int(1),
    "rce_beta": NON_NEGATIVE,
    "bod_generator_lr": POSITIVE,
    "bod_generator_hidden": _int(1),
    "bod_generator_reg": NON_NEGATIVE,
    "bod_outer_every": _int(1),
    "dcf_eps_max": _float(0, 1, high_open=True),
    "dcf_eps_n": _int(1),
    "dcf_co_lambda": _float(0, 1, high_open=True),
    "dcf_relabel_ratio": _float(0, 1),
    "dcf_time_step": _int(1),
}

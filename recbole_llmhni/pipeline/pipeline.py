r"""S1-S7 as one explicit pipeline that runs before the model is built.

::

    result = LLMHNIPipeline(config).run(train_dataset, valid_dataset)
    train_dataset.llmhni_inputs = result.model_inputs()       # what the model copies
    model = LLMHNI_LightGCN(config, train_dataset)            # reads arrays only

Data flows one way, each stage reading only what the stages before it produced:

=============  ====================================================  =============================
stage          computes                                              key digests
=============  ====================================================  =============================
S1 encode      profile embeddings (:mod:`recbole_llmhni.semantic.store`)  encoder, profiles by raw id
S2 align       :math:`z'` (:mod:`recbole_llmhni.semantic.alignment`)      S1 key, training edges, settings
S3 calibrate   :math:`q` of ``llmhni_fn_quantile: auto``                  S2 key, training and validation
               (:mod:`recbole_llmhni.semantic.calibration`)               edges, grid, seed
S4 pretrain    ``Rec_pre`` (:mod:`recbole_llmhni.denoise.pretrain`)       backbone, hyperparameters, epochs,
                                                                          training edges
S3 candidates  :math:`M` of ``llmhni_neg_candidates: auto``               S4 key, training and validation
               (:mod:`recbole_llmhni.semantic.candidate_calibration`)     edges, grid, budget, seed
S5 candidates  high-score negatives, low-score positives                 S4 key, k_n, k_p, cap, L
S6 rate        dual ratings (:mod:`recbole_llmhni.denoise.rating`)        S5 key, rater identity, every
                                                                          request's content
S7 rewrite     :math:`G'` with provenance, identification report          S6 key
=============  ====================================================  =============================

(S3's sampling and S8 run inside training; "S3 calibrate" and "S3 candidates" are the stages
that read the validation split, and only with ``llmhni_fn_quantile: auto`` /
``llmhni_neg_candidates: auto``: never the test split. "S3 candidates" reads S4's ``Rec_pre``,
so it runs after S4, and S4 runs for it even where denoising is off.) Every stage's output is a stage directory of
:mod:`recbole_llmhni.artifacts.store`, so a stage runs only when its artifact is missing; S4 is
not even loaded when S5's artifact exists, the rater is not built when S6's does, and the
encoder is not called when S1's does: a second run trains nothing, rates nothing, encodes
nothing. A killed run resumes at the stage it stopped in (LLM answers already paid for are in
the LLM cache). Stages the config does not use are ``off``:

* S3 calibrate unless ``llmhni_neg_mode: semantic`` and ``llmhni_fn_quantile: auto`` (it then
  leaves no report at all, so the stage list of a fixed-:math:`q` run is S1, S2, S4-S7);
  likewise S3 candidates unless ``llmhni_neg_mode`` is ``dns`` or ``semantic`` and
  ``llmhni_neg_candidates: auto``;
* S1-S2 when neither S3 (``llmhni_neg_mode: semantic``) nor the semantic stand-in rater needs
  :math:`s(u, i)`; S2 alone with ``llmhni_use_alignment: False``;
* S4-S7 with ``llmhni_denoise: False`` (S4 still runs for ``llmhni_warm_start``);
* S4-S7 with ``sampler_only`` (a run of BPR, SGL, ... with ``llmhni_neg_mode: semantic``,
  which reads S1-S2 in the S3 train loader only: :mod:`recbole_llmhni.semantic.negative_loader`);
* everything but S1 for a model whose class sets ``profile_embeddings_only`` (RLMRec, which
  maps S1's raw profile embeddings with its own MLP: :mod:`recbole_llmhni.models.rlmrec`).

Each stage logs one line (what was reused or computed, where, how long) and leaves a
:class:`~recbole_llmhni.pipeline.results.StageReport`; :meth:`LLMHNIPipeline.run` returns them
with the arrays in a :class:`~recbole_llmhni.pipeline.results.PipelineResult`.

The encoder, the rater and the trainer of ``Rec_pre`` can be passed in (tests, custom
backends); by default they come from the config (:func:`recbole_llmhni.llm.make_encoder`,
:func:`recbole_llmhni.llm.make_rater`, :func:`recbole_llmhni.denoise.pretrain.train_rec_pre`).
"""
from __future__ import annotations

import json
import time
from logging import getLogger
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from recbole_llmhni.artifacts import StageDir, atomic_write_json, digest, edges_fingerprint
from recbole_llmhni.config.defaults import config_get, neg_mode_of
from recbole_llmhni.denoise import calibrate
from recbole_llmhni.denoise import candidates as s5
from recbole_llmhni.denoise import pretrain as s4
from recbole_llmhni.denoise import rating as s6
from recbole_llmhni.denoise import rewrite as s7
from recbole_llmhni.denoise.report import format_report, identification_report
from recbole_llmhni.denoise.simulated import OracleRater
from recbole_llmhni.pipeline.results import DenoisedGraph, PipelineResult, StageReport
from recbole_llmhni.semantic.store import SemanticInputs, aligned_embeddings, encode_profiles

__all__ = ["LLMHNIPipeline", "StagePlan", "STAGE_ORDER"]

logger = getLogger("recbole_llmhni.pipeline")

#: The order of the stage reports (:attr:`PipelineResult.reports`): "S3 candidates" reads S4's ``Rec_pre``.
STAGE_ORDER = ("S1 encode", "S2 align", "S3 calibrate", "S4 pretrain", "S3 candidates", "S5 candidates", "S6 rate",
               "S7 rewrite")

RecPreTrainer = Callable[[Any, Any, Dict[str, Any]], torch.nn.Module]


class StagePlan:
    """Which stages a config uses (see the module docstring); ``rater``: one passed in, if any."""

    def __init__(self, config: Any, rater: Any = None, sampler_only: bool = False) -> None:
        self.denoise = bool(config_get(config, "llmhni_denoise"))
        self.warm_start = bool(config_get(config, "llmhni_warm_start"))
        if rater is not None:
            self.semantic_rater = bool(getattr(rater, "is_stand_in", False))
        else:
            self.semantic_rater = config_get(config, "llmhni_rater") in ("semantic", "oracle")
        self.s3_semantic = neg_mode_of(config) == "semantic"
        self.aligned = bool(config_get(config, "llmhni_use_alignment"))
        self.s3_calibrate = self.s3_semantic and config_get(config, "llmhni_fn_quantile") == "auto"
        self.s3_candidates = (neg_mode_of(config) in ("dns", "semantic")
                              and config_get(config, "llmhni_neg_candidates") == "auto")
        self.semantic = self.s3_semantic or (self.denoise and self.semantic_rater)
        # models that read S1's profile embeddings and nothing else (RLMRec): S1 only
        self.profiles_only = bool(getattr(getattr(config, "model_class", None), "profile_embeddings_only", False))
        if self.profiles_only:
            self.semantic, self.aligned, self.s3_semantic, self.s3_candidates = True, False, False, False
            self.denoise = self.warm_start = self.semantic_rater = False
        # for the S3 train loader of another model (BPR, SGL, ... with llmhni_neg_mode: semantic): S1-S2 only
        self.sampler_only = bool(sampler_only)
        if self.sampler_only:
            self.denoise = self.warm_start = self.semantic_rater = False
            self.semantic = self.s3_semantic

    def as_dict(self) -> Dict[str, bool]:
        return dict(vars(self))


class LLMHNIPipeline:
    """S1-S7 for one run's config on one training split (see the module docstring).

    Args:
        config: the run's Config (or any mapping with the ``llmhni_*`` keys and RecBole's).
        encoder: S1's encoder (default ``make_encoder(config)``, closed after use).
        rater: S6's rater (default ``make_rater(config)``); its ``name`` stands for its identity
            in S6's key.
        rec_pre_trainer: ``(config, train_dataset, material) -> model`` for S4 (default
            :func:`recbole_llmhni.denoise.pretrain.train_rec_pre`).
        sampler_only: the stages the S3 train loader of a model other than LLMHNI reads (S1-S2,
            S3 calibrate), S4-S7 off (:func:`recbole_llmhni.quick_start.prepare_run` sets it).
    """

    def __init__(self, config: Any, encoder: Any = None, rater: Any = None,
                 rec_pre_trainer: Optional[RecPreTrainer] = None, sampler_only: bool = False) -> None:
        self.config = config
        self.plan = StagePlan(config, rater, sampler_only)
        self._encoder = encoder
        self._rater = rater
        self._train_rec_pre: RecPreTrainer = rec_pre_trainer or s4.train_rec_pre
        self.show_progress = bool(config_get(config, "show_progress", False))
        self.reports: List[StageReport] = []

    # ------------------------------------------------------------------ bookkeeping
    def _report(self, stage: str, status: str, started: Optional[float] = None, path: Any = None, **details: Any) -> StageReport:
        seconds = 0.0 if started is None else time.perf_counter() - started
        report = StageReport(stage, status, seconds, None if path is None else str(path), details)
        self.reports.append(report)
        logger.info(report.line())
        return report

    # ------------------------------------------------------------------ run
    def run(self, train: Any, valid: Any = None) -> PipelineResult:
        """Run (or reuse) every stage the config uses on the training split ``train``.

        ``valid``: the validation split, read only by "S3 calibrate" (``llmhni_fn_quantile: auto``)
        and "S3 candidates" (``llmhni_neg_candidates: auto``).
        """
        for needed, key in ((self.plan.s3_calibrate, "llmhni_fn_quantile"), (self.plan.s3_candidates, "llmhni_neg_candidates")):
            if needed and valid is None:
                raise ValueError(f"{key}=auto is chosen on the validation split: call "
                                 f"LLMHNIPipeline(config).run(train, valid), or set {key} to a number")
        self.reports = []
        started = time.perf_counter()
        result = PipelineResult(self.reports)
        inputs = SemanticInputs.from_dataset(train) if self.plan.semantic else None
        if inputs is not None:
            raw = self._encode(inputs)
            result.raw_user, result.raw_item = raw.user, raw.item
            if self.plan.aligned:
                aligned = self._align(inputs, raw)
                result.semantic_user, result.semantic_item = aligned.user, aligned.item
                semantic_key = aligned.stage.key
            else:
                reason = (f"{config_get(self.config, 'model', 'the model')} maps S1's vectors itself"
                          if self.plan.profiles_only else "llmhni_use_alignment=False: s(u,i) is the raw cosine")
                self._report("S2 align", "off", reason=reason)
                result.semantic_user, result.semantic_item = raw.user, raw.item
                semantic_key = raw.stage.key
            if self.plan.s3_calibrate:
                result.fn_quantile = self._calibrate(train, valid, result, semantic_key)
        else:
            for stage in ("S1 encode", "S2 align"):
                self._report(stage, "off", reason="no stage needs s(u,i)")

        denoiser = _Denoiser(self, train)
        if self.plan.s3_candidates:
            result.neg_candidates = self._choose_candidates(denoiser, valid)
        if self.plan.warm_start:
            result.rec_pre_state = {k: v.detach().cpu() for k, v in denoiser.rec_pre().named_parameters()}
        if self.plan.denoise:
            relevance = (result.semantic_user, result.semantic_item) if self.plan.semantic_rater else None
            result.graph = denoiser.run(relevance)
        else:
            for stage in ("S4 pretrain", "S5 candidates", "S6 rate", "S7 rewrite"):
                if not any(r.stage == stage for r in self.reports):
                    self._report(stage, "off", reason="the model reads S1's profile embeddings only"
                                 if self.plan.profiles_only else "S3 train loader only (not an LLMHNI model)"
                                 if self.plan.sampler_only else "llmhni_denoise=False: G' = G")
        # one order whatever ran when (S4 is loaded by S3 candidates when that stage computes, by S5 otherwise)
        self.reports.sort(key=lambda r: STAGE_ORDER.index(r.stage) if r.stage in STAGE_ORDER else len(STAGE_ORDER))
        logger.info(f"pipeline S1-S7 ready in {time.perf_counter() - started:.1f} s")
        return result

    # ------------------------------------------------------------------ S1, S2
    def _encode(self, inputs: SemanticInputs):
        started = time.perf_counter()
        owned = self._encoder is None
        if owned:
            from recbole_llmhni.llm import make_encoder

            encoder = make_encoder(self.config)
        else:
            encoder = self._encoder
        try:
            raw = encode_profiles(self.config, inputs, encoder)
        finally:
            if owned and hasattr(encoder, "close"):
                encoder.close()
        self._report(
            "S1 encode", "reused" if raw.reused else "computed", started, raw.stage.path,
            encoder=raw.encoder_name, users=len(inputs.user_tokens), items=len(inputs.item_tokens), dim=int(raw.user.shape[1]),
            summary=f"{len(inputs.user_tokens):,} user and {len(inputs.item_tokens):,} item profiles, {raw.encoder_name} (dim {raw.user.shape[1]})",
        )
        return raw

    def _align(self, inputs: SemanticInputs, raw):
        started = time.perf_counter()
        aligned = aligned_embeddings(self.config, inputs, raw)
        losses = aligned.meta.get("losses") or []
        summary = f"{aligned.meta.get('n_pseudo_pairs', 0):,} pseudo-labels"
        if losses:
            summary += f", InfoNCE {losses[0]:.4f} -> {losses[-1]:.4f}"
        self._report("S2 align", "reused" if aligned.reused else "computed", started, aligned.stage.path,
                     n_pseudo_pairs=aligned.meta.get("n_pseudo_pairs"), final_loss=losses[-1] if losses else None,
                     summary=summary)
        return aligned

    def _json_stage(self, kind: str, name: str, material: Dict[str, Any],
                    compute: Callable[[], Dict[str, Any]]) -> Tuple[StageDir, Dict[str, Any], str]:
        """A stage whose artifact is one JSON file: ``(stage, content, "reused" | "computed")``."""
        stage = StageDir(self.config, kind, digest(material))
        if stage.is_complete():
            return stage, json.loads(stage.file(name).read_text(encoding="utf-8")), "reused"
        found = compute()
        atomic_write_json(stage.file(name), found)
        stage.complete(material)
        return stage, found, "computed"

    # ------------------------------------------------------------------ S3 calibrate
    def _calibrate(self, train: Any, valid: Any, result: PipelineResult, semantic_key: str) -> float:
        """``llmhni_fn_quantile: auto``: :math:`q` from training + validation pairs (cached)."""
        from recbole_llmhni.semantic.calibration import PER_POSITIVE, QUANTILE_GRID, calibrate_fn_quantile

        started = time.perf_counter()
        train_users, train_items = train.train_edges()
        valid_users = np.asarray(valid.inter_feat[valid.uid_field].numpy(), dtype=np.int64)
        valid_items = np.asarray(valid.inter_feat[valid.iid_field].numpy(), dtype=np.int64)
        user_tokens = np.asarray(train.field2id_token[train.uid_field], dtype=str)
        item_tokens = np.asarray(train.field2id_token[train.iid_field], dtype=str)
        material = {
            "semantic": semantic_key,
            "train": edges_fingerprint(user_tokens[train_users], item_tokens[train_items]),
            "valid": edges_fingerprint(user_tokens[valid_users], item_tokens[valid_items]),
            "grid": list(QUANTILE_GRID), "per_positive": PER_POSITIVE,
            "seed": int(config_get(self.config, "seed", 0) or 0),
            "rule": "min pi(1-TPR) + (1-pi)FPR; positives = validation pairs (sorted), negatives = random unobserved",
        }
        stage, found, status = self._json_stage("s3_calibrate", "calibration.json", material, lambda: calibrate_fn_quantile(
            result.semantic_user, result.semantic_item, train_users, train_items, valid_users, valid_items,
            material["seed"]).as_dict())
        rates = ", ".join(f"q={r['q']:g}: TPR {r['tpr']:.3f} FPR {r['fpr']:.3f} R {r['risk']:.4f}" for r in found["rates"])
        self._report("S3 calibrate", status, started, stage.path, fn_quantile=found["fn_quantile"], auc=found["auc"],
                     rates=found["rates"],
                     prior=found["prior"],
                     summary=f"llmhni_fn_quantile=auto -> {found['fn_quantile']:g} (AUC {found['auc']:.3f}, "
                             f"base rate {found['prior']:.4f}; {rates})")
        return float(found["fn_quantile"])

    # ------------------------------------------------------------------ S3 candidates
    def _choose_candidates(self, denoiser: "_Denoiser", valid: Any) -> int:
        """``llmhni_neg_candidates: auto``: :math:`M` from ``Rec_pre``'s scores on training + validation pairs (cached)."""
        from recbole_llmhni.semantic.candidate_calibration import (
            CANDIDATE_GRID, FALSE_NEGATIVE_BUDGET, MAX_USERS, calibrate_candidates)

        started = time.perf_counter()
        st4, _ = denoiser._s4_stage()
        valid_users = np.asarray(valid.inter_feat[valid.uid_field].numpy(), dtype=np.int64)
        valid_items = np.asarray(valid.inter_feat[valid.iid_field].numpy(), dtype=np.int64)
        material = {
            "rec_pre": st4.key, "train": denoiser.edges_fp,
            "valid": edges_fingerprint(denoiser.user_tokens[valid_users], denoiser.item_tokens[valid_items]),
            "grid": list(CANDIDATE_GRID), "budget": FALSE_NEGATIVE_BUDGET, "max_users": MAX_USERS,
            "seed": int(config_get(self.config, "seed", 0) or 0),
            "rule": "largest M with F(M) = P(hard pick is a validation positive) <= budget, per training row",
        }
        def compute() -> Dict[str, Any]:
            user_e, item_e = s4.propagated_embeddings(denoiser.rec_pre())  # S4 loaded only here
            return calibrate_candidates(user_e.cpu().numpy(), item_e.cpu().numpy(), denoiser.users, denoiser.items,
                                        valid_users, valid_items, material["seed"]).as_dict()

        stage, found, status = self._json_stage("s3_candidates", "candidates.json", material, compute)
        rates = ", ".join(f"M={r['M']}: {r['false_negative']:.4f}" for r in found["rates"])
        self._report("S3 candidates", status, started, stage.path, neg_candidates=found["neg_candidates"],
                     rates=found["rates"], budget=found["budget"],
                     summary=f"llmhni_neg_candidates=auto -> {found['neg_candidates']} (share of hard picks that are "
                             f"validation positives, budget {found['budget']:g}: {rates})")
        return int(found["neg_candidates"])


class _Denoiser:
    """S4-S7 of one :class:`LLMHNIPipeline` run on one training split."""

    def __init__(self, pipeline: LLMHNIPipeline, train: Any) -> None:
        self.p = pipeline
        self.config = pipeline.config
        self.dataset = train
        self.users, self.items = train.train_edges()  # refuses anything but the training split
        self.n_items = int(train.item_num)
        self.user_tokens = np.asarray(train.field2id_token[train.uid_field], dtype=str)
        self.item_tokens = np.asarray(train.field2id_token[train.iid_field], dtype=str)
        self.edges_fp = edges_fingerprint(self.user_tokens[self.users], self.item_tokens[self.items])
        self._rec_pre: Optional[torch.nn.Module] = None

    def _token2id(self, kind: str, tokens: np.ndarray) -> np.ndarray:
        field = self.dataset.uid_field if kind == "user" else self.dataset.iid_field
        ids = self.dataset.token2id(field, list(map(str, tokens))) if len(tokens) else []
        return np.asarray(ids, dtype=np.int64).reshape(-1)

    # ------------------------------------------------------------------ S4
    def _s4_stage(self) -> Tuple[StageDir, Dict[str, Any]]:
        m4 = s4.pretrain_material(self.config, s4.backbone_name(self.config), self.edges_fp)
        return StageDir(self.config, "pretrain", digest(m4)), m4

    def rec_pre(self) -> torch.nn.Module:
        """S4's ``Rec_pre`` (eval mode): loaded from its artifact, or trained and saved."""
        if self._rec_pre is not None:
            return self._rec_pre
        st4, m4 = self._s4_stage()
        started = time.perf_counter()
        if st4.is_complete():
            model = s4.load_rec_pre(st4, self.config, self.dataset, m4)
            self.p._report("S4 pretrain", "reused", started, st4.path, backbone=m4["backbone"], epochs=m4["epochs"])
        else:
            logger.info(f"S4 pretrain: training {m4['backbone']} for {m4['epochs']} epochs on the training split")
            model = self.p._train_rec_pre(self.config, self.dataset, m4)
            s4.save_rec_pre(st4, model, self.dataset, m4)
            self.p._report("S4 pretrain", "computed", started, st4.path, backbone=m4["backbone"], epochs=m4["epochs"],
                           summary=f"{m4['backbone']}, {m4['epochs']} epochs of BPR on G")
        self._rec_pre = model
        return model

    # ------------------------------------------------------------------ S4-S7
    def run(self, relevance: Any) -> DenoisedGraph:
        cands, k5 = self._candidates()
        rated, k6 = self._ratings(cands, k5, relevance)
        return self._rewrite(rated, k6)

    def _candidates(self) -> Tuple[s5.Candidates, str]:
        settings = s5.candidate_settings(self.config)
        st4, _ = self._s4_stage()
        m5 = {"pretrain": st4.key, **settings, "cap_policy": "kind share, rank in user, extremity, raw ids"}
        st5 = StageDir(self.config, "candidates", digest(m5))
        if st5.is_complete():
            if not any(r.stage == "S4 pretrain" for r in self.p.reports):
                self.p._report("S4 pretrain", "skipped", None, st4.path, reason="S5's candidates are cached")
            started = time.perf_counter()
            cands = s5.load_candidates(st5, self._token2id)
            self.p._report("S5 candidates", "reused", started, st5.path, negatives=cands.n_neg, positives=cands.n_pos,
                           summary=f"{cands.n_neg:,} high-score negatives, {cands.n_pos:,} low-score positives")
            return cands, st5.key

        model = self.rec_pre()
        started = time.perf_counter()
        user_e, item_e = s4.propagated_embeddings(model)
        cands = s5.select_candidates(
            user_e, item_e, self.users, self.items, settings["kn"], settings["kp"], settings["liked"],
            batch_size=int(config_get(self.config, "llmhni_score_batch_size")), show_progress=self.p.show_progress,
        )
        n_before = len(cands)
        tiebreak = np.char.add(np.char.add(self.user_tokens[cands.users], "\t"), self.item_tokens[cands.items])
        cands = s5.cap_candidates(cands, settings["max_pairs"], settings["kn"], settings["kp"], tiebreak)
        s5.save_candidates(st5, cands, self.user_tokens, self.item_tokens, m5)
        capped = f", capped from {n_before:,} at llmhni_cand_max_pairs={settings['max_pairs']:,}" if len(cands) < n_before else ""
        self.p._report("S5 candidates", "computed", started, st5.path, negatives=cands.n_neg, positives=cands.n_pos,
                       uncapped=n_before,
                       summary=f"{cands.n_neg:,} high-score negatives, {cands.n_pos:,} low-score positives{capped}")
        return cands, st5.key

    def _stand_in(self, vectors: Any, cands: s5.Candidates) -> Any:
        """The semantic stand-in (thresholds calibrated on the training positives) or the oracle."""
        from recbole_llmhni.llm import LLMSettings, SemanticRater

        s = LLMSettings.from_config(self.config)
        if s.semantic_thresholds == "absolute":
            rater = SemanticRater(s.semantic_high, s.semantic_low)
        else:
            user_z, item_z = (np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v) for v in vectors)
            user_view, item_view = calibrate.positive_relevance(
                user_z, item_z, self.users, self.items, int(config_get(self.config, "llmhni_liked_items")),
                seed=int(config_get(self.config, "seed", 2020)),
            )
            t = calibrate.quantile_thresholds(user_view, item_view, s.semantic_high, s.semantic_low)
            rater = SemanticRater(t["user_high"], t["user_low"], item_high=t["item_high"], item_low=t["item_low"],
                                  note=f"quantiles {s.semantic_high:g}/{s.semantic_low:g} of the training positives")
        if s.rater != "oracle":
            return rater
        from recbole_llmhni.data.noise import read_pairs

        injected_file = getattr(self.dataset, "injected_pairs_file", None)
        if injected_file is None:
            raise ValueError("llmhni_rater=oracle needs injected noise (llmhni_noise_ratio > 0); none was injected")
        pos = np.flatnonzero(cands.is_pos)
        positives = zip(self.user_tokens[cands.users[pos]], self.item_tokens[cands.items[pos]])
        return OracleRater(rater, zip(*read_pairs(injected_file)), positives,
                           float(config_get(self.config, "llmhni_oracle_accuracy")), int(config_get(self.config, "seed", 2020)))

    def _ratings(self, cands: s5.Candidates, k5: str, relevance: Any) -> Tuple[s6.RatedCandidates, str]:
        started = time.perf_counter()
        vectors = relevance
        relevance = s6.as_relevance(relevance)
        requests, user_rel, item_rel = s6.build_requests(
            cands, int(config_get(self.config, "llmhni_liked_items")), self.dataset.user_profiles(),
            self.dataset.item_profiles(), self.user_tokens, self.item_tokens, relevance,
        )
        rater = self.p._rater
        owned = rater is None
        if owned and self.p.plan.semantic_rater:  # cheap to build: its name says everything its labels depend on
            rater = self._stand_in(vectors, cands)
        identity = {"rater_name": str(rater.name)} if rater is not None else s6.rater_identity(self.config)
        m6 = {"candidates": k5, "rater": identity, "requests": s6.requests_digest(requests)}
        st6 = StageDir(self.config, "ratings", digest(m6))
        if st6.is_complete():
            rated = s6.load_ratings(st6, self._token2id, liked=cands)
            self._rated_report("reused", started, st6, rated)
            return rated, st6.key

        if rater is None:
            from recbole_llmhni.llm import make_rater

            rater = make_rater(self.config)
        try:
            stand_in = bool(getattr(rater, "is_stand_in", False))
            if stand_in and relevance is None:
                raise ValueError(
                    "llmhni_rater=semantic (the offline stand-in) derives both ratings from s(u,i), "
                    "but the pipeline has no semantic vectors; set llmhni_rater=openai or enable S1-S2."
                )
            logger.info(f"S6 rate: {len(requests):,} pairs x 2 views with {rater.name}"
                        + (" (offline STAND-IN for an LLM)" if stand_in else ""))
            if not stand_in and callable(getattr(rater, "plan", None)):
                logger.info("S6 rate: what this costs (answers already cached are free):\n" + rater.plan(requests).format())
            rated = s6.rate_candidates(rater, cands, requests, user_rel, item_rel)
        finally:
            if owned:
                rater.close()
        s6.save_ratings(st6, rated, self.user_tokens, self.item_tokens, m6)
        self._rated_report("computed", started, st6, rated)
        return rated, st6.key

    def _rated_report(self, status: str, started: float, st6: StageDir, rated: s6.RatedCandidates) -> None:
        counts = {label: rated.count(label) for label in (s6.LABEL_HARD, s6.LABEL_NOISY, s6.LABEL_UNDETERMINED)}
        self.p._report("S6 rate", status, started, st6.path, rater=rated.rater, **counts,
                       summary=f"{len(rated.label):,} pairs by {rated.rater}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))

    def _rewrite(self, rated: s6.RatedCandidates, k6: str) -> DenoisedGraph:
        started = time.perf_counter()
        m7 = {"ratings": k6, "rule": "G - noisy low-score positives + hard high-score negatives"}
        st7 = StageDir(self.config, "graph", digest(m7))
        reused = st7.is_complete()
        if reused:
            add, remove = s7.load_changes(st7, self._token2id)
        else:
            to_add, to_remove = s7.edge_changes(rated)
            c = rated.cands
            add = s7.EdgeList(c.users[to_add], c.items[to_add])
            remove = s7.EdgeList(c.users[to_remove], c.items[to_remove])
        graph = s7.EdgeList(self.users, self.items)
        g_prime, added, removed = s7.rewrite_edges(graph, remove, add, self.n_items)
        n_train = int(len(np.unique(graph.keys(self.n_items))))

        injected_file = getattr(self.dataset, "injected_pairs_file", None)
        injected = None
        if injected_file is not None:
            from recbole_llmhni.data.noise import read_pairs

            injected = read_pairs(injected_file)
        report = identification_report(rated, self.user_tokens, self.item_tokens, n_train, len(added), len(removed),
                                       len(g_prime), injected)
        if not reused:
            extra = {"identification.json": json.dumps(report, indent=2) + "\n"} if injected is not None else {}
            s7.save_changes(st7, rated, self.user_tokens, self.item_tokens, m7, extra_files=extra,
                            n_train=n_train, n_denoised=len(g_prime))
        counts = {"train": n_train, "added": len(added), "removed": len(removed), "denoised": len(g_prime),
                  "candidates_neg": rated.cands.n_neg, "candidates_pos": rated.cands.n_pos,
                  **{label: rated.count(label) for label in (s6.LABEL_HARD, s6.LABEL_NOISY, s6.LABEL_UNDETERMINED)}}
        self.p._report("S7 rewrite", "reused" if reused else "computed", started, st7.path, counts=counts,
                       identification=report if injected is not None else None,
                       summary=f"G' has {len(g_prime):,} edges (+{len(added):,} hard negatives, -{len(removed):,} noisy positives)")
        if injected is not None:
            logger.info("\n" + format_report(report))
        return DenoisedGraph(g_prime.users, g_prime.items, added, removed, self.n_items, counts,
                             report, st7.path)

r"""S3 for any RecBole general recommender: a train loader that picks each row's negative.

RecBole's own hard negatives (``train_neg_sample_args: {dynamic: True, candidate_num: M}``)
live in its train loader: ``_neg_sampling`` draws :math:`M` candidates per row, scores them
with ``model.predict`` and keeps the best-scored (the trainer hands the loader the model with
``get_model``). :class:`S3TrainDataLoader` is RecBole's ``TrainDataLoader`` with that one
method replaced by the plugin's S3, so ``--model=BPR --llmhni_neg_mode=semantic`` (likewise
LightGCN, NGCF, SGL, NCL, the plugin's backbones, ...) trains on semantic-guided hard
negatives, and ``dns`` on score-only ones:

1. RecBole's sampler draws the row's usual negative (the fallback: never a training positive);
2. :func:`~recbole_llmhni.semantic.sampling.sample_negatives`, the *same* function the LLMHNI
   models call in-batch, draws :math:`M` = ``llmhni_neg_candidates`` uniform candidates (never
   a training positive), scores them with the model's ``predict`` (no gradient, in eval mode,
   as RecBole's DNS does), drops the likely false negatives :math:`s(u, j) > \theta_u`
   (``semantic``) and keeps the best-scored survivor (``llmhni_neg_topk``: the least relevant
   of the :math:`k` best).

:math:`s` and :math:`\theta_u` come from S1-S2 (and "S3 calibrate" with
``llmhni_fn_quantile: auto``) of :class:`recbole_llmhni.pipeline.LLMHNIPipeline`, run by
:func:`recbole_llmhni.quick_start.prepare_run` on the training split before the model is
built, exactly as for the LLMHNI models (cached under ``llmhni_artifacts/``). The config
check (:func:`recbole_llmhni.config.validate.check_neg_mode_fits`) refuses, in one line, a
model this cannot serve (pointwise input, no sampled negatives, a model that never reads
its sampled negative, RecBole's dynamic sampling on as well, a model drawing its own negatives).

Mode switches: scoring needs ``eval`` mode (dropout off), but some models redo work in
``train()`` (RecBole's SGL rebuilds its augmented graphs there), so the switch back to
training mode sets the flags through ``torch.nn.Module.train`` itself, not the model's
override: the model's own ``train()`` runs once per epoch, as the trainer calls it, not per
batch. Candidates come from a private generator seeded with ``seed``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.data.interaction import Interaction

from recbole_llmhni.config.defaults import config_get, neg_mode_of
from recbole_llmhni.semantic.candidate_calibration import candidates_in_use
from recbole_llmhni.semantic.sampling import (
    SELECTION_COUNTERS,
    SemanticFilter,
    TrainingPositives,
    false_negative_thresholds,
    read_sampling_stats,
    sample_negatives,
)

__all__ = ["S3TrainDataLoader", "uses_s3_loader"]


def uses_s3_loader(config: Any) -> bool:
    """Whether a run of ``config`` picks its negatives in :class:`S3TrainDataLoader`:
    ``llmhni_neg_mode`` is ``dns`` or ``semantic`` and the model does not do S3 itself."""
    model_class = getattr(config, "model_class", None)
    return neg_mode_of(config) in ("dns", "semantic") and not getattr(model_class, "samples_negatives_in_batch", False)


class S3TrainDataLoader(TrainDataLoader):
    """RecBole's ``TrainDataLoader`` whose negatives are chosen by S3 (module docstring).

    Args:
        config, dataset, sampler, shuffle: as RecBole's ``TrainDataLoader`` (the training split
            and its sampler).
        semantic_user, semantic_item: :math:`z'` of S1-S2, ``[n_U, d]`` / ``[n_I, d]``
            (``semantic`` mode).
        fn_quantile: the :math:`q` S3 calibrate chose (``llmhni_fn_quantile: auto``).
        neg_candidates: the :math:`M` S3 candidates chose (``llmhni_neg_candidates: auto``).
    """

    def __init__(self, config, dataset, sampler, shuffle: bool = False, semantic_user: Optional[np.ndarray] = None,
                 semantic_item: Optional[np.ndarray] = None, fn_quantile: Optional[float] = None,
                 neg_candidates: Optional[int] = None) -> None:
        super().__init__(config, dataset, sampler, shuffle=shuffle)
        self.neg_mode: str = neg_mode_of(config)
        self.neg_topk: int = int(config_get(config, "llmhni_neg_topk"))
        self.neg_candidates_setting = config_get(config, "llmhni_neg_candidates")  # a number, or "auto"
        self.neg_candidates: int = candidates_in_use(self.neg_candidates_setting, neg_candidates, self.neg_topk,
                                                     "S3 train loader")
        self.fn_quantile = config_get(config, "llmhni_fn_quantile")
        self.fn_quantile_used: Optional[float] = None
        self.n_items = int(dataset.item_num)
        users = torch.as_tensor(np.asarray(dataset.inter_feat[dataset.uid_field]), dtype=torch.long)
        items = torch.as_tensor(np.asarray(dataset.inter_feat[dataset.iid_field]), dtype=torch.long)
        self.positives = TrainingPositives(users, items, self.n_items)
        self.neg_generator = torch.Generator().manual_seed(int(config["seed"] or 0))
        self.sampling_stats = torch.zeros(len(SELECTION_COUNTERS), dtype=torch.long)
        self.semantic: Optional[SemanticFilter] = None
        if self.neg_mode == "semantic":
            if semantic_user is None or semantic_item is None:
                raise ValueError("llmhni_neg_mode=semantic needs the semantic vectors of S1-S2; the pipeline gave none")
            q = fn_quantile if self.fn_quantile == "auto" else self.fn_quantile
            if q is None:
                raise ValueError("llmhni_fn_quantile=auto needs the pipeline's S3 calibrate stage (run it with the "
                                 "validation split) or a number in [0, 1]")
            self.fn_quantile_used = float(q)
            user_z = torch.as_tensor(semantic_user, dtype=torch.float32)
            item_z = torch.as_tensor(semantic_item, dtype=torch.float32)
            self.semantic = SemanticFilter(user_z, item_z, false_negative_thresholds(
                user_z, item_z, self.positives, self.fn_quantile_used, int(dataset.user_num)))

    @classmethod
    def replacing(cls, loader: TrainDataLoader, config, inputs: Any = None) -> "S3TrainDataLoader":
        """An S3 loader over the split and sampler of RecBole's ``loader``; ``inputs``: the
        pipeline's :class:`~recbole_llmhni.models.inputs.LLMHNIInputs` (``semantic`` mode)."""
        return cls(config, loader._dataset, loader._sampler, shuffle=bool(config["shuffle"]),
                   semantic_user=getattr(inputs, "semantic_user", None), semantic_item=getattr(inputs, "semantic_item", None),
                   fn_quantile=getattr(inputs, "fn_quantile", None), neg_candidates=getattr(inputs, "neg_candidates", None))

    def _score(self, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``model.predict`` on every (row's user, candidate) pair: ``[B, M]`` on the CPU."""
        device = self.model.device
        interaction = Interaction({
            self.uid_field: users.repeat_interleave(candidates.shape[1]).to(device),
            self.iid_field: candidates.reshape(-1).to(device),
        })
        was_training = self.model.training
        torch.nn.Module.train(self.model, False)
        try:
            scores = self.model.predict(interaction)
        finally:
            torch.nn.Module.train(self.model, was_training)
        return scores.detach().float().reshape(candidates.shape).cpu()

    def _neg_sampling(self, inter_feat):
        if self.model is None:
            raise RuntimeError("S3TrainDataLoader scores candidates with the model: call loader.get_model(model) "
                               "before training (recbole_llmhni.quick_start.prepare_run does)")
        user_ids = inter_feat[self.uid_field].numpy()
        item_ids = inter_feat[self.iid_field].numpy()
        fallback = self._sampler.sample_by_user_ids(user_ids, item_ids, self.neg_sample_num)
        users = torch.as_tensor(np.tile(user_ids, self.neg_sample_num), dtype=torch.long)  # RecBole's row order
        negatives = sample_negatives(
            self.neg_mode, users, torch.as_tensor(fallback, dtype=torch.long), self._score, self.positives,
            self.n_items, self.neg_candidates, self.neg_topk, self.neg_generator, self.semantic, self.sampling_stats,
        )
        return self.sampling_func(inter_feat, negatives)

    def negative_sampling_stats(self, reset: bool = False) -> Dict[str, float]:
        """As the LLMHNI models' (:func:`~recbole_llmhni.semantic.sampling.sampling_shares`); ``{}`` for ``dns``."""
        return read_sampling_stats(self.neg_mode, self.sampling_stats, self.neg_candidates, reset)

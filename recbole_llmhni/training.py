"""The trainer of a run: RecBole's own for the model, recording every epoch as data.

:func:`make_trainer` returns RecBole's trainer for the model (``get_trainer``), made able to
load its checkpoints on today's torch (:func:`recbole_llmhni.compat.trusted_checkpoint_trainer`)
and extended by :class:`EpochRecorder`: after every training epoch it logs and records each
loss term (RecBole's loss tuple) and the mean L2 norm of the user and item embeddings (a
contrastive term that holds the ranking loss at ln 2 shows here as a norm that does not grow),
also to tensorboard; for a model with S3 counters (``negative_sampling_stats``), what the
semantic selection did that epoch (``negative_sampling``: share of rows where the
false-negative filter fired, where the choice differed from score-only DNS, ...); after every
evaluation, its time and score. ``trainer.epoch_records`` is what the run record (JSON) holds,
so benchmarks never read log text; :func:`sampling_summary` sums the epochs' counters.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import torch
from recbole.utils import get_trainer

from recbole_llmhni.compat import trusted_checkpoint_trainer

__all__ = ["EpochRecorder", "make_trainer", "embedding_norms", "sampling_summary"]


def embedding_norms(model: torch.nn.Module) -> Dict[str, float]:
    """Mean L2 norm of the rows of ``user_embedding`` and ``item_embedding`` (those the model has)."""
    out: Dict[str, float] = {}
    for side in ("user", "item"):
        table = getattr(model, f"{side}_embedding", None)
        if isinstance(table, torch.nn.Embedding):
            with torch.no_grad():
                out[f"{side}_embedding_norm"] = float(table.weight.norm(dim=1).mean())
    return out


class EpochRecorder:
    """Trainer mixin: one record per epoch in ``self.epoch_records`` (see the module docstring)."""

    epoch_records: List[Dict[str, Any]]

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if not hasattr(self, "epoch_records"):
            self.epoch_records = []
        started = time.perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        record: Dict[str, Any] = {"epoch": int(epoch_idx) + 1, "train_seconds": time.perf_counter() - started}
        terms = [float(t) for t in loss] if isinstance(loss, tuple) else [float(loss)]
        record["loss"] = sum(terms)
        record["loss_terms"] = terms
        record.update(embedding_norms(self.model))
        norms = {k: v for k, v in record.items() if k.endswith("_norm")}
        if norms:
            self.logger.info("epoch %d embedding norms: %s", epoch_idx, ", ".join(f"{k} {v:.4f}" for k, v in norms.items()))
            tensorboard = getattr(self, "tensorboard", None)
            for key, value in norms.items():
                if tensorboard is not None:
                    tensorboard.add_scalar(key.replace("_", " ").title().replace(" ", ""), value, epoch_idx)
        stats_of = getattr(self.model, "negative_sampling_stats", None) or getattr(train_data, "negative_sampling_stats", None)
        stats = stats_of(reset=True) if callable(stats_of) else {}
        if stats:
            record["negative_sampling"] = stats
            self.logger.info(
                "epoch %d S3: filter fired on %.2f%% of rows, choice differed from DNS on %.2f%%, "
                "%.2f%% of candidates dropped", epoch_idx, 100 * stats["fired_row_share"],
                100 * stats["changed_row_share"], 100 * stats["dropped_candidate_share"])
        self.epoch_records.append(record)
        return loss

    def _valid_epoch(self, valid_data, show_progress=False):
        started = time.perf_counter()
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        if getattr(self, "epoch_records", None):
            self.epoch_records[-1].update(valid_seconds=time.perf_counter() - started, valid_score=float(score))
        return score, result


def sampling_summary(model: Any, epoch_records: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The run record's ``negative_sampling``: S3's settings as used, and the epochs' counters summed.

    ``model``: what ran S3 (an LLMHNI model, or the S3 train loader of any other model).
    ``None`` for a model without S3 (a plain RecBole model). Shares are over all rows of all
    epochs (each epoch's share weighted by its rows).
    """
    if not hasattr(model, "neg_mode"):
        return None
    out: Dict[str, Any] = {"mode": model.neg_mode, "candidates": model.neg_candidates,
                           "candidates_setting": getattr(model, "neg_candidates_setting", None),
                           "topk": int(model.neg_topk), "fn_quantile": getattr(model, "fn_quantile_used", None),
                           "fn_quantile_setting": getattr(model, "fn_quantile", None)}
    epochs = [e["negative_sampling"] for e in epoch_records if e.get("negative_sampling")]
    rows = sum(e["rows"] for e in epochs)
    out["rows"] = rows
    for key in ("dropped_candidate_share", "fired_row_share", "all_dropped_row_share", "changed_row_share"):
        out[key] = sum(e[key] * e["rows"] for e in epochs) / rows if rows else None
    return out


def make_trainer(config: Any, model: torch.nn.Module, trainer_cls: Optional[type] = None) -> Any:
    """RecBole's trainer for ``config["model"]`` (or ``trainer_cls``), recording and checkpoint-safe."""
    base = trusted_checkpoint_trainer(trainer_cls or get_trainer(config["MODEL_TYPE"], config["model"]))
    recorder = type(base.__name__, (EpochRecorder, base), {"__qualname__": base.__qualname__})
    trainer = recorder(config, model)
    trainer.epoch_records = []
    return trainer

"""Result records: what a job's file holds, and the one view of it that the report reads.

A job's result file (``benchmarks/results/<suite>/<dataset>/<job>.json``) is the runner's
fields (suite, label, params, machine, command, status, wall time) plus the run record of
:func:`recbole_llmhni.quick_start.run_record`: ``test_result``, ``best_valid_result``,
``epochs`` (one record per training epoch, from the trainer), ``pipeline`` (the stage
reports of S1-S7 and S7's identification report), ... Nothing is read from log text.

Files written before the run record existed (``"test"``, ``"valid"`` and a ``"log"`` section
parsed from RecBole's log) are still read: :func:`view` maps both kinds onto the same keys.
"""
from __future__ import annotations

import statistics
from typing import Any, Dict, List, Optional

#: ``format`` of the files the runner writes now (files without the key are the older kind).
RECORD_FORMAT = 2
#: Stage statuses that mean the stage ran (or loaded its artifact) in this run.
RAN = ("computed", "reused")


def where(record: Dict[str, Any]) -> str:
    """``CPU`` or the GPU's short name (``NVIDIA H100 80GB HBM3`` -> ``H100``)."""
    gpu = (record.get("machine") or {}).get("gpu")
    return gpu.replace("NVIDIA ", "").split()[0] if gpu else "CPU"


def status_of(run_record: Dict[str, Any]) -> str:
    """How a finished run stopped: ``epoch cap`` or ``early stop``."""
    return "epoch cap" if run_record.get("epoch_cap_reached") else "early stop"


def median(values: List[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def view(record: Dict[str, Any]) -> Dict[str, Any]:
    """``record`` with the keys the report reads, the same for old and new files.

    Added (or replaced): ``test`` / ``valid`` (metric -> value, ``None`` if never evaluated),
    ``train_epoch_seconds`` / ``eval_seconds`` (the model's own epochs; S4's pretraining is
    not among them), ``stages`` (``{"S2 align": {"how": "reused", "seconds": 0.4}}``, the
    stages that ran) and ``ident`` (precision, recall, F1 of S6's noisy label, or ``{}``).
    """
    if int(record.get("format") or 1) < RECORD_FORMAT:
        return _view_old(record)
    epochs = record.get("epochs") or []
    pipeline = record.get("pipeline") or {}
    stages = {s["stage"]: {"how": s["status"], "seconds": float(s.get("seconds") or 0.0)}
              for s in pipeline.get("stages") or [] if s.get("status") in RAN}
    return {
        **record,
        "test": record.get("test_result") or None,
        "valid": record.get("best_valid_result") or None,
        "train_epoch_seconds": [float(e["train_seconds"]) for e in epochs if "train_seconds" in e],
        "eval_seconds": [float(e["valid_seconds"]) for e in epochs if "valid_seconds" in e],
        "stages": stages,
        "ident": (pipeline.get("identification") or {}).get("identification") or _denoiser_ident(record),
    }


def _denoiser_ident(record: Dict[str, Any]) -> Dict[str, Any]:
    """A denoising baseline's identification report; none for one that flags nothing (WBPR)."""
    rep = record.get("denoiser_identification") or {}
    return (rep.get("identification") or {}) if rep.get("kind") else {}


def _view_old(record: Dict[str, Any]) -> Dict[str, Any]:
    """Files of the first harness: epoch and stage times in ``log``, parsed from the log then."""
    log = record.get("log") or {}
    return {
        **record,
        "train_epoch_seconds": list(log.get("train_epoch_seconds") or []),
        "eval_seconds": list(log.get("eval_seconds") or []),
        "stages": dict(log.get("stages") or {}),
        "ident": (record.get("identification") or {}).get("identification") or log.get("identification") or {},
    }


def sec_per_epoch(record: Dict[str, Any]) -> Optional[float]:
    """Median training epoch (without evaluation) of a :func:`view`."""
    return median(record.get("train_epoch_seconds") or [])


def finished_record(base: Dict[str, Any], run_record: Dict[str, Any]) -> Dict[str, Any]:
    """A job that finished: the runner's ``base`` fields and the child's run record."""
    return {**base, **run_record, "status": status_of(run_record)}


def stopped_record(base: Dict[str, Any], progress: Dict[str, Any]) -> Dict[str, Any]:
    """A job stopped by its time budget: the run record of its last validation (the progress file).

    Its ``test_result`` is the test split evaluated when validation last improved (the
    best-validation checkpoint so far), empty if the job never evaluated the test split.
    """
    return {**base, **progress, "status": "time budget"}

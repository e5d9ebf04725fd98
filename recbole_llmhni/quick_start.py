"""``run_recbole_llmhni``: one entry point for plugin models and RecBole's baselines.

Mirrors ``recbole.quick_start.run_recbole`` (which is not imported: it pulls in ray) in the
RecBole-GNN style, with the plugin's offline stages as an explicit step before the model::

    config (checked) -> dataset -> data_preparation -> pipeline S1-S7 (LLMHNI models only)
        -> model (reads the pipeline's arrays) -> trainer (records every epoch) -> fit -> test

A run returns (and with ``llmhni_result_file`` writes as JSON) one record: metrics, epochs,
per-epoch losses and times, and the pipeline's stage reports.
"""
from __future__ import annotations

import logging
import sys
import time
from logging import getLogger
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed, set_color, ModelType

from recbole_llmhni import compat
from recbole_llmhni.artifacts import atomic_write_json
from recbole_llmhni.config import LLMHNIConfig
from recbole_llmhni.config.defaults import config_get, neg_mode_of
from recbole_llmhni.data.locate import check_dataset_present
from recbole_llmhni.semantic.negative_loader import S3TrainDataLoader, uses_s3_loader
from recbole_llmhni.pipeline.pipeline import LLMHNIPipeline
from recbole_llmhni.pipeline.results import PipelineResult
from recbole_llmhni.training import make_trainer, sampling_summary

__all__ = [
    "run_recbole_llmhni", "prepare_run", "PreparedRun", "epochs_of", "create_dataset", "run_record",
    "build_config", "build_splits", "run_pipeline", "alignment_check", "run_pipeline_for_training",
    "evaluate_checkpoint",
]


def build_config(model: Optional[str], dataset: Optional[str], config_file_list: Optional[List[str]] = None,
                 config_dict: Optional[Dict[str, Any]] = None) -> LLMHNIConfig:
    """The run's config (every ``llmhni_*`` value checked), with the dataset checked present."""
    config = LLMHNIConfig(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    check_dataset_present(config)
    return config


def build_splits(config: LLMHNIConfig) -> List[Any]:
    """``[train, valid, test]`` datasets exactly as a run with ``config`` splits them (same seed)."""
    init_seed(config["seed"], config["reproducibility"])
    return create_dataset(config).build()


def run_pipeline(model: str, dataset: str, config_file_list: Optional[List[str]] = None,
                 config_dict: Optional[Dict[str, Any]] = None) -> PipelineResult:
    """S1-S7 alone, on the training split a run would use (``python -m recbole_llmhni pipeline``)."""
    config = build_config(model, dataset, config_file_list, config_dict)
    train, valid, _ = build_splits(config)
    return LLMHNIPipeline(config, sampler_only=_s3_loader_only(config)).run(train, valid)


def _s3_loader_only(config: Any) -> bool:
    """A model other than the plugin's pipeline models, with S3 in the train loader: S1-S2 only."""
    return uses_s3_loader(config) and not getattr(config.model_class, "needs_pipeline", False)


def _runs_pipeline(config: Any) -> bool:
    """The run needs the pipeline: a plugin pipeline model, or S3 in the train loader with
    ``semantic`` negatives (S1-S2) or ``llmhni_neg_candidates: auto`` (S4, S3 candidates)."""
    return bool(getattr(config.model_class, "needs_pipeline", False)
                or (uses_s3_loader(config) and (neg_mode_of(config) == "semantic"
                                                or config_get(config, "llmhni_neg_candidates") == "auto")))


def alignment_check(model: str = "LLMHNI_LightGCN", dataset: str = "ml-100k", config_file_list: Optional[List[str]] = None,
                    config_dict: Optional[Dict[str, Any]] = None, split: str = "valid", k: int = 20,
                    encoder: Any = None) -> Any:
    """Recall@k of popularity, raw cosine (two ways) and aligned relevance on ``split``.

    The config is built as for training ``model`` on ``dataset`` (its ``llmhni_align_*``
    keys apply), so the aligned vectors are the artifact training would use (reused when
    present). ``split="valid"`` masks training items; ``"test"`` masks training and
    validation items (DESIGN.md section 4's protocol). See :mod:`recbole_llmhni.semantic.check`.
    """
    from recbole_llmhni.semantic.check import alignment_check_on_splits

    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    config = build_config(model, dataset, config_file_list, config_dict)
    started = time.perf_counter()
    train, valid, test = build_splits(config)
    load_seconds = time.perf_counter() - started
    if split == "valid":
        result = alignment_check_on_splits(train, valid, k=k, encoder=encoder, split_name="valid")
    else:
        result = alignment_check_on_splits(train, test, extra_known=[valid], k=k, encoder=encoder, split_name="test")
    result.seconds = {"load": load_seconds, **result.seconds}
    return result


def create_dataset(config):
    """The plugin's dataset for general recommenders, RecBole's own for anything else."""
    if config["MODEL_TYPE"] in (ModelType.GENERAL, ModelType.TRADITIONAL):
        from recbole_llmhni.data.dataset import LLMHNIDataset

        return LLMHNIDataset(config)
    from recbole.data import create_dataset as recbole_create_dataset

    return recbole_create_dataset(config)


@dataclass
class PreparedRun:
    """Everything a run needs, built and seeded, before training starts.

    ``setup_seconds`` is the time spent building the dataset and the model, the plugin's
    offline stages S1-S7 included (``pipeline``: their result, ``None`` for models without).
    """

    config: Any
    dataset: Any
    train_data: Any
    valid_data: Any
    test_data: Any
    model: Any
    trainer: Any
    setup_seconds: float
    pipeline: Optional[PipelineResult] = None


def prepare_run(
    model: Optional[str] = None,
    dataset: Optional[str] = None,
    config_file_list: Optional[List[str]] = None,
    config_dict: Optional[Dict[str, Any]] = None,
) -> PreparedRun:
    """Config -> dataset -> data_preparation -> pipeline -> model -> trainer (module docstring)."""
    started = time.perf_counter()
    config = LLMHNIConfig(
        model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict
    )  # every llmhni_* value checked: a bad one fails here, before anything is written
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)
    check_dataset_present(config)
    compat.install_device_safe_dynamic_sampling()  # RecBole's DNS on CUDA

    dataset_obj = create_dataset(config)
    logger.info(dataset_obj)
    train_data, valid_data, test_data = data_preparation(config, dataset_obj)

    s3_loader = uses_s3_loader(config)  # llmhni_neg_mode: dns / semantic on a model without in-batch S3
    pipeline = _pipeline_once(config, train_data, valid_data)
    if s3_loader:
        train_data = S3TrainDataLoader.replacing(train_data, config, pipeline.model_inputs() if pipeline else None)
        logger.info(f"S3 train loader: llmhni_neg_mode={train_data.neg_mode}, M={train_data.neg_candidates}, "
                    f"k={train_data.neg_topk}, q={train_data.fn_quantile_used}, scored by {config['model']}.predict")

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_obj = config.model_class(config, train_data._dataset).to(config["device"])
    logger.info(model_obj)
    if s3_loader:
        train_data.get_model(model_obj)
    trainer = make_trainer(config, model_obj)
    return PreparedRun(config, dataset_obj, train_data, valid_data, test_data, model_obj, trainer,
                       time.perf_counter() - started, pipeline)


def _pipeline_once(config: Any, train_data: Any, valid_data: Any) -> Optional[PipelineResult]:
    """S1-S7 for a model that needs them, S1-S2 for the S3 train loader of a RecBole model
    (``llmhni_neg_mode: semantic``), ``None`` otherwise; on the split RecBole hands the model.

    In a distributed run, rank 0 runs the pipeline first (reusing what the launching process
    computed: :mod:`recbole_llmhni.distributed`) and the other ranks wait at a barrier, then
    read its artifacts: no stage, and no LLM call, runs once per rank. A rank other than 0
    that still computes a stage has an artifact folder rank 0 did not write (several nodes
    without a shared ``llmhni_artifact_dir``): it says so.
    """
    if not _runs_pipeline(config):
        return None
    distributed = compat.is_distributed(config)
    if distributed:
        import torch.distributed as dist

        first = dist.get_rank() == 0
        if not first:
            dist.barrier()
    train_split = train_data._dataset  # the split RecBole hands the model
    pipeline = LLMHNIPipeline(config, sampler_only=_s3_loader_only(config)).run(
        train_split, valid_data._dataset)  # never the test split
    train_split.llmhni_inputs = pipeline.model_inputs()
    if distributed:
        if first:
            dist.barrier()
        computed = [r.stage for r in pipeline.reports if r.status == "computed"]
        if not first and computed:
            getLogger().warning(f"rank {dist.get_rank()} computed {', '.join(computed)} itself: its "
                                f"llmhni_artifact_dir is not the one rank 0 wrote; share it between nodes")
    return pipeline


def run_pipeline_for_training(model: Optional[str], dataset: Optional[str], config_file_list: Optional[List[str]] = None,
                              config_dict: Optional[Dict[str, Any]] = None) -> Optional[PipelineResult]:
    """S1-S7 exactly as :func:`prepare_run` would run them (same config, seed, dataset and
    ``data_preparation``), in this process, before training starts elsewhere; ``None`` for a
    model without the pipeline. A later :func:`prepare_run` reuses every artifact."""
    config = LLMHNIConfig(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    if not _runs_pipeline(config):
        return None
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    check_dataset_present(config)
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    return _pipeline_once(config, train_data, valid_data)


def evaluate_checkpoint(model_file: str, model: Optional[str] = None, dataset: Optional[str] = None,
                        config_file_list: Optional[List[str]] = None,
                        config_dict: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The validation and test metrics of a saved checkpoint (of this run's config), with the
    run's data and S1-S7 artifacts: ``{"valid_result": ..., "test_result": ...}``.

    Works in one process on a checkpoint saved by a distributed run (it carries a
    single-process config: :mod:`recbole_llmhni.compat`) and in each process of a distributed
    evaluation (:func:`recbole_llmhni.distributed.launch`).
    """
    run = prepare_run(model, dataset, config_file_list, config_dict)
    show = run.config["show_progress"]
    valid = run.trainer.evaluate(run.valid_data, load_best_model=True, model_file=model_file, show_progress=show)
    test = run.trainer.evaluate(run.test_data, load_best_model=True, model_file=model_file, show_progress=show)
    _close_log_handlers(getLogger())
    return {"model": run.config["model"], "dataset": run.config["dataset"], "model_file": str(model_file),
            "valid_result": {k: float(v) for k, v in valid.items()},
            "test_result": {k: float(v) for k, v in test.items()}}


def epochs_of(trainer: Any) -> Tuple[int, int]:
    """``(epochs trained, best epoch)`` (1-based) of a fitted RecBole trainer.

    Epochs trained count from the first, also for training resumed from a checkpoint
    (``start_epoch`` > 0). The best epoch is read from the early-stopping counter:
    ``cur_step`` evaluations without improvement since the best one, ``eval_step`` epochs apart.
    """
    last = trainer.start_epoch + len(trainer.train_loss_dict)  # 1-based number of the last epoch trained
    best = last - int(trainer.cur_step) * int(trainer.eval_step)
    return last, max(best, 0)


def run_record(run: PreparedRun, best_valid_result: Optional[Dict[str, float]], test_result: Optional[Dict[str, float]],
               train_seconds: float) -> Dict[str, Any]:
    """The JSON-ready record of a fitted run: what benchmarks and reports read (never log text)."""
    config, trainer = run.config, run.trainer
    epochs_trained, best_epoch = epochs_of(trainer)
    plugin = getattr(config.model_class, "needs_pipeline", False)
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "test_result": {k: float(v) for k, v in (test_result or {}).items()},
        "best_valid_result": {k: float(v) for k, v in (best_valid_result or {}).items()},
        "valid_metric": config["valid_metric"],
        "epochs_trained": epochs_trained,
        "best_epoch": best_epoch,
        "epoch_cap_reached": epochs_trained >= int(config["epochs"]),
        "setup_seconds": run.setup_seconds,
        "train_seconds": train_seconds,
        "epochs": list(getattr(trainer, "epoch_records", [])),
        "negative_sampling": sampling_summary(
            run.train_data if hasattr(getattr(run, "train_data", None), "neg_mode") else getattr(run, "model", None),
            list(getattr(trainer, "epoch_records", []))),
        "pipeline": run.pipeline.to_dict() if run.pipeline is not None else None,
        "encoder": _encoder_name(run) if plugin else None,
        "rater": config_get(config, "llmhni_rater") if plugin and config_get(config, "llmhni_denoise")
        and not getattr(config.model_class, "profile_embeddings_only", False) else None,
        "noise_ratio": config_get(config, "llmhni_noise_ratio"),
        "seed": config["seed"],
        "device": str(config["device"]),
        "world_size": int(config["world_size"]) if compat.is_distributed(config) else 1,
        "denoiser_identification": denoiser_identification(run),
    }


def _encoder_name(run: PreparedRun) -> Any:
    """The S1 encoder that made the run's profile embeddings (its full name, e.g.
    ``sentence-transformers:all-MiniLM-L6-v2``), or the configured backend when S1 did not run."""
    if run.pipeline is not None:
        for report in run.pipeline.reports:
            if report.stage == "S1 encode" and report.details.get("encoder"):
                return report.details["encoder"]
    return config_get(run.config, "llmhni_encoder")


def denoiser_identification(run: PreparedRun) -> Optional[Dict[str, Any]]:
    """A denoising baseline's flags against the injected noise (``None`` for other models or
    without injected noise): :func:`~recbole_llmhni.denoise.report.flagged_identification`.

    The flags are the model's state after the last training step (they are not part of a
    checkpoint, so loading the best one leaves them as they are).
    """
    model = getattr(run, "model", None)
    flagged_pairs = getattr(model, "flagged_pairs", None)
    if flagged_pairs is None:
        return None
    train = getattr(run.train_data, "dataset", None)
    injected_file = getattr(train, "injected_pairs_file", None)
    if injected_file is None:
        return None
    from recbole_llmhni.data.noise import read_pairs
    from recbole_llmhni.denoise.report import flagged_identification

    raw_users, raw_items = read_pairs(injected_file)
    users = train.token2id(train.uid_field, raw_users)
    items = train.token2id(train.iid_field, raw_items)
    n_train = int(len(model.pair_state))
    flagged_users, flagged_items = flagged_pairs(k=len(set(zip(raw_users, raw_items))))
    return flagged_identification(flagged_users.tolist(), flagged_items.tolist(), list(users), list(items),
                                  n_train, type(model).__name__, model.flag_kind)


def run_recbole_llmhni(
    model: Optional[str] = None,
    dataset: Optional[str] = None,
    config_file_list: Optional[List[str]] = None,
    config_dict: Optional[Dict[str, Any]] = None,
    saved: bool = True,
    callback_fn: Optional[Callable[[int, float], None]] = None,
) -> Dict[str, Any]:
    """Train ``model`` on ``dataset`` and evaluate the best checkpoint on the test split.

    Args:
        model: a plugin model (``LLMHNI_LightGCN``, ``BackboneLightGCN``, ...) or any RecBole
            general recommender (``BPR``, ``LightGCN``, ``NGCF``, ...).
        dataset: a dataset under ``data_path`` (``ml-100k`` ships with RecBole).
        config_file_list: YAML files, layered over the defaults.
        config_dict: parameters, layered over the files (the command line wins over both).
        saved: save the best checkpoint and evaluate it (``load_best_model``).
        callback_fn: RecBole's ``fit`` callback, ``callback_fn(epoch_idx, valid_score)``
            after every validation.

    Returns:
        The run record (:func:`run_record`: ``test_result`` as ``{"recall@20": ...}``,
        ``best_valid_result``, ``epochs_trained``, ``best_epoch``, per-epoch ``epochs``,
        the ``pipeline``'s stage reports, ...) plus ``saved_model_file`` and the ``config``
        object. With ``llmhni_result_file`` set, the record is also written there as JSON.
    """
    run = prepare_run(model, dataset, config_file_list, config_dict)
    config, trainer = run.config, run.trainer
    logger = getLogger()
    started = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        run.train_data, run.valid_data, saved=saved, show_progress=config["show_progress"],
        callback_fn=callback_fn,
    )
    train_seconds = time.perf_counter() - started
    test_result = trainer.evaluate(
        run.test_data, load_best_model=saved, show_progress=config["show_progress"]
    )

    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    record = run_record(run, best_valid_result, test_result, train_seconds)
    record["best_valid_score"] = float(best_valid_score)
    result_file = config_get(config, "llmhni_result_file")
    if result_file:
        atomic_write_json(result_file, record)
        logger.info(f"run record written to {result_file}")
    _close_log_handlers(logger)
    return {**record, "valid_score_bigger": config["valid_metric_bigger"],
            "saved_model_file": trainer.saved_model_file if saved else None, "config": config}


def _close_log_handlers(logger: logging.Logger) -> None:
    """RecBole's init_logger adds a file handler per run; close them so runs don't leak files."""
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            logger.removeHandler(handler)

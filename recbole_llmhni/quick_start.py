"""``run_recbole_llmhni``: one entry point for plugin models and RecBole's baselines.

Mirrors ``recbole.quick_start.run_recbole`` (which is not imported: it pulls in ray) in the
RecBole-GNN style: Config subclass -> dataset hook -> data_preparation -> model -> trainer.
"""
from __future__ import annotations

import logging
import sys
import time
from logging import getLogger
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from recbole.data import data_preparation
from recbole.utils import get_trainer, init_logger, init_seed, set_color, ModelType

from recbole_llmhni import compat
from recbole_llmhni.config import LLMHNIConfig
from recbole_llmhni.data.locate import check_dataset_present

__all__ = ["run_recbole_llmhni", "prepare_run", "PreparedRun", "epochs_of", "create_dataset"]


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

    ``setup_seconds`` is the time spent building the dataset and the model, i.e. the plugin's
    offline stages S1-S7 (computed or loaded from their artifacts).
    """

    config: Any
    dataset: Any
    train_data: Any
    valid_data: Any
    test_data: Any
    model: Any
    trainer: Any
    setup_seconds: float


def prepare_run(
    model: Optional[str] = None,
    dataset: Optional[str] = None,
    config_file_list: Optional[List[str]] = None,
    config_dict: Optional[Dict[str, Any]] = None,
) -> PreparedRun:
    """Config -> dataset hook -> data_preparation -> model -> trainer, as RecBole's quick start."""
    started = time.perf_counter()
    config = LLMHNIConfig(
        model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict
    )
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

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_obj = config.model_class(config, train_data._dataset).to(config["device"])
    logger.info(model_obj)

    trainer_cls = compat.trusted_checkpoint_trainer(get_trainer(config["MODEL_TYPE"], config["model"]))
    trainer = trainer_cls(config, model_obj)
    return PreparedRun(config, dataset_obj, train_data, valid_data, test_data, model_obj, trainer,
                       time.perf_counter() - started)


def epochs_of(trainer: Any) -> Tuple[int, int]:
    """``(epochs trained, best epoch)`` (1-based) of a fitted RecBole trainer.

    The best epoch is read from the early-stopping counter: ``cur_step`` evaluations without
    improvement since the best one, ``eval_step`` epochs apart.
    """
    trained = len(trainer.train_loss_dict)
    last = trainer.start_epoch + trained  # 1-based number of the last epoch trained
    best = last - int(trainer.cur_step) * int(trainer.eval_step)
    return trained, max(best, 0)


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
        ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result``
        (``{"recall@20": ..., ...}``), ``epochs_trained``, ``best_epoch``, plus ``model``,
        ``dataset``, ``setup_seconds``, ``train_seconds``, ``saved_model_file`` and ``config``.
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
    epochs_trained, best_epoch = epochs_of(trainer)
    test_result = trainer.evaluate(
        run.test_data, load_best_model=saved, show_progress=config["show_progress"]
    )

    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    _close_log_handlers(logger)
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "best_valid_score": float(best_valid_score),
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": {k: float(v) for k, v in (best_valid_result or {}).items()},
        "test_result": {k: float(v) for k, v in (test_result or {}).items()},
        "epochs_trained": epochs_trained,
        "best_epoch": best_epoch,
        "setup_seconds": run.setup_seconds,
        "train_seconds": train_seconds,
        "saved_model_file": trainer.saved_model_file if saved else None,
        "config": config,
    }


def _close_log_handlers(logger: logging.Logger) -> None:
    """RecBole's init_logger adds a file handler per run; close them so runs don't leak files."""
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            logger.removeHandler(handler)

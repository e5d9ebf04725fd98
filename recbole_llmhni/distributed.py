"""Training and evaluation in several processes (torch.distributed), RecBole's way, for every model.

RecBole 1.2.1's ``run(..., nproc=N)`` spawns its own ``run_recbole``, so plugin models and
the plugin's dataset are never reached. :func:`launch` is the same design for
:func:`~recbole_llmhni.quick_start.run_recbole_llmhni` and
:func:`~recbole_llmhni.quick_start.evaluate_checkpoint`:

1. this process runs S1-S7 once (:func:`~recbole_llmhni.quick_start.run_pipeline_for_training`,
   plugin models only; on several nodes only the node with ``group_offset`` 0), so every
   LLM call and every encoding happens here, once, before any worker starts;
2. ``torch.multiprocessing.spawn`` starts ``nproc`` workers; worker ``r`` builds the run
   with RecBole's distributed keys (``local_rank=r``, ``world_size``, ``ip``, ``port``,
   ``nproc``, ``offset``), joins the process group (``gloo`` on the CPU, ``nccl`` on CUDA:
   :func:`recbole_llmhni.compat.init_device`) and reuses step 1's artifacts (rank 0 first,
   the others after a barrier);
3. RecBole's trainer trains with ``DistributedDataParallel`` (each process a shard of the
   training rows per epoch); evaluation merges every process's per-user rows, padded
   duplicates dropped, so metrics are those of one process;
4. global rank 0 saves the best checkpoint with a single-process config (it loads later in
   one process: ``recbole-llmhni run`` with nothing distributed, or
   :func:`~recbole_llmhni.quick_start.evaluate_checkpoint`) and writes the run record, which
   :func:`launch` returns.

Several nodes: start the same command on each node with the same ``world_size``, ``ip``
(node 0's address) and ``port``, and ``group_offset`` = the global rank of the node's
first process (0, nproc, 2 nproc, ...); ``llmhni_artifact_dir`` and ``checkpoint_dir``
must be on a filesystem all nodes share (rank 0 writes them).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any, Dict, List, Optional

from recbole_llmhni.config.validate import ConfigError

__all__ = ["launch", "distributed_keys", "TASKS"]

TASKS = ("run", "evaluate")


def distributed_keys(nproc: int, world_size: int = -1, ip: str = "localhost", port: Any = 5678,
                     group_offset: int = 0) -> Dict[str, Any]:
    """RecBole's config keys of a distributed run (its ``run`` writes the same ones); a
    :class:`~recbole_llmhni.config.validate.ConfigError` for numbers that do not fit."""
    if int(nproc) < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    world_size = int(nproc) if int(world_size) <= 0 else int(world_size)
    if int(group_offset) < 0 or int(group_offset) + int(nproc) > world_size:
        raise ConfigError(f"--group_offset={group_offset} with --nproc={nproc} does not fit --world_size={world_size}: "
                         f"the node's ranks are group_offset .. group_offset + nproc - 1 < world_size")
    return {"world_size": world_size, "ip": str(ip), "port": int(port), "nproc": int(nproc), "offset": int(group_offset)}


def _make_shared_dirs(model: Optional[str], dataset: Optional[str], config_file_list: Optional[List[str]],
                      config_dict: Dict[str, Any]) -> None:
    """Create the folders every worker writes into (RecBole's ``./log/<model>`` and
    ``checkpoint_dir``) before they start: RecBole's ``ensure_dir`` checks, then creates, so
    two workers creating the same folder at once fail with ``FileExistsError``. Building the
    config here also reports a bad key in one line before any process starts."""
    from recbole_llmhni.config import LLMHNIConfig

    config = LLMHNIConfig(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    for folder in (os.path.join("log", str(config["model"])), str(config["checkpoint_dir"])):
        os.makedirs(folder, exist_ok=True)


def _worker(local_rank: int, task: str, model: Optional[str], dataset: Optional[str],
            config_file_list: Optional[List[str]], config_dict: Dict[str, Any], result_file: str,
            model_file: Optional[str]) -> None:
    """One process of :func:`launch` (module level: ``spawn`` imports it by name)."""
    import torch.distributed as dist

    from recbole_llmhni.quick_start import evaluate_checkpoint, run_recbole_llmhni

    config_dict = {**config_dict, "local_rank": local_rank}
    sys.argv = sys.argv[:1]  # spawn copies the parent's command line; RecBole's Config would read it as keys
    try:
        if task == "run":
            record = run_recbole_llmhni(model, dataset, config_file_list, config_dict)
            record = {k: v for k, v in record.items() if k != "config"}
        else:
            record = evaluate_checkpoint(model_file, model, dataset, config_file_list, config_dict)
        if dist.get_rank() == 0:
            tmp = f"{result_file}.part"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(record, fh)
            os.replace(tmp, result_file)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(task: str, model: Optional[str] = None, dataset: Optional[str] = None,
           config_file_list: Optional[List[str]] = None, config_dict: Optional[Dict[str, Any]] = None,
           nproc: int = 1, world_size: int = -1, ip: str = "localhost", port: Any = 5678, group_offset: int = 0,
           model_file: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """``task`` ("run": train and test, as ``run_recbole_llmhni``; "evaluate": a checkpoint's
    validation and test metrics, as ``evaluate_checkpoint``) in ``nproc`` processes on this
    node; the record of global rank 0 (``None`` on a node without it).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if task == "evaluate" and not model_file:
        raise ValueError("evaluating needs the checkpoint: model_file=PATH")
    import torch.multiprocessing as mp

    from recbole_llmhni.quick_start import run_pipeline_for_training

    keys = distributed_keys(nproc, world_size, ip, port, group_offset)
    config_dict = dict(config_dict or {})
    _make_shared_dirs(model, dataset, config_file_list, config_dict)
    if keys["offset"] == 0:  # S1-S7 once, here, before any worker starts
        run_pipeline_for_training(model, dataset, config_file_list, config_dict)
    with tempfile.TemporaryDirectory(prefix="llmhni-ddp-") as tmp:
        result_file = os.path.join(tmp, "record.json")
        mp.spawn(_worker, nprocs=keys["nproc"], join=True,
                 args=(task, model, dataset, config_file_list, {**config_dict, **keys}, result_file, model_file))
        if not os.path.exists(result_file):
            return None
        with open(result_file, encoding="utf-8") as fh:
            return json.load(fh)

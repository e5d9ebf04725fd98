"""The one place where recbole-llmhni adjusts third-party behaviour.

RecBole 1.2.1 predates numpy 2, scipy >= 1.13 and torch >= 2.6. Each shim below is keyed on
the *feature* it restores (never on a version number), is idempotent, and changes nothing
on a stack where the feature is still present:

* numpy 2 removed the aliases ``np.float_``, ``np.complex_``, ``np.unicode_`` (used by
  ``Config.compatibility_settings``) and ``np.float``, ``np.int``, ``np.bool``, ``np.long``
  (used by RecBole's metrics, interaction and dataset code). They are restored as the
  builtin / numpy types they always meant.
* scipy 1.13 removed ``dok_matrix._update``, which RecBole's LightGCN, NGCF, NCL, GCMC,
  SpectralCF, KGIN and MCCLK call to build their normalised adjacency. It is restored as a
  bulk insert into the matrix's own storage.
* torch 2.6 made ``torch.load`` default to ``weights_only=True``; RecBole checkpoints pickle
  the Config, so RecBole's ``Trainer.evaluate(load_best_model=True)`` and
  ``resume_checkpoint`` fail. :func:`trusted_checkpoint_trainer` returns a subclass of a
  RecBole trainer that loads checkpoints *this run wrote itself* with
  ``weights_only=False``. Nothing else is loaded that way.
* RecBole 1.2.1's dynamic negative sampling (``train_neg_sample_args: {dynamic: True}``,
  i.e. LightGCN + DNS) indexes the CPU tensor of sampled candidates with the GPU tensor of
  their argmax, which fails on CUDA ("indices should be either on cpu or on the same device
  as the indexed tensor"). :func:`install_device_safe_dynamic_sampling` wraps the data
  loader's ``_neg_sampling`` so that the model's scores, and so their argmax, come back on
  the CPU, where the candidates are; on the CPU nothing changes. It imports RecBole's data loaders (2 s), so ``run_recbole_llmhni``
  installs it, not ``import recbole_llmhni``.

* Distributed training (``nproc`` > 1, :mod:`recbole_llmhni.distributed`). RecBole 1.2.1's
  ``Config._init_device`` always starts ``nccl`` on CUDA device ``local_rank`` (and asserts
  one ``gpu_id`` per process), so a CPU machine cannot run it:
  :func:`init_device` is the same logic with ``gloo`` and the CPU where CUDA is off (and
  ``nccl`` / ``cuda:local_rank`` as before where it is on); ``LLMHNIConfig._init_device``
  calls it. RecBole's trainer wraps the model in ``DistributedDataParallel(model,
  device_ids=[local_rank])``, which torch refuses for a CPU module:
  :func:`install_ddp_fixes` makes that one name in ``recbole.trainer.trainer`` drop
  ``device_ids`` for CPU modules (and leave sparse buffers out of DDP's broadcast). The trainer of :func:`trusted_checkpoint_trainer` also
  (a) takes rank 0's checkpoint file name (RecBole names it per process from the clock, so
  two processes can disagree by a second), (b) saves on rank 0 with a *single-process* copy
  of the config (RecBole stores the DDP config, so a later one-process load builds DDP data
  loaders without a process group: RecBole issue #2063) and waits at a barrier before any
  rank loads it, and (c) merges evaluation exactly: RecBole's ``DistributedSampler`` pads
  the evaluation users with duplicates and ``_map_reduce`` averages per-rank metrics
  weighted by ``len(batch)`` (the 4-tuple's length, not the users), so its merged metrics
  differ from one process's (RecBole PR #1872). Here every rank gathers all ranks' per-user
  rows of the evaluation data struct with their sample indices, drops the padded
  duplicates, puts the rows in sample order and evaluates that: the struct one process
  would have built, hence the same metrics.

* hyperopt >= 0.3 samples with numpy's ``Generator`` API (``rng.integers``) but RecBole
  1.2.1's ``exhaustive_search`` (the default algorithm of ``HyperTuning``) hands it a legacy
  ``np.random.RandomState(seed)``, which has no ``integers``: every exhaustive search fails.
  :func:`install_hyperopt_rng` gives ``recbole.trainer.hyper_tuning`` a numpy whose
  ``random.RandomState`` also answers ``integers`` (as ``randint``: same half-open range);
  the ``tune`` command installs it.

:func:`apply` (the other shims) runs on ``import recbole_llmhni``.

Warnings that say nothing to the user are filtered here, each by category, the RecBole
module that triggers it and the start of its message (:data:`QUIET_WARNINGS`), so the
plugin's own warnings, any other library's, and any other warning of those modules still
show:

* pandas 2.2's ``FutureWarning`` "A value is trying to be set on a copy of a DataFrame or
  Series through chained assignment ..." from ``recbole.data.dataset.dataset`` (its
  ``fillna(inplace=True)`` on a column, dozens of lines before anything else); and the
  "Downcasting object dtype arrays ..." / "Setting an item of incompatible dtype ..." ones of
  the same code. pandas<3 is pinned, so the behaviour they announce never arrives here.
* torch's ``FutureWarning`` "`torch.cuda.amp.GradScaler(args...)` is deprecated" from
  ``recbole.trainer.trainer`` (RecBole's trainer builds the scaler on every run).
"""
from __future__ import annotations

import functools
import warnings
from typing import Any, Dict, Optional, Type

import numpy as np
import scipy.sparse as sp

__all__ = ["QUIET_WARNINGS", "apply", "init_device", "install_ddp_fixes", "install_device_safe_dynamic_sampling",
           "install_hyperopt_rng", "is_distributed", "load_trusted_checkpoint", "merge_eval_rows",
           "quiet_third_party_warnings", "single_process_config", "trusted_checkpoint_trainer"]

_NUMPY_ALIASES: Dict[str, Any] = {
    # removed in numpy 2.0 -- RecBole's Config.compatibility_settings reads these
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    # removed in numpy 1.24 -- RecBole calls these at run time
    "bool": bool,
    "int": int,
    "float": float,
    "complex": complex,
    "object": object,
    "str": str,
    "long": np.int_,
    "unicode": np.str_,
}


def _restore_numpy_aliases() -> None:
    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)


def _dok_update(self: sp.dok_matrix, data: Dict) -> None:
    """Bulk-insert ``{(row, col): value}`` into a dok matrix without per-key checks."""
    self._dict.update(data)


def _restore_dok_update() -> None:
    # scipy >= 1.13 keeps the entries in ``_dict``; older releases had ``_update`` already.
    if not hasattr(sp.dok_matrix, "_update"):
        sp.dok_matrix._update = _dok_update


def load_trusted_checkpoint(path: str, map_location: Any = None) -> Dict[str, Any]:
    """Load a RecBole checkpoint that this process (or an earlier run of it) wrote.

    RecBole stores the Config object inside the checkpoint, which torch >= 2.6 refuses to
    unpickle by default. Only call this on files produced by :class:`recbole.trainer.Trainer`.
    """
    import torch

    return torch.load(path, map_location=map_location, weights_only=False)


# ----------------------------------------------------------------------------- distributed
# the per-row entries of RecBole's evaluation DataStruct (one row per evaluated sample)
EVAL_ROW_KEYS = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label")


def init_device(cfg: Dict[str, Any]) -> None:
    """RecBole 1.2.1's ``Config._init_device`` with ``gloo`` on the CPU (see the module docstring).

    One process (no ``local_rank`` key): unchanged. Under ``nproc`` / ``world_size``: the
    process group starts once per process (rank ``local_rank + offset``, ``tcp://ip:port``)
    with ``nccl`` on ``cuda:local_rank`` when ``gpu_id`` names GPUs and CUDA is available,
    else ``gloo`` on the CPU; ranks other than each node's 0 log errors only, as RecBole's.
    """
    import os

    import torch

    gpu_id = cfg.get("gpu_id", "")
    gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else ("" if gpu_id is None else str(gpu_id))
    cfg["gpu_id"] = gpu_id
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id
    use_cuda = len(gpu_id) > 0 and torch.cuda.is_available()
    if "local_rank" not in cfg:
        cfg["single_spec"] = True
        cfg["local_rank"] = 0
        cfg["device"] = torch.device("cuda") if use_cuda else torch.device("cpu")
        return
    local_rank = int(cfg["local_rank"])
    if use_cuda:
        if len(gpu_id.split(",")) < int(cfg.get("nproc", 1)):
            raise ValueError(f"gpu_id {gpu_id!r} names fewer GPUs than nproc={cfg.get('nproc')}: "
                             f"list one GPU per process (e.g. --gpu_id=0,1) or lower --nproc")
        backend, device = "nccl", torch.device("cuda", local_rank)
        torch.cuda.set_device(local_rank)
    else:
        backend, device = "gloo", torch.device("cpu")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            backend=backend, rank=local_rank + int(cfg.get("offset", 0) or 0), world_size=int(cfg["world_size"]),
            init_method=f"tcp://{cfg.get('ip', 'localhost')}:{cfg.get('port', 5678)}",
        )
    cfg["device"] = device
    cfg["distributed_backend"] = backend
    cfg["single_spec"] = False
    if local_rank != 0:
        cfg["state"] = "error"
        cfg["show_progress"] = False
        cfg["verbose"] = False


def is_distributed(config: Any) -> bool:
    """Whether ``config`` belongs to one process of a distributed run."""
    try:
        return config["single_spec"] is False
    except KeyError:  # a plain mapping without RecBole's device keys: one process
        return False


def install_ddp_fixes() -> None:
    """RecBole's trainer builds ``DistributedDataParallel(model, device_ids=[local_rank])``:
    torch refuses ``device_ids`` for a CPU module, so for one the ids are dropped; and DDP
    broadcasts every buffer from rank 0, which fails on sparse ones (``Sparse CSR tensors do
    not have is_contiguous``: the plugin's graph models keep the normalised adjacency as a
    sparse buffer), so sparse buffers (built from the same data on every rank) are left out
    of that broadcast. Idempotent."""
    import torch
    from recbole.trainer import trainer as recbole_trainer

    ddp = recbole_trainer.DistributedDataParallel
    if getattr(ddp, "_llmhni_fixed", False):
        return

    def distributed_data_parallel(module, device_ids=None, *args, **kwargs):
        on_cpu = all(not p.is_cuda for p in module.parameters())
        sparse = [name for name, b in module.named_buffers() if b.layout != torch.strided]
        if sparse:
            ddp._set_params_and_buffers_to_ignore_for_model(module, sparse)
        return ddp(module, None if on_cpu else device_ids, *args, **kwargs)

    distributed_data_parallel._llmhni_fixed = True
    recbole_trainer.DistributedDataParallel = distributed_data_parallel


def single_process_config(config: Any) -> Any:
    """A copy of a distributed run's Config as one process would have it (for checkpoints):
    ``single_spec`` on, ``local_rank`` 0, the process-group keys gone, the device un-indexed."""
    import copy

    import torch

    out = copy.copy(config)
    final = dict(config.final_config_dict)
    for key in ("world_size", "nproc", "ip", "port", "offset", "distributed_backend"):
        final.pop(key, None)
    final.update(single_spec=True, local_rank=0)
    device = final.get("device")
    if isinstance(device, torch.device):
        final["device"] = torch.device(device.type)
    out.final_config_dict = final
    if hasattr(config, "external_config_dict"):
        out.external_config_dict = {k: v for k, v in config.external_config_dict.items()
                                    if k not in ("local_rank", "world_size", "nproc", "ip", "port", "offset")}
    return out


def merge_eval_rows(gathered: Any, expected: Optional[int] = None) -> Dict[str, Any]:
    """Every rank's ``(sample indices, {key: rows})`` -> ``{key: rows}`` of each sample once, in order.

    ``DistributedSampler`` deals sample ``j`` of the padded list ``0..n-1, 0, 1, ...`` to
    rank ``j mod world_size``; the padding repeats the first samples, evaluated twice by the
    same model. Rows are sorted by sample index (stable, so rank order breaks ties) and the
    first row of each index kept: exactly the rows, in the order, of one process.
    """
    import torch

    order = torch.cat([torch.as_tensor(o, dtype=torch.long).reshape(-1) for o, _ in gathered])
    perm = torch.sort(order, stable=True).indices
    sorted_order = order[perm]
    keep = torch.ones_like(sorted_order, dtype=torch.bool)
    keep[1:] = sorted_order[1:] != sorted_order[:-1]
    rows_kept = perm[keep]
    if expected is not None and int(keep.sum()) != expected:
        raise RuntimeError(f"merged evaluation has {int(keep.sum())} samples, expected {expected}")
    merged: Dict[str, Any] = {}
    for key in gathered[0][1]:
        merged[key] = torch.cat([rows[key] for _, rows in gathered], dim=0)[rows_kept]
    return merged


@functools.lru_cache(maxsize=None)
def trusted_checkpoint_trainer(trainer_cls: Type) -> Type:
    """Return a subclass of RecBole ``trainer_cls`` whose checkpoint loading works on torch >= 2.6.

    ``evaluate(load_best_model=True)`` and ``resume_checkpoint`` load the run's own
    checkpoint with ``weights_only=False`` and then defer to RecBole unchanged. In a
    distributed run it also shares rank 0's checkpoint name, saves single-process
    checkpoints and merges evaluation exactly (module docstring).
    """

    class TrustedCheckpointTrainer(trainer_cls):  # type: ignore[misc, valid-type]
        def __init__(self, config, model):
            if is_distributed(config):
                install_ddp_fixes()
            super().__init__(config, model)
            if is_distributed(config):
                import torch.distributed as dist

                name = [self.saved_model_file]
                dist.broadcast_object_list(name, src=0)
                self.saved_model_file = name[0]
                self._llmhni_eval_order = None
                collect = self.eval_collector.get_data_struct

                def merged_data_struct():
                    struct = collect()
                    if self._llmhni_eval_order is None:
                        return struct
                    order, expected = self._llmhni_eval_order
                    rows = {key: struct[key] for key in EVAL_ROW_KEYS if key in struct}
                    gathered = [None] * dist.get_world_size()
                    dist.all_gather_object(gathered, (order, rows))
                    for key, value in merge_eval_rows(gathered, expected).items():
                        struct[key] = value
                    return struct

                self.eval_collector.get_data_struct = merged_data_struct

        def _save_checkpoint(self, epoch, verbose=True, **kwargs):
            if not is_distributed(self.config):
                return super()._save_checkpoint(epoch, verbose=verbose, **kwargs)
            if self.config["local_rank"] != 0:
                return None
            import os

            target = kwargs.pop("saved_model_file", self.saved_model_file)
            partial = f"{target}.{os.getpid()}.part"
            run_config = self.config
            self.config = single_process_config(run_config)
            try:
                super()._save_checkpoint(epoch, verbose=False, saved_model_file=partial, **kwargs)
            finally:
                self.config = run_config
            os.replace(partial, target)  # whole, even where nodes share the folder
            if verbose:
                self.logger.info(f"Saving current: {target}")
            return None

        def _map_reduce(self, result, num_sample):
            # the rows were merged before the evaluator ran: ``result`` is already over all samples
            return result

        def evaluate(
            self,
            eval_data,
            load_best_model: bool = True,
            model_file: Optional[str] = None,
            show_progress: bool = False,
        ):
            if eval_data and is_distributed(self.config):
                from recbole.data.dataloader import FullSortEvalDataLoader

                if not isinstance(eval_data, FullSortEvalDataLoader):
                    raise ValueError("distributed evaluation merges full-ranking results only: "
                                     "use eval_args.mode full (the plugin's default) or nproc=1")
                import torch
                import torch.distributed as dist

                self._llmhni_eval_order = (torch.as_tensor(list(iter(eval_data.sampler)), dtype=torch.long),
                                           int(eval_data.sample_size))
                if load_best_model:
                    dist.barrier()  # rank 0 has written the checkpoint
            if eval_data and load_best_model:
                checkpoint_file = model_file or self.saved_model_file
                checkpoint = load_trusted_checkpoint(checkpoint_file, self.device)
                self.model.load_state_dict(checkpoint["state_dict"])
                self.model.load_other_parameter(checkpoint.get("other_parameter"))
                self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
            return super().evaluate(
                eval_data, load_best_model=False, model_file=None, show_progress=show_progress
            )

        def resume_checkpoint(self, resume_file: str) -> None:
            import torch

            original_load = torch.load
            # RecBole's resume_checkpoint calls ``torch.load(resume_file, ...)`` itself; route
            # exactly that one call to the original loader with weights_only=False (not through
            # load_trusted_checkpoint, which would find the patched torch.load).
            torch.load = lambda f, *a, **kw: original_load(f, map_location=kw.get("map_location"), weights_only=False)
            try:
                super().resume_checkpoint(resume_file)
            finally:
                torch.load = original_load

    TrustedCheckpointTrainer.__name__ = trainer_cls.__name__
    TrustedCheckpointTrainer.__qualname__ = trainer_cls.__qualname__
    return TrustedCheckpointTrainer


def install_device_safe_dynamic_sampling() -> None:
    """Make RecBole's dynamic (DNS) negative sampling work when the model is on a GPU.

    During the dynamic branch only, the model's ``predict`` hands its scores back on the CPU,
    where RecBole keeps the candidate ids it indexes with their argmax.
    """
    from recbole.data.dataloader.abstract_dataloader import NegSampleDataLoader

    original = NegSampleDataLoader._neg_sampling
    if getattr(original, "_llmhni_device_safe", False):
        return

    @functools.wraps(original)
    def _neg_sampling(self, inter_feat):
        if not self.neg_sample_args.get("dynamic", False):
            return original(self, inter_feat)
        model = self.model
        had_own = "predict" in vars(model)
        real_predict = model.predict
        model.predict = lambda interaction: real_predict(interaction).cpu()
        try:
            return original(self, inter_feat)
        finally:
            if had_own:
                model.predict = real_predict
            else:
                del model.predict  # the class's method again

    _neg_sampling._llmhni_device_safe = True
    NegSampleDataLoader._neg_sampling = _neg_sampling


# (category, module regex, message regex): matched as warnings.filterwarnings does
QUIET_WARNINGS = (
    (FutureWarning, r"recbole\.data\.dataset(\.|$)",
     r"A value is trying to be set on a copy of a DataFrame or Series through chained assignment"),
    (FutureWarning, r"recbole\.data\.dataset(\.|$)", r"Downcasting object dtype arrays"),
    (FutureWarning, r"recbole\.data\.dataset(\.|$)", r"Setting an item of incompatible dtype"),
    (FutureWarning, r"recbole\.trainer\.trainer$", r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated"),
)


def quiet_third_party_warnings() -> None:
    """Ignore the warnings of :data:`QUIET_WARNINGS` (idempotent: filters are de-duplicated)."""
    for category, module, message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


class _RandomStateWithIntegers(np.random.RandomState):
    """A legacy RandomState that also answers the Generator API's ``integers(low, high, size)``."""

    def integers(self, low: Any, high: Any = None, size: Any = None) -> Any:
        return self.randint(low, high, size)


class _NumpyWithIntegersRandomState:
    """``numpy`` as seen by one module: everything numpy's, but ``random.RandomState`` above."""

    def __init__(self) -> None:
        import types

        self.random = types.SimpleNamespace(**{k: getattr(np.random, k) for k in dir(np.random) if not k.startswith("__")})
        self.random.RandomState = _RandomStateWithIntegers

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def install_hyperopt_rng() -> None:
    """Let RecBole's ``exhaustive_search`` drive hyperopt >= 0.3 (idempotent; a no-op where not needed)."""
    from recbole.trainer import hyper_tuning

    if hasattr(np.random.RandomState, "integers") or isinstance(hyper_tuning.np, _NumpyWithIntegersRandomState):
        return
    hyper_tuning.np = _NumpyWithIntegersRandomState()


_applied = False


def apply() -> None:
    """Install every shim (idempotent)."""
    global _applied
    if _applied:
        return
    _restore_numpy_aliases()
    _restore_dok_update()
    quiet_third_party_warnings()
    _applied = True

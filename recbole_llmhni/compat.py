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

__all__ = ["QUIET_WARNINGS", "apply", "install_device_safe_dynamic_sampling", "install_hyperopt_rng", "load_trusted_checkpoint", "quiet_third_party_warnings", "trusted_checkpoint_trainer"]

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


@functools.lru_cache(maxsize=None)
def trusted_checkpoint_trainer(trainer_cls: Type) -> Type:
    """Return a subclass of RecBole ``trainer_cls`` whose checkpoint loading works on torch >= 2.6.

    ``evaluate(load_best_model=True)`` and ``resume_checkpoint`` load the run's own
    checkpoint with ``weights_only=False`` and then defer to RecBole unchanged.
    """

    class TrustedCheckpointTrainer(trainer_cls):  # type: ignore[misc, valid-type]
        def evaluate(
            self,
            eval_data,
            load_best_model: bool = True,
            model_file: Optional[str] = None,
            show_progress: bool = False,
        ):
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
            # exactly that one call through the trusted loader.
            torch.load = lambda f, *a, **kw: load_trusted_checkpoint(f, kw.get("map_location"))
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

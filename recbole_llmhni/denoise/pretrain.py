r"""S4: ``Rec_pre``, the backbone trained on the training graph G with plain BPR.

The candidate scorer of S5 is the LLMHNI model's own backbone (``BackboneLightGCN`` for
``LLMHNI_LightGCN``, ``BackboneNGCF`` for ``LLMHNI_NGCF``) trained for
``llmhni_pretrain_epochs`` epochs by RecBole's ``Trainer`` on the training split only, with
uniform negative sampling (one negative per positive) and the run's own hyperparameters
(``embedding_size``, ``n_layers`` / ``hidden_size_list``, ``reg_weight``, ``learning_rate``,
``train_batch_size``, ...). There is **no validation-based early stopping**: the stage must
never read the validation or test split, and a fixed short schedule is what the paper's
"pretrained for a few epochs" asks for (a short schedule also keeps the memorisation effect:
noisy positives still score low).

Our choice of default, ``llmhni_pretrain_epochs = 30``: RecBole's LightGCN reaches about
0.08-0.10 validation Recall@20 on RLMRec Amazon-book within 30-40 epochs (DESIGN.md section
4), i.e. it ranks well enough to surface low-score positives and high-score negatives. Cost
on Amazon-book with 10% noise (132,510 training pairs): about 14 s per epoch on 2 idle CPU
cores (DESIGN.md's LightGCN figure), 909 s for the 30 epochs on 2 busy ones (measured).

Reproducibility: training runs under its own seed (``seed``) inside a forked random state
(torch, numpy, ``random``), restored afterwards, so a reused checkpoint and a freshly trained
one leave the caller's random streams (e.g. the main model's initialisation) identical.

Artifact (``pretrain/<key>/``): ``rec_pre.pt``, a ``torch.save`` of plain tensors and string
lists, so it loads with ``weights_only=True``: the backbone name, its ``state_dict``, and the
raw id tokens of the embedding rows (``user_tokens`` / ``item_tokens``). Loading maps rows by
raw id, so the checkpoint stays valid if RecBole numbers the ids differently.
"""
from __future__ import annotations

import contextlib
import copy
import io
import random
from typing import Any, Dict, Iterator, List, Mapping, Tuple

import numpy as np
import torch
from torch import Tensor

from recbole_llmhni.artifacts import StageDir, atomic_write_bytes
from recbole_llmhni.config.defaults import config_get, model_defaults

__all__ = [
    "backbone_name",
    "pretrain_material",
    "train_rec_pre",
    "save_rec_pre",
    "load_rec_pre",
    "propagated_embeddings",
]

CHECKPOINT = "rec_pre.pt"

#: config keys whose values change what Rec_pre learns (beyond the training edges)
_TRAINING_KEYS = (
    "learner",
    "learning_rate",
    "weight_decay",
    "train_batch_size",
    "clip_grad_norm",
    "seed",
    "llmhni_adj_layout",
    "embedding_size",
    "reg_weight",
    "require_pow",
)
_BACKBONE_KEYS: Dict[str, Tuple[str, ...]] = {
    "BackboneLightGCN": ("n_layers",),
    "BackboneNGCF": ("hidden_size_list", "node_dropout", "message_dropout"),
}


def backbone_name(config: Any) -> str:
    """The backbone of ``Rec_pre``: ``llmhni_pretrain_backbone`` if set, else from the model name.

    ``*NGCF`` -> ``BackboneNGCF``; anything else (``*LightGCN`` included) -> ``BackboneLightGCN``.
    """
    explicit = config_get(config, "llmhni_pretrain_backbone")
    if explicit:
        return str(explicit)  # one of BACKBONES (checked when the config is built)
    model = str(config_get(config, "model", ""))
    return "BackboneNGCF" if model.upper().endswith("NGCF") else "BackboneLightGCN"


def pretrain_material(config: Any, backbone: str, edges_fp: str) -> Dict[str, Any]:
    """Everything the trained ``Rec_pre`` depends on (hashed into the S4 key)."""
    epochs = int(config_get(config, "llmhni_pretrain_epochs"))
    keys = _TRAINING_KEYS + _BACKBONE_KEYS[backbone]
    return {
        "backbone": backbone,
        "epochs": epochs,
        "train_edges": edges_fp,
        "negatives": "uniform, 1 per positive",
        "hyperparameters": {k: _backbone_value(config, backbone, k) for k in keys},
    }


def _backbone_value(config: Any, backbone: str, key: str) -> Any:
    """The run's value of ``key``, else the backbone's YAML default (a run of BPR has no ``n_layers``)."""
    value = config_get(config, key)
    return model_defaults(backbone).get(key) if value is None else value


@contextlib.contextmanager
def _isolated_rng(seed: int) -> Iterator[None]:
    """Seed torch / numpy / ``random`` for the block and restore the caller's states after it."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def _pretrain_config(config: Any, backbone: str, epochs: int) -> Any:
    """A shallow copy of the run's Config with the pretraining schedule (the original is untouched)."""
    cfg = copy.copy(config)
    cfg.final_config_dict = dict(config.final_config_dict)
    cfg["model"] = backbone
    for key in model_defaults(backbone):
        cfg[key] = _backbone_value(config, backbone, key)
    cfg["epochs"] = epochs
    cfg["eval_step"] = 0  # no evaluation: the stage sees the training split only
    cfg["train_neg_sample_args"] = {
        "distribution": "uniform",
        "sample_num": 1,
        "alpha": 1.0,
        "dynamic": False,
        "candidate_num": 0,
    }
    return cfg


def _model_class(backbone: str) -> type:
    from recbole_llmhni.models import backbones

    return getattr(backbones, backbone)


def train_rec_pre(config: Any, train_dataset: Any, material: Mapping[str, Any]) -> torch.nn.Module:
    """Train ``material["backbone"]`` on ``train_dataset`` (the training split) with plain BPR.

    Uses RecBole's ``TrainDataLoader`` (uniform negatives from the training split's positives)
    and ``Trainer`` (``compat.trusted_checkpoint_trainer``), no validation data, nothing saved
    by the trainer itself. Returns the trained model in eval mode.
    """
    from recbole.data.dataloader import TrainDataLoader
    from recbole.sampler import Sampler
    from recbole.trainer import Trainer

    from recbole_llmhni.compat import trusted_checkpoint_trainer

    backbone, epochs = str(material["backbone"]), int(material["epochs"])
    cfg = _pretrain_config(config, backbone, epochs)
    seed = int(config_get(config, "seed", 2020))
    with _isolated_rng(seed):
        sampler = Sampler(["train"], [train_dataset], distribution="uniform").set_phase("train")
        loader = TrainDataLoader(cfg, train_dataset, sampler, shuffle=True)
        model = _model_class(backbone)(cfg, train_dataset).to(cfg["device"])
        trainer = trusted_checkpoint_trainer(Trainer)(cfg, model)
        trainer.fit(loader, None, verbose=True, saved=False, show_progress=bool(config_get(config, "show_progress", False)))
    model.eval()
    return model


def save_rec_pre(stage: StageDir, model: torch.nn.Module, train_dataset: Any, material: Mapping[str, Any]) -> None:
    """Write ``rec_pre.pt`` (weights + raw id tokens of the rows) atomically, then the manifest."""
    payload = {
        "backbone": str(material["backbone"]),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "user_tokens": list(map(str, train_dataset.field2id_token[train_dataset.uid_field])),
        "item_tokens": list(map(str, train_dataset.field2id_token[train_dataset.iid_field])),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(stage.file(CHECKPOINT), buffer.getvalue())
    stage.complete(material, backbone=payload["backbone"])


def _remap_rows(fresh: Tensor, saved: Tensor, saved_tokens: List[str], tokens: np.ndarray) -> Tensor:
    """Rows of ``saved`` moved to this dataset's id order; ids the checkpoint lacks keep ``fresh``."""
    if list(map(str, tokens)) == saved_tokens:
        return saved
    position = {token: row for row, token in enumerate(saved_tokens)}
    rows = np.fromiter((position.get(str(t), -1) for t in tokens), dtype=np.int64, count=len(tokens))
    out = fresh.detach().clone()
    found = np.flatnonzero(rows >= 0)
    out[torch.from_numpy(found)] = saved[torch.from_numpy(rows[found])]
    return out


def load_rec_pre(stage: StageDir, config: Any, train_dataset: Any, material: Mapping[str, Any]) -> torch.nn.Module:
    """Rebuild ``Rec_pre`` from ``rec_pre.pt`` (``weights_only=True``), rows mapped by raw id."""
    payload = torch.load(stage.file(CHECKPOINT), map_location="cpu", weights_only=True)
    backbone = str(material["backbone"])
    if payload["backbone"] != backbone:
        raise ValueError(f"{stage.file(CHECKPOINT)} holds {payload['backbone']}, expected {backbone}")
    cfg = _pretrain_config(config, backbone, int(material["epochs"]))
    with _isolated_rng(int(config_get(config, "seed", 2020))):
        model = _model_class(backbone)(cfg, train_dataset)
    state = dict(payload["state_dict"])
    own = model.state_dict()
    for key, field, saved_tokens in (
        ("user_embedding.weight", train_dataset.uid_field, payload["user_tokens"]),
        ("item_embedding.weight", train_dataset.iid_field, payload["item_tokens"]),
    ):
        state[key] = _remap_rows(own[key], state[key], saved_tokens, train_dataset.field2id_token[field])
    model.load_state_dict(state)
    model.to(cfg["device"])
    model.eval()
    return model


@torch.no_grad()
def propagated_embeddings(model: torch.nn.Module) -> Tuple[Tensor, Tensor]:
    r"""``(user_e [n_U, d], item_e [n_I, d])`` of ``Rec_pre`` on G in eval mode (no dropout).

    Its score of a pair is :math:`\hat y_{ui} = \langle e_u, e_i \rangle`.
    """
    was_training = model.training
    model.eval()
    try:
        user_e, item_e = model.propagate()
    finally:
        model.train(was_training)
    return user_e.detach(), item_e.detach()

"""Seconds per training epoch: RecBole's LightGCN / NGCF next to the plugin's backbones.

Same config (RecBole defaults: dim 64, batch 2048, lr 1e-3), same data (ml-100k from the
recbole wheel), same seed. Training epochs run round-robin across the models, so a busy
machine slows all of them alike. Each model keeps its own random state (python, numpy,
torch) between its epochs, so it trains as it would alone. Prints the median seconds per
training epoch, the time of one full-sort evaluation on the validation split, and the
validation Recall@20 reached (a sanity check that the fast path learns the same thing).

    python benchmarks/backbone_speed.py                  # all six, 3 epochs each
    python benchmarks/backbone_speed.py --epochs 5 --models LightGCN BackboneLightGCN:csr

Not part of CI.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import recbole_llmhni  # noqa: E402,F401  (compat shims first)

from _rng import rng_state, set_rng_state  # benchmarks/_rng.py

DEFAULT_MODELS = [
    "LightGCN",
    "BackboneLightGCN:coo",
    "BackboneLightGCN:csr",
    "NGCF",
    "BackboneNGCF:coo",
    "BackboneNGCF:csr",
]
BACKBONE_KEYS = {
    "embedding_size": 64,
    "n_layers": 2,
    "reg_weight": 1e-5,
    "hidden_size_list": [64, 64, 64],
    "node_dropout": 0.0,
    "message_dropout": 0.1,
}


def _model_class(name: str):
    from recbole.model.general_recommender import NGCF, LightGCN

    from recbole_llmhni.models.backbones import BackboneLightGCN, BackboneNGCF

    classes = {"LightGCN": LightGCN, "NGCF": NGCF, "BackboneLightGCN": BackboneLightGCN, "BackboneNGCF": BackboneNGCF}
    return classes[name]


def _setup(spec: str, use_gpu: bool):
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_trainer, init_seed

    import torch

    name, _, layout = spec.partition(":")
    cls = _model_class(name)
    config = Config(
        model=cls,
        dataset="ml-100k",
        config_dict={
            "data_path": str(Path(recbole.__file__).parent / "dataset_example"),
            "show_progress": False,
            "state": "WARNING",
            "metrics": ["Recall", "NDCG"],
            "topk": [20],
            "valid_metric": "Recall@20",
            "llmhni_adj_layout": layout or "csr",
            **BACKBONE_KEYS,
        },
    )
    if not use_gpu:  # RecBole 1.2.1 ignores use_gpu and takes CUDA whenever it is available
        config["device"] = torch.device("cpu")
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = cls(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.eval_collector.data_collect(train_data)
    return {"spec": spec, "trainer": trainer, "train": train_data, "valid": valid_data, "epochs": []}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="NAME or NAME:coo|csr")
    parser.add_argument("--gpu", action="store_true", help="train on CUDA; default CPU")
    args = parser.parse_args(argv)

    import torch

    sys.argv = sys.argv[:1]  # RecBole parses --key=value from the command line
    os.chdir(tempfile.mkdtemp(prefix="backbone_speed_"))  # RecBole writes log/ and saved/ to cwd
    runs = []
    for spec in args.models:
        runs.append(_setup(spec, args.gpu))
        runs[-1]["rng"] = rng_state()
    for epoch in range(args.epochs):
        for run in runs:
            set_rng_state(run["rng"])  # each model draws the stream it would draw alone
            run["trainer"].model.train()
            start = time.perf_counter()
            run["trainer"]._train_epoch(run["train"], epoch, show_progress=False)
            run["epochs"].append(time.perf_counter() - start)
            run["rng"] = rng_state()
    for run in runs:
        start = time.perf_counter()
        result = run["trainer"].evaluate(run["valid"], load_best_model=False, show_progress=False)
        run["eval"] = time.perf_counter() - start
        run["recall"] = float(result["recall@20"])

    device = runs[0]["trainer"].device
    print(
        f"ml-100k on {device}, {args.epochs} epochs each, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'model':<24}{'s/epoch (median)':>18}{'epochs (s)':>28}{'full-sort eval (s)':>20}{'valid R@20':>12}")
    for run in runs:
        epochs = " ".join(f"{t:.2f}" for t in run["epochs"])
        median = statistics.median(run["epochs"])
        print(f"{run['spec']:<24}{median:>18.2f}{epochs:>28}{run['eval']:>20.2f}{run['recall']:>12.4f}")


if __name__ == "__main__":
    main()

"""Check that a dataset is present locally before RecBole looks for it.

RecBole answers a dataset it cannot find by downloading it. This plugin never touches the
network: a missing dataset gets an error that says where it was looked for and how to
prepare it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

__all__ = ["DatasetNotFoundError", "check_dataset_present"]


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's atomic files are not under ``data_path``."""


def check_dataset_present(config: Mapping) -> Path:
    """Return the dataset directory, or raise :class:`DatasetNotFoundError` with the fix.

    Present means ``<name>.inter`` or, with ``benchmark_filename``, every
    ``<name>.<part>.inter`` exists in ``config['data_path']`` (RecBole's dataset directory).
    """
    name = config["dataset"]
    directory = Path(config["data_path"])
    parts = config["benchmark_filename"] if "benchmark_filename" in config else None
    wanted = [f"{name}.{part}.inter" for part in parts] if parts else [f"{name}.inter"]
    missing = [f for f in wanted if not (directory / f).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"Dataset '{name}' is not available locally: {directory} lacks {', '.join(missing)}. "
            "recbole-llmhni never downloads data. To use RLMRec data (amazon-books, yelp, steam), run\n"
            f"    python -m recbole_llmhni prepare rlmrec --src <dir with trn_mat.pkl, val_mat.pkl, "
            f"tst_mat.pkl and profiles> --dataset {name} --out {directory.parent}\n"
            "or put RecBole atomic files there yourself (see RecBole's docs on atomic files). "
            "ml-100k needs nothing: it ships with RecBole."
        )
    return directory

"""A dataset that is not present locally fails before RecBole tries a download."""
import socket

import pytest

from recbole_llmhni.data.locate import DatasetNotFoundError
from recbole_llmhni.quick_start import run_recbole_llmhni


def test_missing_dataset_names_directory_and_prepare_command(recbole_workdir, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(DatasetNotFoundError) as info:
        run_recbole_llmhni(model="BPR", dataset="amazon-books", config_dict={"data_path": "nowhere"})
    message = str(info.value)
    assert "nowhere/amazon-books" in message
    assert "python -m recbole_llmhni prepare rlmrec" in message and "--dataset amazon-books" in message


def test_missing_benchmark_part_is_named(recbole_workdir, tiny_dataset):
    (tiny_dataset["dir"] / "tiny.test.inter").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"tiny\.test\.inter"):
        run_recbole_llmhni(model="BPR", dataset="tiny", config_dict={"data_path": tiny_dataset["data_path"]})

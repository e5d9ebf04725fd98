"""LLMHNIConfig layers the plugin's defaults between RecBole's and the user's."""
import pytest

from recbole_llmhni.config import LLMHNIConfig
from recbole_llmhni.registry import UnknownModelError


def test_plugin_protocol_defaults_apply_to_builtin_models(recbole_workdir):
    config = LLMHNIConfig(model="BPR", dataset="ml-100k")
    assert config["metrics"] == ["Recall", "NDCG"]
    assert config["topk"] == [10, 20]
    assert config["valid_metric"] == "Recall@20"
    assert config["llmhni_noise_ratio"] == 0.0


def test_user_config_wins_over_plugin_defaults(recbole_workdir):
    config = LLMHNIConfig(model="BPR", dataset="ml-100k", config_dict={"topk": [5], "llmhni_noise_ratio": 0.1})
    assert config["topk"] == [5] and config["llmhni_noise_ratio"] == 0.1


def test_command_line_wins_over_config_dict(recbole_workdir, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "argv", ["run", "--learning_rate=0.05"])
    config = LLMHNIConfig(model="BPR", dataset="ml-100k", config_dict={"learning_rate": 0.01})
    assert config["learning_rate"] == 0.05


def test_plugin_model_yaml_is_layered(recbole_workdir):
    config = LLMHNIConfig(model="BackboneLightGCN", dataset="ml-100k")
    assert config["model"] == "BackboneLightGCN"
    assert config["n_layers"] is not None and config["embedding_size"] is not None


def test_prepared_dataset_yaml_is_layered(recbole_workdir, tiny_dataset):
    config = LLMHNIConfig(model="BPR", dataset="tiny", config_dict={"data_path": tiny_dataset["data_path"]})
    assert config["benchmark_filename"] == ["train", "valid", "test"]
    assert config["data_path"].endswith("tiny")


def test_unknown_model_is_a_clear_error(recbole_workdir):
    with pytest.raises(UnknownModelError, match="Known models"):
        LLMHNIConfig(model="NoSuchModel", dataset="ml-100k")


def test_api_key_is_masked_when_config_is_printed(recbole_workdir):
    config = LLMHNIConfig(model="BPR", dataset="ml-100k", config_dict={"llmhni_api_key": "sk-secret-123"})
    assert "sk-secret-123" not in str(config)
    assert config["llmhni_api_key"] == "sk-secret-123"

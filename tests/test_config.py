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


# ----------------------------------------------------------------------------- defaults and checks
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

from recbole_llmhni.config import ConfigError, plugin_defaults, validate  # noqa: E402
from recbole_llmhni.config.defaults import OVERALL_YAML  # noqa: E402
from recbole_llmhni.config.schema import KEYS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_the_yaml_and_the_schema_name_the_same_keys_and_every_default_is_valid():
    shipped = yaml.safe_load(OVERALL_YAML.read_text())
    assert {k for k in shipped if k.startswith("llmhni_")} == set(KEYS)
    for key, spec in KEYS.items():
        ok, _ = spec.accepts(plugin_defaults()[key])
        assert ok, (key, plugin_defaults()[key])


def test_llmhni_keys_live_only_in_overall_yaml():
    """One home for every default: the model YAMLs hold RecBole's own keys only."""
    for path in (REPO / "recbole_llmhni" / "properties" / "model").glob("*.yaml"):
        assert not [k for k in (yaml.safe_load(path.read_text()) or {}) if k.startswith("llmhni_")], path.name
    # no module keeps a table of defaults of its own
    for path in (REPO / "recbole_llmhni").rglob("*.py"):
        text = path.read_text()
        assert "DEFAULTS: Dict" not in text and "DEFAULT_PRETRAIN_EPOCHS" not in text, path


def _invalid(spec):
    """A value ``spec`` refuses."""
    if spec.choices:
        return "no-such-choice"
    if spec.kind is bool:
        return "yes"
    if spec.kind is str:
        return 42
    if spec.low is not None:
        return spec.low - 1
    if spec.high is not None:
        return spec.high + 1
    return "not-a-number"


@pytest.mark.parametrize("key", sorted(KEYS))
def test_every_invalid_value_is_one_line_naming_key_value_and_what_is_allowed(key):
    value = _invalid(KEYS[key])
    with pytest.raises(ConfigError) as info:
        validate({key: value})
    message = str(info.value)
    assert "\n" not in message and key in message and repr(value) in message
    assert "use " in message  # what is allowed


@pytest.mark.parametrize("value, expected", [(True, True), ("CSR", "csr"), (1e3, 1000)])
def test_values_are_normalised(value, expected):
    key = {True: "llmhni_denoise", "CSR": "llmhni_adj_layout", 1e3: "llmhni_cand_max_pairs"}[value]
    assert validate({key: value})[key] == expected


def test_unknown_plugin_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="Did you mean llmhni_neg_candidates"):
        validate({"llmhni_neg_candidate": 8})


def test_config_refuses_bad_values_when_built(recbole_workdir):
    with pytest.raises(ConfigError, match="llmhni_edge_drop_rate"):
        LLMHNIConfig(model="LLMHNI_LightGCN", dataset="ml-100k", config_dict={"llmhni_edge_drop_rate": 1.5})
    with pytest.raises(ConfigError, match="llmhni_neg_topk=9 exceeds llmhni_neg_candidates=8"):  # auto: when M is chosen
        LLMHNIConfig(model="LLMHNI_LightGCN", dataset="ml-100k", config_dict={"llmhni_neg_topk": 9,
                                                                                   "llmhni_neg_candidates": 8})


@pytest.mark.parametrize("arg", ["--llmhni_rater=gpt5", "--llmhni_neg_candidates=-1", "--llmhni_edge_drop_rate=1.5"])
def test_the_run_script_fails_in_seconds_with_one_line_and_writes_nothing(tmp_path, arg):
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(REPO / "run_recbole_llmhni.py"), "--model=LLMHNI_LightGCN", "--dataset=ml-100k", arg],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and arg[2:].split("=")[0] in lines[0] and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no log/, saved/ or artifact folder
    assert time.perf_counter() - started < 60

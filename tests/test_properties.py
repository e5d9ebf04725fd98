"""The experiment YAMLs of the top-level ``properties/``: what users pass with --config_files."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FILES = sorted((REPO / "properties").rglob("*.yaml"))


def test_there_are_noise_ablation_dns_s8_and_dataset_files():
    names = {f.relative_to(REPO / "properties").as_posix() for f in FILES}
    assert {"negatives/dns.yaml", "s8/on.yaml", "noise/noise-0.2.yaml", "ablation/wo-alignment.yaml"} <= names
    assert {f"dataset/{d}.yaml" for d in ("amazon-books", "ml-100k", "yelp", "steam")} <= names


def _known_keys():
    """Every key RecBole 1.2.1 reads from its YAMLs (overall, dataset, every model), the plugin's
    ``llmhni_*`` keys (its schema) and the keys of its model YAMLs and the denoisers' schema."""
    import recbole

    from recbole_llmhni.config.schema import DENOISER_KEYS, KEYS

    yamls = list((Path(recbole.__file__).parent / "properties").rglob("*.yaml"))
    yamls += list((REPO / "recbole_llmhni" / "properties").rglob("*.yaml"))
    known = set(KEYS) | set(DENOISER_KEYS)
    for path in yamls:
        known |= set(yaml.safe_load(path.read_text()) or {})
    return known


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(REPO / "properties").as_posix())
def test_each_file_parses_and_holds_only_keys_recbole_or_the_plugin_knows(path):
    keys = yaml.safe_load(path.read_text())
    assert isinstance(keys, dict) and keys, path
    unknown = sorted(set(keys) - _known_keys())
    assert not unknown, f"{path.name}: keys neither RecBole nor the plugin reads: {unknown}"


@pytest.mark.parametrize("dataset", ["amazon-books", "yelp", "steam"])
def test_rlmrec_dataset_files_keep_the_layout_prepare_writes(dataset):
    """The RLMRec datasets' files hold the same layout keys as the YAML ``prepare rlmrec`` writes."""
    from recbole_llmhni.prepare.rlmrec import dataset_config_text

    written = yaml.safe_load(dataset_config_text(dataset, REPO))
    mine = yaml.safe_load((REPO / "properties" / "dataset" / f"{dataset}.yaml").read_text())
    for key in ("benchmark_filename", "user_inter_num_interval", "item_inter_num_interval", "metrics", "topk",
                "valid_metric"):
        assert mine[key] == written[key], key
    assert {k: v for k, v in written["eval_args"].items() if k != "split"} == mine["eval_args"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(REPO / "properties").as_posix())
def test_each_file_reaches_the_config_as_written(path, monkeypatch, tmp_path):
    from recbole_llmhni.config import LLMHNIConfig

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    keys = yaml.safe_load(path.read_text())
    model = "LightGCN" if path.parent.name == "negatives" else "LLMHNI_LightGCN"  # DNS is for RecBole's models
    dataset = path.stem if path.parent.name == "dataset" else "ml-100k"
    config = LLMHNIConfig(model=model, dataset=dataset, config_file_list=[str(path)])
    for key, value in keys.items():
        if key == "train_neg_sample_args":  # RecBole normalises it; the fields given survive
            assert all(config[key][k] == v for k, v in value.items()), config[key]
        elif key == "eval_args":  # RecBole spells mode out per phase: full -> {valid: full, test: full}
            for k, v in value.items():
                assert config[key][k] == ({"valid": v, "test": v} if k == "mode" else v), (k, config[key])
        elif key == "data_path":  # RecBole appends the dataset's folder
            assert Path(config[key]) == Path(value) / dataset
        else:
            assert config[key] == value, key

"""The experiment YAMLs of the top-level ``properties/``: what users pass with --config_files."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FILES = sorted((REPO / "properties").rglob("*.yaml"))


def test_there_are_noise_ablation_dns_and_s8_files():
    names = {f.relative_to(REPO / "properties").as_posix() for f in FILES}
    assert {"negatives/dns.yaml", "s8/on.yaml", "noise/noise-0.2.yaml", "ablation/wo-alignment.yaml"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(REPO / "properties").as_posix())
def test_each_file_reaches_the_config_as_written(path, monkeypatch, tmp_path):
    from recbole_llmhni.config import LLMHNIConfig

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    keys = yaml.safe_load(path.read_text())
    model = "LightGCN" if path.parent.name == "negatives" else "LLMHNI_LightGCN"  # DNS is for RecBole's models
    config = LLMHNIConfig(model=model, dataset="ml-100k", config_file_list=[str(path)])
    for key, value in keys.items():
        if key == "train_neg_sample_args":  # RecBole normalises it; the fields given survive
            assert all(config[key][k] == v for k, v in value.items()), config[key]
        else:
            assert config[key] == value, key

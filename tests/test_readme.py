"""The README's fresh-machine commands and config table stay true to the code and CI."""
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _fresh_machine_commands():
    head = README.split("\n## ", 1)[0]  # the lines before the first section
    return re.findall(r"```(?:bash|sh)?\n(.+?)\n```", head, flags=re.S)


def test_readme_opens_with_main_job_and_test_commands():
    main_job, tests = _fresh_machine_commands()[:2]
    assert "torch==2.13.0" in main_job and "run_recbole_llmhni.py" in main_job
    assert "--dataset=ml-100k" in main_job
    assert "torch==2.13.0" in tests and "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command():
    tests = _fresh_machine_commands()[1].strip()
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines


def test_every_plugin_config_key_is_documented():
    keys = set()
    for path in (REPO / "recbole_llmhni" / "properties").rglob("*.yaml"):
        keys |= {k for k in (yaml.safe_load(path.read_text()) or {}) if k.startswith("llmhni_")}
    undocumented = sorted(k for k in keys if f"`{k}`" not in README)
    assert not undocumented, f"README lacks these config keys: {undocumented}"


def test_every_denoiser_model_and_key_is_in_the_readme_table():
    from recbole_llmhni.config.schema import DENOISER_KEYS
    from recbole_llmhni.registry import PLUGIN_MODELS

    denoisers = [m for m, module in PLUGIN_MODELS.items() if module.endswith(".denoisers")]
    assert len(denoisers) == 10
    missing = [name for name in denoisers + sorted(DENOISER_KEYS) if f"`{name}`" not in README]
    assert not missing, f"README lacks: {missing}"

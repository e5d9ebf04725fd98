"""Where the plugin keeps its cached artifacts: ``<llmhni_artifact_dir>/<dataset>/<stage>/``.

Every artifact is keyed by raw ids (never RecBole's internal ids), so it stays valid when
RecBole remaps ids differently (another filter, another split seed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

__all__ = ["artifact_dir"]


def artifact_dir(config: Mapping, stage: str) -> Path:
    """``<llmhni_artifact_dir>/<dataset>/<stage>``, created on demand."""
    root = config["llmhni_artifact_dir"] if "llmhni_artifact_dir" in config else "llmhni_artifacts"
    path = Path(root or "llmhni_artifacts") / str(config["dataset"]) / stage
    path.mkdir(parents=True, exist_ok=True)
    return path

"""Content-keyed stage directories: ``<llmhni_artifact_dir>/<dataset>/<stage>/<key>/``.

A stage directory holds the stage's files and a ``manifest.json`` written *last*. It counts as
complete only if its manifest exists and names the same key, so a run killed mid-stage leaves
an incomplete directory that the next run simply recomputes (every file is written atomically,
so a file that exists is whole).

The key of a stage is :func:`~recbole_llmhni.artifacts.fingerprint.digest` of everything its
output depends on (the upstream stage's key, its own config values, the training edges by raw
id), so a changed input selects another directory instead of silently reusing a stale one,
and several configurations of one dataset live side by side.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping

from recbole_llmhni.artifacts.files import atomic_write_json

__all__ = ["MANIFEST", "DEFAULT_ROOT", "artifact_dir", "StageDir"]

MANIFEST = "manifest.json"
DEFAULT_ROOT = "llmhni_artifacts"


def artifact_dir(config: Mapping, stage: str) -> Path:
    """``<llmhni_artifact_dir>/<dataset>/<stage>``, created on demand."""
    root = config["llmhni_artifact_dir"] if "llmhni_artifact_dir" in config else None
    path = Path(root or DEFAULT_ROOT) / str(config["dataset"]) / stage
    path.mkdir(parents=True, exist_ok=True)
    return path


class StageDir:
    """The artifact directory of one stage for one key."""

    def __init__(self, config: Any, stage: str, key: str) -> None:
        self.stage = stage
        self.key = key
        self.path: Path = artifact_dir(config, stage) / key

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def is_complete(self) -> bool:
        """True if ``manifest.json`` exists, parses, and names this key."""
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(manifest, dict) and manifest.get("key") == self.key

    def manifest(self) -> Dict[str, Any]:
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def complete(self, material: Mapping[str, Any], **extra: Any) -> Path:
        """Mark the stage complete: write the manifest (key, its material, ``extra``) last."""
        return atomic_write_json(self.manifest_path, {"key": self.key, "stage": self.stage, "material": dict(material), **extra})

    def __repr__(self) -> str:
        return f"StageDir({self.path})"

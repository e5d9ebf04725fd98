"""The S6 prompts (user-centric and item-centric rating) and the strict parser of the answer.

Templates are plain text files shipped in ``recbole_llmhni/llm/prompts/`` (or a folder of
your own, ``llmhni_prompt_dir``) with ``string.Template`` placeholders:

=====================  ==================================================
``system.txt``         the system message (no placeholders)
``user_centric.txt``   ``${user_profile}``, ``${item_profile}``
``item_centric.txt``   ``${liked_items}``, ``${item_profile}``
``repair.txt``         the follow-up turn after an answer that did not parse
=====================  ==================================================

Profile text is *data*: it is inserted between tags (``<user_profile>`` ...), with ``<`` and
``>`` escaped so no profile can close a tag and pose as an instruction, and the
system message says that tagged text is never an instruction.

The answer must be a JSON object whose ``rating`` is exactly ``"High"``, ``"Medium"`` or
``"Low"`` (:func:`parse_rating`); anything else -- prose, a code fence, another label, a
different case -- does not count. With ``llmhni_response_format=json_schema`` (or
``json_object_schema`` for llama-cpp-python's server) the server is asked to enforce that shape
(:func:`response_format`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set

__all__ = [
    "LABELS",
    "UNPARSED",
    "PromptSet",
    "as_data",
    "parse_rating",
    "response_format",
]

LABELS = ("High", "Medium", "Low")
UNPARSED = "unparsed"

_FILES: Dict[str, Set[str]] = {
    "system.txt": set(),
    "user_centric.txt": {"user_profile", "item_profile"},
    "item_centric.txt": {"liked_items", "item_profile"},
    "repair.txt": set(),
}

_SCHEMA = {
    "type": "object",
    "properties": {"rating": {"type": "string", "enum": list(LABELS)}},
    "required": ["rating"],
    "additionalProperties": False,
}


def as_data(text: str) -> str:
    """Profile text made safe to put between tags: ``<`` and ``>`` become ``&lt;`` / ``&gt;``."""
    cleaned = str(text).replace("<", "&lt;").replace(">", "&gt;").strip()
    return cleaned if cleaned else "(empty profile)"


def parse_rating(content: Optional[str]) -> Optional[str]:
    """The label of a strictly well-formed answer, else ``None``.

    Accepted: a JSON object (surrounding whitespace allowed) with a ``rating`` that is exactly
    one of :data:`LABELS`. Extra keys are tolerated (JSON mode may add a reason).
    """
    if not isinstance(content, str):
        return None
    try:
        answer = json.loads(content.strip())
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(answer, dict):
        return None
    label = answer.get("rating")
    return label if isinstance(label, str) and label in LABELS else None


def response_format(mode: str) -> Optional[Dict[str, Any]]:
    """The ``response_format`` request parameter of ``mode``.

    ``json_schema``: OpenAI's structured output (``{"type": "json_schema", "json_schema": ...}``;
    OpenAI, vLLM, llama.cpp's C++ ``llama-server``). ``json_object_schema``: JSON mode with the
    schema inline (``{"type": "json_object", "schema": ...}``), the form llama-cpp-python's
    server accepts -- it turns the schema into a grammar; to the ``json_schema`` form it answers
    HTTP 500 (a request validation error: type must be ``text`` or ``json_object``), which is
    retried as a server error until ``llmhni_max_retries`` runs out. ``json_object``: JSON mode without a schema. ``none``: plain text.
    """
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "rating", "strict": True, "schema": _SCHEMA}}
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": _SCHEMA}
    if mode == "json_object":
        return {"type": "json_object"}
    if mode == "none":
        return None
    raise ValueError(f"llmhni_response_format={mode!r}; use json_schema, json_object_schema, json_object or none.")


def _placeholders(template: Template) -> Set[str]:
    names = set()
    for match in template.pattern.finditer(template.template):
        name = match.group("named") or match.group("braced")
        if name:
            names.add(name)
    return names


@dataclass(frozen=True)
class PromptSet:
    """The four templates of one prompt folder, validated."""

    system: str
    user_centric: Template
    item_centric: Template
    repair: str
    source: str

    @classmethod
    def load(cls, prompt_dir: Optional[str] = None) -> "PromptSet":
        """Read the templates from ``prompt_dir`` or the package.

        Raises:
            FileNotFoundError: a template file is missing (names the file).
            ValueError: a template lacks a required placeholder or has an unknown one.
        """
        texts: Dict[str, str] = {}
        if prompt_dir is None:
            folder = resources.files("recbole_llmhni.llm") / "prompts"
            source = "recbole_llmhni/llm/prompts"
            for name in _FILES:
                texts[name] = (folder / name).read_text(encoding="utf-8")
        else:
            folder_path = Path(prompt_dir)
            source = str(folder_path)
            for name in _FILES:
                path = folder_path / name
                if not path.is_file():
                    raise FileNotFoundError(
                        f"{path}: prompt template missing; llmhni_prompt_dir must contain "
                        f"{', '.join(_FILES)} (copy them from recbole_llmhni/llm/prompts)."
                    )
                texts[name] = path.read_text(encoding="utf-8")
        for name, required in _FILES.items():
            found = _placeholders(Template(texts[name]))
            missing, unknown = required - found, found - required
            if missing or unknown:
                raise ValueError(
                    f"{source}/{name}: placeholders must be exactly "
                    f"{sorted('${' + p + '}' for p in required) or 'none'}; "
                    f"missing {sorted(missing) or 'none'}, unknown {sorted(unknown) or 'none'} "
                    "(write a literal $ as $$)."
                )
        return cls(
            system=texts["system.txt"].strip(),
            user_centric=Template(texts["user_centric.txt"]),
            item_centric=Template(texts["item_centric.txt"]),
            repair=texts["repair.txt"].strip(),
            source=source,
        )

    def _messages(self, user_text: str) -> List[Dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user_text.strip()}]

    def user_messages(self, user_profile: str, item_profile: str) -> List[Dict[str, str]]:
        """Messages of the user-centric view: P_u against P_i."""
        text = self.user_centric.substitute(user_profile=as_data(user_profile), item_profile=as_data(item_profile))
        return self._messages(text)

    def item_messages(self, liked_item_profiles: Sequence[str], item_profile: str) -> List[Dict[str, str]]:
        """Messages of the item-centric view: the user's best-scored liked items against P_i."""
        if liked_item_profiles:
            liked = "\n".join(
                f'<item n="{k}">\n{as_data(p)}\n</item>' for k, p in enumerate(liked_item_profiles, start=1)
            )
        else:
            liked = "(none: the user has no other liked items)"
        text = self.item_centric.substitute(liked_items=liked, item_profile=as_data(item_profile))
        return self._messages(text)

    def repair_messages(
        self, messages: Sequence[Mapping[str, str]], previous_answer: str
    ) -> List[Dict[str, str]]:
        """``messages`` plus the answer that did not parse and a request to answer again."""
        return [dict(m) for m in messages] + [
            {"role": "assistant", "content": previous_answer},
            {"role": "user", "content": self.repair},
        ]

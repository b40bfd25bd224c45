"""The closed vocabulary: well formed, and every action documented in the README."""

import re
from pathlib import Path

from app.audit.actions import AuditAction, AuditEntity

README = Path(__file__).resolve().parents[2] / "README.md"


def _vocabulary_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("### Vocabulary", 1)[1].split("\n### ", 1)[0]


def _documented_actions() -> set[str]:
    return set(re.findall(r"`([a-z_]+\.[a-z_]+)`", _vocabulary_section()))


def test_every_action_is_entity_dot_verb_and_unique() -> None:
    values = [action.value for action in AuditAction]

    assert all(re.fullmatch(r"[a-z_]+\.[a-z_]+", value) for value in values)
    assert len(set(values)) == len(values)


def test_the_readme_vocabulary_lists_exactly_the_actions() -> None:
    assert _documented_actions() == {action.value for action in AuditAction}


def test_every_entity_type_is_documented() -> None:
    section = _vocabulary_section()

    assert all(f"`{entity.value}`" in section for entity in AuditEntity)

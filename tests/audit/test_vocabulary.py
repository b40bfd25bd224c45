"""The closed vocabulary: well formed, and every action documented in the README."""

import re
from pathlib import Path

from app.audit.actions import AuditAction

README = Path(__file__).resolve().parents[2] / "README.md"


def _documented_actions() -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Vocabulary", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"`([a-z_]+\.[a-z_]+)`", section))


def test_every_action_is_entity_dot_verb_and_unique() -> None:
    values = [action.value for action in AuditAction]

    assert all(re.fullmatch(r"[a-z_]+\.[a-z_]+", value) for value in values)
    assert len(set(values)) == len(values)


def test_the_readme_vocabulary_lists_exactly_the_actions() -> None:
    assert _documented_actions() == {action.value for action in AuditAction}

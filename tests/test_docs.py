"""`docs/adding-a-domain.md` names only files that exist, so it cannot go stale silently."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKLIST = ROOT / "docs" / "adding-a-domain.md"
PATH = re.compile(r"`((?:app|tests|migrations|docs)/[\w./-]+\.(?:py|md)|Makefile|pyproject\.toml)`")


def test_every_file_the_checklist_names_exists() -> None:
    named = set(PATH.findall(CHECKLIST.read_text(encoding="utf-8")))

    assert "app/factory.py" in named
    assert sorted(path for path in named if not (ROOT / path).is_file()) == []


def test_the_readme_points_to_the_checklist() -> None:
    assert "docs/adding-a-domain.md" in (ROOT / "README.md").read_text(encoding="utf-8")

"""The docs name only files, settings, make targets and metrics that exist: no silent staleness."""

import re
from pathlib import Path

from prometheus_client import REGISTRY

import app.core.metrics  # noqa: F401 - registers Roombook's metrics
from app.core.config import Settings
from tests.core.test_settings_documented import env_names

ROOT = Path(__file__).resolve().parents[1]
CHECKLIST = ROOT / "docs" / "adding-a-domain.md"
RUNBOOK = ROOT / "docs" / "operations.md"
SETTING = re.compile(r"\b[A-Z][A-Z0-9_]*__[A-Z0-9_]+\b")
MAKE_TARGET = re.compile(r"`make ([a-z][a-z-]*)")
METRIC = re.compile(r"\broombook_[a-z]+_[a-z_]+\b")
SAMPLE_SUFFIXES = ("", "_total", "_bucket", "_count", "_sum")
PATH = re.compile(r"`((?:app|tests|migrations|docs)/[\w./-]+\.(?:py|md)|Makefile|pyproject\.toml)`")


def test_every_file_the_checklist_names_exists() -> None:
    named = set(PATH.findall(CHECKLIST.read_text(encoding="utf-8")))

    assert "app/factory.py" in named
    assert sorted(path for path in named if not (ROOT / path).is_file()) == []


def test_the_readme_points_to_the_checklist() -> None:
    assert "docs/adding-a-domain.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_runbook_names_only_real_settings() -> None:
    named = set(SETTING.findall(RUNBOOK.read_text(encoding="utf-8")))

    assert "HTTP__TRUSTED_PROXIES" in named
    assert sorted(named - set(env_names(Settings))) == []


def test_the_runbook_names_only_real_make_targets() -> None:
    named = set(MAKE_TARGET.findall(RUNBOOK.read_text(encoding="utf-8")))
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")

    assert "prune" in named
    assert sorted(t for t in named if not re.search(rf"^{t}:", makefile, re.M)) == []


def test_the_runbook_names_only_real_metrics() -> None:
    named = set(METRIC.findall(RUNBOOK.read_text(encoding="utf-8")))
    families = {family.name for family in REGISTRY.collect()}
    samples = {family + suffix for family in families for suffix in SAMPLE_SUFFIXES}

    assert "roombook_http_requests_total" in named
    assert sorted(named - samples) == []


def test_the_readme_points_to_the_runbook() -> None:
    assert "docs/operations.md" in (ROOT / "README.md").read_text(encoding="utf-8")

"""Services never see HTTP: no web framework, no status codes, no header names.

A service raises a domain error that carries its status; the edge renders it. A service
that names a status or a header in code, docstrings or comments has started to do the
edge's job, and the next domain copies it.
"""

import ast
import re
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
SERVICES = sorted(APP.glob("*/service.py"))
STATUSES = "|".join(
    str(status) for status in (400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 428, 429, 500, 503)
)
HTTP_WORDS = re.compile(
    rf"\b({STATUSES})\b|If-Match|ETag|Retry-After|WWW-Authenticate|headers?\b", re.IGNORECASE
)
WEB_FRAMEWORKS = ("fastapi", "starlette")


def test_there_are_services_to_check() -> None:
    assert {path.parent.name for path in SERVICES} >= {"audit", "auth", "users"}


def test_services_import_no_web_framework() -> None:
    found = []
    for path in SERVICES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            found += [f"{path.parent.name}: {n}" for n in names if n.startswith(WEB_FRAMEWORKS)]
    assert found == []


def test_services_name_no_status_or_header() -> None:
    found = [
        f"{path.parent.name}/service.py:{number}: {line.strip()}"
        for path in SERVICES
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if HTTP_WORDS.search(line)
    ]
    assert found == []

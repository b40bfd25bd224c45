"""Compact before/after diffs with the one central rule that keeps secrets out of the trail."""

import enum
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

REDACTED = "[redacted]"
# One rule for every domain: any key naming a password, secret, token, key, credential or
# what carries them over HTTP is redacted, which covers password_hash, token_hash,
# refresh_token, client_secret, api_key, Authorization, Cookie/Set-Cookie and the like.
SECRET_KEY_PATTERN = re.compile(
    r"password|passwd|secret|token|api_?key|private_?key|credential|authori[sz]ation|cookie"
)

_MISSING = object()


def is_secret_key(key: str) -> bool:
    """Whether a field of this name may hold a secret and must never be recorded."""
    return SECRET_KEY_PATTERN.search(key.lower()) is not None


def jsonable(value: Any) -> Any:  # noqa: PLR0911 - one return per JSON kind
    """Convert a value to plain JSON that survives a JSONB round trip unchanged.

    Floats and decimals become strings: JSONB stores numbers as `numeric`, so `1e20`
    would come back as an integer and the entry's hash would no longer match.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")  # JSONB cannot store NUL characters.
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(item) for item in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return str(value)  # UUID, Decimal, float, timedelta and anything else: their text form.


def redact(value: Any) -> Any:
    """Replace the value of every secret-named key, at any depth, with a marker."""
    if isinstance(value, dict):
        return {
            key: REDACTED if is_secret_key(key) else redact(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def diff(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Return `{"before": …, "after": …}` limited to the fields that differ, secrets redacted.

    A side is omitted when it has no fields (creations have no `before`, deletions no `after`).
    """
    old = jsonable(dict(before or {}))
    new = jsonable(dict(after or {}))
    changed = [
        key
        for key in sorted(old.keys() | new.keys())
        if old.get(key, _MISSING) != new.get(key, _MISSING)
    ]
    sides = {
        "before": {key: old[key] for key in changed if key in old},
        "after": {key: new[key] for key in changed if key in new},
    }
    return {side: redact(fields) for side, fields in sides.items() if fields}

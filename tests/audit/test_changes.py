"""The diff recorded in `changes` and the central redaction rule."""

import enum
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from app.audit.changes import REDACTED, diff, is_secret_key, jsonable, redact


class Colour(enum.Enum):
    """A plain enum for the conversion tests."""

    RED = "red"


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "password_hash",
        "new_password",
        "token",
        "token_hash",
        "refresh_token",
        "access_token",
        "secret",
        "client_secret",
        "api_key",
        "apiKey",
        "private_key",
        "Password_Hash",
        "credentials",
        "Authorization",
        "proxy_authorisation",
        "cookie",
        "set_cookie",
    ],
)
def test_secret_keys_are_recognised(key: str) -> None:
    assert is_secret_key(key) is True


@pytest.mark.parametrize("key", ["email", "role", "is_active", "name", "keyword", "session_id"])
def test_ordinary_keys_are_not_secret(key: str) -> None:
    assert is_secret_key(key) is False


def test_only_changed_fields_are_recorded() -> None:
    before = {"email": "a@example.com", "role": "member", "name": "Ann"}
    after = {"email": "b@example.com", "role": "member", "name": "Ann"}

    assert diff(before, after) == {
        "before": {"email": "a@example.com"},
        "after": {"email": "b@example.com"},
    }


def test_creation_has_only_after_and_deletion_only_before() -> None:
    assert diff(None, {"name": "Room A", "capacity": 4}) == {
        "after": {"capacity": 4, "name": "Room A"}
    }
    assert diff({"name": "Room A"}, None) == {"before": {"name": "Room A"}}


def test_added_and_removed_keys_appear_on_their_side_only() -> None:
    assert diff({"old": 1, "same": 2}, {"new": 3, "same": 2}) == {
        "before": {"old": 1},
        "after": {"new": 3},
    }


def test_nothing_changed_gives_an_empty_diff() -> None:
    assert diff({"a": 1}, {"a": 1}) == {}
    assert diff(None, None) == {}


def test_secrets_are_redacted_but_their_change_is_visible() -> None:
    before = {"email": "a@example.com", "password_hash": "$argon2id$old", "token_hash": "t1"}
    after = {"email": "a@example.com", "password_hash": "$argon2id$new", "token_hash": "t2"}

    changes = diff(before, after)

    assert changes == {
        "before": {"password_hash": REDACTED, "token_hash": REDACTED},
        "after": {"password_hash": REDACTED, "token_hash": REDACTED},
    }
    assert "$argon2id" not in str(changes)


def test_nested_secrets_are_redacted_at_any_depth() -> None:
    changes = diff(
        None,
        {"settings": {"refresh_token": "r", "theme": "dark", "items": [{"secret": "s", "n": 1}]}},
    )

    assert changes == {
        "after": {
            "settings": {
                "refresh_token": REDACTED,
                "theme": "dark",
                "items": [{"secret": REDACTED, "n": 1}],
            }
        }
    }


def test_unchanged_secrets_stay_out_entirely() -> None:
    changes = diff({"password": "x", "role": "member"}, {"password": "x", "role": "admin"})

    assert changes == {"before": {"role": "member"}, "after": {"role": "admin"}}


def test_redact_leaves_scalars_alone() -> None:
    assert redact("password") == "password"
    assert redact([{"token": 1}, 2]) == [{"token": REDACTED}, 2]


def test_values_become_plain_json_that_survives_jsonb() -> None:
    user_id = uuid.uuid4()
    moment = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)

    converted = jsonable(
        {
            "id": user_id,
            "at": moment,
            "day": date(2026, 1, 2),
            "clock": time(9, 30),
            "colour": Colour.RED,
            "price": Decimal("12.50"),
            "ratio": 1e20,
            "length": timedelta(minutes=30),
            "tags": ("a", "b"),
            "set": {"y", "x"},
            "nul": "a\x00b",
            "flag": True,
            "count": 3,
            "none": None,
            1: "integer key",
        }
    )

    assert converted == {
        "id": str(user_id),
        "at": "2026-01-02T03:04:05.600000+00:00",
        "day": "2026-01-02",
        "clock": "09:30:00",
        "colour": "red",
        "price": "12.50",
        "ratio": "1e+20",
        "length": "0:30:00",
        "tags": ["a", "b"],
        "set": ["x", "y"],
        "nul": "a\ufffdb",
        "flag": True,
        "count": 3,
        "none": None,
        "1": "integer key",
    }

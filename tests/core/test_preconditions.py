"""Core preconditions: strong ETags, `If-Match` parsing and the stale-version check."""

import pytest

from app.core.errors import PreconditionFailed
from app.core.preconditions import StaleVersion, check_version, etag, parse_if_match


def test_an_etag_is_the_quoted_version() -> None:
    assert etag(7) == '"7"'


@pytest.mark.parametrize(
    ("value", "versions"),
    [
        ('"3"', {3}),
        ('"3", "5"', {3, 5}),
        ('W/"3", "5"', {5}),
        ('W/"3"', set()),
        ('"abc"', set()),
        ("3", set()),
        ('"3" "5"', set()),
        ('"1234567890"', set()),
    ],
    ids=repr,
)
def test_only_strong_version_tags_name_versions(value: str, versions: set[int]) -> None:
    assert parse_if_match(value) == frozenset(versions)


def test_a_resource_at_an_expected_version_passes() -> None:
    check_version(current=4, expected_versions=frozenset({3, 4}), resource="room")


def test_a_resource_past_every_expected_version_is_stale_and_named() -> None:
    with pytest.raises(StaleVersion) as stale:
        check_version(current=5, expected_versions=frozenset({3, 4}), resource="room")

    assert isinstance(stale.value, PreconditionFailed)
    assert (stale.value.status, stale.value.code) == (412, "stale-version")
    assert stale.value.detail == "The room is at version 5; send its current ETag."

"""Optimistic concurrency for any versioned resource: strong ETags and `If-Match`.

A resource carries an integer `version`, bumped by every change. Reads send it as a
strong ETag; a change needs `If-Match` naming it. The router hands the service the
versions the caller expects, and the service's versioned UPDATE is the real guard.
"""

import re
from typing import Annotated

from fastapi import Header

from app.core.errors import PreconditionFailed, PreconditionRequired

ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e]*)"\s*(?:,|$)')
"""One entity tag of an `If-Match` list (RFC 9110 section 8.8.3), with the comma after it."""
VERSION_TAG = re.compile(r"\d{1,9}")


class StaleVersion(PreconditionFailed):
    """The resource has moved past every version the caller expected."""

    code = "stale-version"
    title = "Changed since it was read"


def etag(version: int) -> str:
    """The strong ETag of a resource version."""
    return f'"{version}"'


def check_version(*, current: int, expected_versions: frozenset[int], resource: str) -> None:
    """Raise `StaleVersion` unless the resource is at one of the expected versions.

    A cheap early answer only: the versioned UPDATE is what guards against races.
    """
    if current not in expected_versions:
        raise StaleVersion(f"The {resource} is at version {current}; send its current ETag.")


def parse_if_match(value: str) -> frozenset[int]:
    """The versions named by strong entity tags of an `If-Match` list.

    `If-Match` uses strong comparison (RFC 9110 section 13.1.1): a weak tag (`W/"3"`)
    never matches, so it names no version. A malformed list names none either.
    """
    versions: set[int] = set()
    position = 0
    while position < len(value):
        match = ENTITY_TAG.match(value, position)
        if match is None:
            return frozenset()
        weak, opaque = match.groups()
        if not weak and VERSION_TAG.fullmatch(opaque):
            versions.add(int(opaque))
        position = match.end()
    return frozenset(versions)


IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=256,
        description="The `ETag` from GET (strong; a list may name several). `*` is refused.",
    ),
]
"""The raw `If-Match` header of a change; `required_versions` reads it in the route."""


def required_versions(if_match: str | None) -> frozenset[int]:
    """The versions `If-Match` accepts: 428 when missing or `*`, 412 when it names none.

    Called in the route body, so the request has passed validation first: preconditions
    are evaluated after the normal request checks (RFC 9110 section 13.2.1), and an
    invalid body is a 422 whatever `If-Match` says. `*` would match any version and so
    protect nothing against lost updates: it is refused like a missing header.
    """
    if if_match is None or if_match.strip() == "*":
        raise PreconditionRequired(
            "Send If-Match with the ETag from GET, so concurrent changes are not lost."
        )
    versions = parse_if_match(if_match)
    if not versions:
        raise PreconditionFailed("If-Match names no version of this resource (strong ETags only).")
    return versions

"""The canonical serialisation and hash of a chain entry."""

import hashlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from app.audit.chain import ChainEntry, canonical_bytes, entry_hash, format_timestamp

ENTRY = ChainEntry(
    id=uuid.UUID("00000000-0000-4000-8000-000000000001"),
    seq=1,
    occurred_at=datetime(2026, 11, 24, 12, 0, 0, 5, tzinfo=UTC),
    action="user.created",
    actor_id=uuid.UUID("00000000-0000-4000-8000-0000000000aa"),
    actor_role="admin",
    request_id="req-1",
    client_ip="203.0.113.9",
    user_agent="pytest",
    entity_type="user",
    entity_id="42",
    changes={"after": {"role": "member", "email": "é@example.com"}},
    prev_hash="0" * 64,
)


def test_canonical_form_is_sorted_compact_json_with_fixed_formats() -> None:
    assert (
        canonical_bytes(ENTRY)
        == (
            '{"action":"user.created","actor_id":"00000000-0000-4000-8000-0000000000aa",'
            '"actor_role":"admin","changes":{"after":{"email":"é@example.com","role":"member"}},'
            '"client_ip":"203.0.113.9","entity_id":"42","entity_type":"user",'
            '"id":"00000000-0000-4000-8000-000000000001","occurred_at":"2026-11-24T12:00:00.000005Z",'
            '"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
            '"request_id":"req-1","seq":1,"user_agent":"pytest"}'
        ).encode()
    )


def test_hash_is_sha256_of_the_canonical_form() -> None:
    assert entry_hash(ENTRY) == hashlib.sha256(canonical_bytes(ENTRY)).hexdigest()


def test_every_field_and_the_previous_hash_change_the_hash() -> None:
    variants = [
        replace(ENTRY, seq=2),
        replace(ENTRY, action="user.updated"),
        replace(ENTRY, actor_id=None),
        replace(ENTRY, changes={"after": {"role": "admin"}}),
        replace(ENTRY, prev_hash="f" * 64),
        replace(ENTRY, occurred_at=ENTRY.occurred_at + timedelta(microseconds=1)),
    ]

    assert len({entry_hash(v) for v in variants} | {entry_hash(ENTRY)}) == len(variants) + 1


def test_timestamps_are_normalised_to_utc() -> None:
    local = ENTRY.occurred_at.astimezone(timezone(timedelta(hours=2)))

    assert format_timestamp(local) == "2026-11-24T12:00:00.000005Z"
    assert entry_hash(replace(ENTRY, occurred_at=local)) == entry_hash(ENTRY)

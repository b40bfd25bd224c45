"""The canonical serialisation and keyed hash of a chain entry."""

import hashlib
import hmac
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import SecretStr

from app.audit.chain import (
    ChainAnchor,
    ChainEntry,
    ChainKeys,
    UnknownChainKey,
    canonical_bytes,
    entry_hash,
    format_timestamp,
)
from app.core.config import AuditSettings

KEY = "a-chain-key-of-at-least-thirty-two-bytes"
KEYS = ChainKeys.from_settings(AuditSettings(chain_key=SecretStr(KEY), chain_key_id="k7"))

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
    key_id="k7",
)


def test_canonical_form_is_sorted_compact_json_with_fixed_formats() -> None:
    assert (
        canonical_bytes(ENTRY)
        == (
            '{"action":"user.created","actor_id":"00000000-0000-4000-8000-0000000000aa",'
            '"actor_role":"admin","changes":{"after":{"email":"é@example.com","role":"member"}},'
            '"client_ip":"203.0.113.9","entity_id":"42","entity_type":"user",'
            '"id":"00000000-0000-4000-8000-000000000001","key_id":"k7",'
            '"occurred_at":"2026-11-24T12:00:00.000005Z",'
            '"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
            '"request_id":"req-1","seq":1,"user_agent":"pytest"}'
        ).encode()
    )


def test_hash_is_hmac_sha256_of_the_canonical_form_under_the_entrys_key() -> None:
    expected = hmac.new(KEY.encode(), canonical_bytes(ENTRY), hashlib.sha256).hexdigest()

    assert entry_hash(ENTRY, keys=KEYS) == expected
    # Without the key the hash cannot be recomputed: plain SHA-256 and other keys differ.
    assert expected != hashlib.sha256(canonical_bytes(ENTRY)).hexdigest()
    other = ChainKeys.from_settings(
        AuditSettings(chain_key=SecretStr(KEY + "!"), chain_key_id="k7")
    )
    assert entry_hash(ENTRY, keys=other) != expected


def test_an_entry_signed_with_an_unconfigured_key_cannot_be_hashed() -> None:
    with pytest.raises(UnknownChainKey):
        entry_hash(replace(ENTRY, key_id="k0"), keys=KEYS)


def test_unkeyed_entries_keep_the_sha256_of_their_original_form() -> None:
    legacy = replace(ENTRY, key_id=None)

    assert "key_id" not in json.loads(canonical_bytes(legacy))
    assert entry_hash(legacy, keys=KEYS) == hashlib.sha256(canonical_bytes(legacy)).hexdigest()


def test_previous_keys_verify_and_no_key_shows_in_a_repr() -> None:
    settings = AuditSettings(
        chain_key=SecretStr("n" * 32), chain_key_id="k8", chain_previous_keys={"k7": SecretStr(KEY)}
    )
    rotated = ChainKeys.from_settings(settings)

    assert rotated.current_id == "k8"
    assert entry_hash(ENTRY, keys=rotated) == entry_hash(ENTRY, keys=KEYS)
    assert KEY not in repr(rotated)
    assert "n" * 32 not in repr(rotated)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "12",
        "0:" + "a" * 64,
        "-1:" + "a" * 64,
        "3:" + "a" * 63,
        "3:" + "g" * 64,
        "x:" + "a" * 64,
    ],
)
def test_malformed_anchors_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not an anchor"):
        ChainAnchor.parse(text)


def test_anchors_read_back_what_they_print() -> None:
    anchor = ChainAnchor.parse("42:" + "AB" * 32)

    assert anchor == ChainAnchor(seq=42, hash="ab" * 32)
    assert ChainAnchor.parse(str(anchor)) == anchor


def test_every_field_and_the_previous_hash_change_the_hash() -> None:
    variants = [
        replace(ENTRY, seq=2),
        replace(ENTRY, action="user.updated"),
        replace(ENTRY, actor_id=None),
        replace(ENTRY, changes={"after": {"role": "admin"}}),
        replace(ENTRY, prev_hash="f" * 64),
        replace(ENTRY, occurred_at=ENTRY.occurred_at + timedelta(microseconds=1)),
        replace(ENTRY, key_id=None),
    ]

    hashes = {entry_hash(v, keys=KEYS) for v in variants} | {entry_hash(ENTRY, keys=KEYS)}
    assert len(hashes) == len(variants) + 1


def test_timestamps_are_normalised_to_utc() -> None:
    local = ENTRY.occurred_at.astimezone(timezone(timedelta(hours=2)))

    assert format_timestamp(local) == "2026-11-24T12:00:00.000005Z"
    assert entry_hash(replace(ENTRY, occurred_at=local), keys=KEYS) == entry_hash(ENTRY, keys=KEYS)

"""The canonical serialisation of an entry and the SHA-256 link of the hash chain."""

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

HASHED_FIELDS = (
    "id",
    "seq",
    "occurred_at",
    "action",
    "actor_id",
    "actor_role",
    "request_id",
    "client_ip",
    "user_agent",
    "entity_type",
    "entity_id",
    "changes",
    "prev_hash",
)
"""Every column of an entry except `hash` itself."""


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """An entry recorded but not yet appended: its content without its place in the chain."""

    id: uuid.UUID
    occurred_at: datetime
    action: str
    actor_id: uuid.UUID | None
    actor_role: str | None
    request_id: str | None
    client_ip: str | None
    user_agent: str | None
    entity_type: str
    entity_id: str | None
    changes: Mapping[str, Any]

    def link(self, *, seq: int, prev_hash: str) -> "ChainEntry":
        """The entry placed at `seq`, after the entry whose hash is `prev_hash`."""
        content = {field.name: getattr(self, field.name) for field in fields(PendingEntry)}
        return ChainEntry(**content, seq=seq, prev_hash=prev_hash)


@dataclass(frozen=True, slots=True)
class ChainEntry(PendingEntry):
    """The hashed content of one audit entry, as stored: its content and its place in the chain."""

    seq: int
    prev_hash: str


def format_timestamp(value: datetime) -> str:
    """Fixed timestamp format: UTC, microseconds, `Z` suffix."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(entry: ChainEntry) -> bytes:
    """Serialise an entry as sorted-key, whitespace-free UTF-8 JSON with fixed formats."""
    document: dict[str, Any] = {name: getattr(entry, name) for name in HASHED_FIELDS}
    document["id"] = str(entry.id)
    document["actor_id"] = str(entry.actor_id) if entry.actor_id else None
    document["occurred_at"] = format_timestamp(entry.occurred_at)
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def entry_hash(entry: ChainEntry) -> str:
    """SHA-256 of the canonical serialisation; `prev_hash` inside links it to its predecessor."""
    return hashlib.sha256(canonical_bytes(entry)).hexdigest()

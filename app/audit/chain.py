"""The canonical serialisation of an entry and the keyed (HMAC-SHA256) link of the hash chain."""

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from app.core.config import AuditSettings

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
    "key_id",
)
"""Every column of an entry except `hash` itself (`key_id` only when set)."""
_HEX_64 = re.compile(r"[0-9a-f]{64}")


class UnknownChainKey(LookupError):
    """An entry names a chain key that the configured keys do not include."""


@dataclass(frozen=True, slots=True)
class ChainKeys:
    """The chain's keys: the current one signs new entries, earlier ones still verify."""

    current_id: str
    """Id of the key new entries are signed with."""
    secrets: tuple[tuple[str, bytes], ...] = field(repr=False)
    """Every key by id, the current one included; never shown in a repr."""
    unkeyed_until_seq: int = 0
    """Entries up to this seq may carry the unkeyed SHA-256 of the chain before keys."""

    @classmethod
    def from_settings(cls, settings: AuditSettings) -> "ChainKeys":
        """The keys named by `AUDIT__*`."""
        secrets = {
            key_id: key.get_secret_value().encode()
            for key_id, key in settings.chain_previous_keys.items()
        }
        secrets[settings.chain_key_id] = settings.chain_key.get_secret_value().encode()
        return cls(
            current_id=settings.chain_key_id,
            secrets=tuple(sorted(secrets.items())),
            unkeyed_until_seq=settings.chain_unkeyed_until_seq,
        )

    def secret(self, key_id: str) -> bytes:
        """The key with this id; `UnknownChainKey` when it is not configured."""
        for known_id, secret in self.secrets:
            if known_id == key_id:
                return secret
        raise UnknownChainKey(key_id)


@dataclass(frozen=True, slots=True)
class ChainAnchor:
    """A chain entry's seq and hash, published outside the database (`SEQ:HASH`)."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> "ChainAnchor":
        """Read `SEQ:HASH` (a positive seq, 64 hex digits); `ValueError` otherwise."""
        seq, _, digest = text.strip().partition(":")
        if not seq.isdigit() or int(seq) < 1 or not _HEX_64.fullmatch(digest.lower()):
            raise ValueError(f"not an anchor (SEQ:HASH with 64 hex digits): {text!r}")
        return cls(seq=int(seq), hash=digest.lower())

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


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

    def link(self, *, seq: int, prev_hash: str, key_id: str) -> "ChainEntry":
        """The entry placed at `seq`, after the entry hashed `prev_hash`, signed with `key_id`."""
        content = {item.name: getattr(self, item.name) for item in fields(PendingEntry)}
        return ChainEntry(**content, seq=seq, prev_hash=prev_hash, key_id=key_id)


@dataclass(frozen=True, slots=True)
class ChainEntry(PendingEntry):
    """The hashed content of one audit entry, as stored: its content and its place in the chain."""

    seq: int
    prev_hash: str
    key_id: str | None
    """The key the entry is signed with; None for an unkeyed entry from before keys."""


def format_timestamp(value: datetime) -> str:
    """Fixed timestamp format: UTC, microseconds, `Z` suffix."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(entry: ChainEntry) -> bytes:
    """Serialise an entry as sorted-key, whitespace-free UTF-8 JSON with fixed formats."""
    document: dict[str, Any] = {name: getattr(entry, name) for name in HASHED_FIELDS}
    document["id"] = str(entry.id)
    document["actor_id"] = str(entry.actor_id) if entry.actor_id else None
    document["occurred_at"] = format_timestamp(entry.occurred_at)
    if entry.key_id is None:
        # Entries from before the chain was keyed were hashed without this field.
        del document["key_id"]
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def entry_hash(entry: ChainEntry, *, keys: ChainKeys) -> str:
    """HMAC-SHA256 of the canonical form under the entry's key (`prev_hash` inside links it).

    Unkeyed entries from before the chain was keyed get the plain SHA-256 they were
    written with; whether one is acceptable at its seq is for verification to decide.
    """
    if entry.key_id is None:
        return hashlib.sha256(canonical_bytes(entry)).hexdigest()
    return hmac.new(keys.secret(entry.key_id), canonical_bytes(entry), hashlib.sha256).hexdigest()

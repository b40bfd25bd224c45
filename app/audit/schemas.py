"""What the audit API returns, and the filters it accepts."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from app.audit.actions import AuditEntity


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which events to read; unset fields do not filter."""

    actor_id: uuid.UUID | None = None
    action: str | None = None
    """An exact action, or a prefix ending with `.` such as `booking.`."""
    entity_type: AuditEntity | None = None
    entity_id: str | None = None
    since: datetime | None = None
    """Inclusive lower bound on `occurred_at`."""
    until: datetime | None = None
    """Exclusive upper bound on `occurred_at`."""


class AuditEventRead(BaseModel):
    """One audit entry as recorded."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    seq: int
    occurred_at: datetime
    action: str
    actor_id: uuid.UUID | None
    actor_role: str | None
    request_id: str | None
    client_ip: str | None
    user_agent: str | None
    entity_type: str
    entity_id: str | None
    changes: dict[str, Any]
    prev_hash: str
    hash: str


class BrokenEntry(BaseModel):
    """Where the chain stops verifying and why."""

    id: uuid.UUID | None
    """The first entry that fails (null when entries after the last one are missing)."""
    seq: int
    reason: str


class ChainReport(BaseModel):
    """Outcome of walking the hash chain from the first entry to the head."""

    ok: bool
    checked: int
    """Entries verified before the walk stopped."""
    broken: BrokenEntry | None

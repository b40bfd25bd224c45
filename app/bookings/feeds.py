"""Calendar feeds: personal feed tokens, and the iCalendar feeds they open."""

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.actions import AuditAction, AuditEntity
from app.audit.service import AuditService
from app.bookings.errors import CalendarFeedNotFound
from app.bookings.feed_repository import CalendarFeedRepository, FeedRow
from app.bookings.ical import render_calendar
from app.core.clock import Clock
from app.core.config import CalendarSettings

TOKEN_BYTES = 32
"""Random bytes in a feed token (256 bits from the OS's CSPRNG, 43 URL-safe characters)."""
PERSONAL_FEED_NAME = "Roombook: my bookings"


def hash_token(token: str) -> bytes:
    """The SHA-256 of a feed token: the only form of it that is stored or looked up."""
    # A fast hash suffices, unlike for passwords: 256 random bits leave no dictionary or
    # brute force to slow down, a stolen table opens no feed, and equality on the hash is
    # one index lookup (no comparison of the secret itself whose timing could leak it).
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class IssuedCalendarToken:
    """A new feed token, shown to its holder once, and when it was issued."""

    token: str
    created_at: datetime


class CalendarFeedService:
    """Issues and revokes feed tokens, and renders the feeds they open."""

    def __init__(
        self,
        *,
        repository: CalendarFeedRepository,
        audit: AuditService,
        settings: CalendarSettings,
        clock: Clock,
        manager_roles: frozenset[str],
    ) -> None:
        self.repository = repository
        self.audit = audit
        self.settings = settings
        self.clock = clock
        self.manager_roles = manager_roles

    async def issue(self, *, user_id: uuid.UUID) -> IssuedCalendarToken:
        """A new feed token for the person; their previous one is revoked at once."""
        # The row lock serialises two regenerations by one person: each revokes what it replaced.
        previous = await self.repository.lock_current(user_id=user_id)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        created_at = await self.repository.store(user_id=user_id, token_hash=hash_token(token))
        if previous is not None:
            await self._record_revoked(user_id=user_id, issued_at=previous)
        await self.audit.record(
            action=AuditAction.CALENDAR_TOKEN_CREATED,
            entity_type=AuditEntity.CALENDAR_TOKEN,
            entity_id=user_id,
            after={"issued_at": created_at},
        )
        return IssuedCalendarToken(token=token, created_at=created_at)

    async def revoke(self, *, user_id: uuid.UUID) -> None:
        """Delete the person's feed token, if they have one; its feed answers 404 from now on."""
        issued_at = await self.repository.delete(user_id=user_id)
        if issued_at is not None:
            await self._record_revoked(user_id=user_id, issued_at=issued_at)

    async def personal_feed(self, *, token: str) -> bytes:
        """The token holder's own active bookings in the window, as iCalendar."""
        user_id, _ = await self._holder(token)
        starts_from, starts_before = self._window()
        entries = await self.repository.owned_bookings(
            owner_id=user_id, starts_from=starts_from, starts_before=starts_before
        )
        return _render(name=PERSONAL_FEED_NAME, key=f"user:{user_id}", entries=entries)

    async def room_feed(self, *, token: str, room_id: uuid.UUID) -> bytes:
        """Every active booking of the room in the window, for a manager's or admin's token."""
        _, role = await self._holder(token)
        # A member's token, an unknown room and an unknown token all find the same nothing:
        # a feed address tells no one which rooms exist or which tokens are live.
        room = await self.repository.room(room_id=room_id) if role in self.manager_roles else None
        if room is None:
            raise CalendarFeedNotFound("No calendar feed at this address.")
        starts_from, starts_before = self._window()
        entries = await self.repository.room_bookings(
            room_id=room.id, starts_from=starts_from, starts_before=starts_before
        )
        return _render(name=f"Roombook: {room.name}", key=f"room:{room.id}", entries=entries)

    async def _holder(self, token: str) -> Row[uuid.UUID, str]:
        # Every token costs the same: one hash and one indexed lookup, found or not, so a
        # guesser learns nothing from timing and makes the server do nothing extra.
        holder = await self.repository.holder_of(token_hash=hash_token(token))
        if holder is None:
            raise CalendarFeedNotFound("No calendar feed at this address.")
        return holder

    async def _record_revoked(self, *, user_id: uuid.UUID, issued_at: datetime) -> None:
        await self.audit.record(
            action=AuditAction.CALENDAR_TOKEN_REVOKED,
            entity_type=AuditEntity.CALENDAR_TOKEN,
            entity_id=user_id,
            before={"issued_at": issued_at},
        )

    def _window(self) -> tuple[datetime, datetime]:
        now = self.clock()
        return (
            now - timedelta(days=self.settings.past_days),
            now + timedelta(days=self.settings.ahead_days),
        )


def _render(*, name: str, key: str, entries: Sequence[FeedRow]) -> bytes:
    return render_calendar(
        name=name, key=key, entries=[(booking, room) for booking, room in entries]
    )


def build_calendar_feed_service(
    session: AsyncSession,
    *,
    audit: AuditService,
    settings: CalendarSettings,
    clock: Clock,
    manager_roles: frozenset[str],
) -> CalendarFeedService:
    """The calendar feed service on a session, sharing the unit of work's audit service."""
    return CalendarFeedService(
        repository=CalendarFeedRepository(session),
        audit=audit,
        settings=settings,
        clock=clock,
        manager_roles=manager_roles,
    )

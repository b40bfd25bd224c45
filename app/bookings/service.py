"""Business rules of rooms, blackouts and bookings, and the default policy rooms start from."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.actions import AuditAction, AuditEntity
from app.audit.service import AuditService
from app.bookings.errors import (
    SLOT_TAKEN,
    BookingClosed,
    BookingNotFound,
    IllegalTransition,
    MemberCutoffPassed,
    OwnerFilterForbidden,
    RulesOverrideForbidden,
    refusal,
)
from app.bookings.events import EventPublisher
from app.bookings.intervals import alternatives_window, nearest_free_slots
from app.bookings.models import HOLDING_STATUSES, Booking, BookingKind, BookingStatus, Room
from app.bookings.policy import (
    BookingPolicy,
    OpeningSpan,
    PolicyOverrides,
    Weekday,
    effective_policy,
)
from app.bookings.quotas import QuotaGuard
from app.bookings.repository import BookingRepository, RoomRepository, claiming_room_time
from app.bookings.rules import (
    Violation,
    ViolationCode,
    check_booking_rules,
    within_member_cutoff,
)
from app.bookings.schemas import (
    Alternatives,
    BookingCreate,
    BookingFilter,
    BookingUpdate,
    BookingVerdict,
    RoomOption,
    SlotRead,
    ViolationRead,
)
from app.core.clock import Clock
from app.core.config import BookingSettings
from app.core.db_errors import sqlstate_of
from app.core.errors import AppError, ValidationFailed
from app.core.metrics import BookingMetrics
from app.core.pagination import PageRequest, SortValue
from app.core.preconditions import StaleVersion, check_version

EXCLUSION_VIOLATION = "23P01"
"""SQLSTATE of a row refused by an exclusion constraint (here only `bookings_no_overlap`)."""
T = TypeVar("T")


@lru_cache(maxsize=8)
def default_policy(settings: BookingSettings) -> BookingPolicy:
    """The policy of a room that overrides nothing, built once from the `BOOKINGS__` settings."""
    span = OpeningSpan(opens=settings.default_opens, closes=settings.default_closes)
    return BookingPolicy(
        opening_hours={Weekday(day): [span] for day in settings.default_open_days},
        slot_minutes=settings.slot_minutes,
        min_duration_minutes=settings.min_duration_minutes,
        max_duration_minutes=settings.max_duration_minutes,
        min_notice_minutes=settings.min_notice_minutes,
        max_ahead_days=settings.max_ahead_days,
        buffer_minutes=settings.buffer_minutes,
        requires_approval=settings.requires_approval,
        member_cutoff_minutes=settings.member_cutoff_minutes,
    )


UNOVERRIDABLE = SLOT_TAKEN | {ViolationCode.ROOM_INACTIVE}
"""What `override_rules` never sets aside: a taken time, a deactivated room."""
TIMING_CODES = frozenset(ViolationCode) - {ViolationCode.OVER_CAPACITY}
"""The rules a change of time judges again (all but capacity)."""
CANDIDATE_ROOMS_PER_OPTION = 4
"""Free rooms read per room offered: some of them may still be closed at that time."""
BOOKING_METRICS = BookingMetrics(violation_codes=list(ViolationCode))


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts on bookings: members act on their own, managers and admins on any."""

    id: uuid.UUID
    manages: bool
    """A manager or admin: sees and changes every booking, may override the rules."""


@dataclass(frozen=True, slots=True)
class Proposal:
    """A booking as it would be: room, time and attendees, judged at `now`."""

    room: Room
    policy: BookingPolicy
    starts_at: datetime
    ends_at: datetime
    attendees: int
    now: datetime

    @property
    def blocked_until(self) -> datetime:
        """The end of the booking plus the room's buffer: how long it would hold the room."""
        return self.ends_at + timedelta(minutes=self.policy.buffer_minutes)

    @property
    def status(self) -> BookingStatus:
        """The status a new booking gets: `pending` where the room needs approval."""
        return BookingStatus.PENDING if self.policy.requires_approval else BookingStatus.CONFIRMED


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict on a proposal: what refuses it, and what an override sets aside."""

    violations: list[Violation]
    overridden: list[Violation]
    alternatives: Alternatives = field(default_factory=Alternatives)


def booking_snapshot(booking: Booking) -> dict[str, Any]:
    """The audited fields of a booking."""
    return {
        "room_id": booking.room_id,
        "owner_id": booking.owner_id,
        "title": booking.title,
        "note": booking.note,
        "attendees": booking.attendees,
        "starts_at": booking.starts_at,
        "ends_at": booking.ends_at,
        "blocked_until": booking.blocked_until,
        "status": booking.status,
        "rules_overridden": booking.rules_overridden,
        "decided_by": booking.decided_by,
        "cancelled_by": booking.cancelled_by,
        "cancel_reason": booking.cancel_reason,
        "series_id": booking.series_id,
    }


def is_overlap(exc: IntegrityError) -> bool:
    """Whether the database refused a row because it overlaps one holding the room."""
    return sqlstate_of(exc) == EXCLUSION_VIOLATION


class BookingService:
    """Make, list, read, change, cancel, approve and reject bookings; every change is audited.

    The rules are `check_booking_rules`; the overlap constraint of the table is the only
    guard against double booking, and its refusal is explained, never passed on.
    """

    def __init__(
        self,
        *,
        session: AsyncSession,
        audit: AuditService,
        settings: BookingSettings,
        clock: Clock,
    ) -> None:
        self.session = session
        self.bookings = BookingRepository(session)
        self.rooms = RoomRepository(session)
        self.audit = audit
        self.events = EventPublisher(session)
        self.settings = settings
        self.defaults = default_policy(settings)
        self.clock = clock
        self.quotas = QuotaGuard(session, settings=settings)

    async def create(
        self, *, actor: Actor, data: BookingCreate, series_id: uuid.UUID | None = None
    ) -> Booking:
        """Book a room for the actor (`BookingRefused`, `BookingRulesViolated` otherwise).

        `series_id` makes the booking an occurrence of that series.
        """
        _may_override(actor=actor, override=data.override_rules)
        proposal = await self._propose(
            room_id=data.room_id,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            attendees=data.attendees,
        )
        judgement = await self._judge(
            proposal=proposal, override=data.override_rules, codes=frozenset(ViolationCode)
        )
        if judgement.violations:
            BOOKING_METRICS.refused(violation_codes=[v.code for v in judgement.violations])
            raise refusal(violations=judgement.violations, alternatives=judgement.alternatives)
        await self._within_quota(actor=actor, proposal=proposal, moving=None)
        booking = Booking(
            id=uuid.uuid4(),
            room_id=proposal.room.id,
            kind=BookingKind.BOOKING.value,
            owner_id=actor.id,
            title=data.title,
            note=data.note,
            attendees=data.attendees,
            starts_at=proposal.starts_at,
            ends_at=proposal.ends_at,
            blocked_until=proposal.blocked_until,
            status=proposal.status.value,
            version=1,
            rules_overridden=bool(judgement.overridden),
            series_id=series_id,
        )
        try:
            # The constraint decides who gets a contested slot; the savepoint keeps the unit
            # of work usable, so the refusal can be explained with what holds the room.
            async with claiming_room_time(self.session, room_id=booking.room_id):
                await self.bookings.add(booking=booking)
        except IntegrityError as exc:
            if not is_overlap(exc):
                raise
            BOOKING_METRICS.refused(violation_codes=[ViolationCode.OVERLAP])
            raise await self._taken(proposal=proposal, other_than=None) from exc
        BOOKING_METRICS.created()
        await self._record(AuditAction.BOOKING_CREATED, booking=booking, before=None)
        await self._record_override(booking=booking, overridden=judgement.overridden)
        return booking

    async def check(self, *, actor: Actor, data: BookingCreate) -> BookingVerdict:
        """Judge a booking exactly as `create` would, time taken included; write nothing."""
        _may_override(actor=actor, override=data.override_rules)
        proposal = await self._propose(
            room_id=data.room_id,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            attendees=data.attendees,
        )
        judgement = await self._judge(
            proposal=proposal,
            override=data.override_rules,
            codes=frozenset(ViolationCode),
            always_look=True,
        )
        judgement.violations.extend(
            await self._quota_broken(actor=actor, proposal=proposal, moving=None, lock=False)
        )
        ok = not judgement.violations
        return BookingVerdict(
            ok=ok,
            status=proposal.status if ok else None,
            violations=[ViolationRead.of(v) for v in judgement.violations],
            overridden=[ViolationRead.of(v) for v in judgement.overridden],
            alternatives=judgement.alternatives,
        )

    async def visible(self, *, actor: Actor, booking_id: uuid.UUID) -> Booking:
        """A booking the actor may see (their own, or any for managers), else `BookingNotFound`."""
        booking = await self.bookings.get(booking_id=booking_id)
        # Someone else's booking is as unknown as a missing one: ids cannot be probed.
        if booking is None or not (actor.manages or booking.owner_id == actor.id):
            raise BookingNotFound(f"No booking has id {booking_id}.")
        return booking

    async def list_bookings(
        self, *, actor: Actor, filters: BookingFilter, page: PageRequest
    ) -> tuple[Sequence[Booking], tuple[SortValue, uuid.UUID] | None]:
        """One page of bookings by start; members see only their own."""
        if not actor.manages:
            if filters.owner_id not in (None, actor.id):
                raise OwnerFilterForbidden("Members list only their own bookings.")
            filters = replace(filters, owner_id=actor.id)
        return await self.bookings.list_page(filters=filters, page=page)

    async def update(
        self,
        *,
        actor: Actor,
        booking: Booking,
        expected_versions: frozenset[int],
        data: BookingUpdate,
    ) -> Booking:
        """Change a booking; a new time, room or attendee count is judged as a new booking."""
        check_version(
            current=booking.version, expected_versions=expected_versions, resource="booking"
        )
        _may_override(actor=actor, override=data.override_rules)
        if booking.status not in HOLDING_STATUSES:
            raise BookingClosed(f"A {booking.status} booking no longer changes.")
        current = await self._propose(
            room_id=booking.room_id,
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
            attendees=booking.attendees,
        )
        self._outside_cutoff(actor=actor, proposal=current, doing="change")
        values = _plain_changes(booking=booking, data=data)
        moved = await self._moved(booking=booking, current=current, data=data)
        if moved is None:
            return await self._apply(booking=booking, values=values)
        proposal, codes = moved
        judgement = await self._judge(
            proposal=proposal, override=data.override_rules, codes=codes, other_than=booking.id
        )
        if judgement.violations:
            raise refusal(violations=judgement.violations, alternatives=judgement.alternatives)
        if _place(proposal) != (booking.room_id, booking.starts_at, booking.ends_at):
            await self._within_quota(actor=actor, proposal=proposal, moving=booking.id)
        values |= _placement(booking=booking, proposal=proposal, actor=actor)
        if judgement.overridden:
            values["rules_overridden"] = True
        try:
            # As at creation: the constraint refuses a move onto a taken time.
            async with claiming_room_time(self.session, room_id=proposal.room.id):
                updated = await self._apply(booking=booking, values=values)
        except IntegrityError as exc:
            if not is_overlap(exc):
                raise
            raise await self._taken(proposal=proposal, other_than=booking.id) from exc
        await self._record_override(booking=updated, overridden=judgement.overridden)
        return updated

    async def cancel(
        self,
        *,
        actor: Actor,
        booking: Booking,
        expected_versions: frozenset[int],
        reason: str,
    ) -> Booking:
        """Cancel a pending or confirmed booking; members only their own, before the cut-off."""
        check_version(
            current=booking.version, expected_versions=expected_versions, resource="booking"
        )
        _may_leave(booking=booking, allowed=HOLDING_STATUSES, step="cancelled")
        if not actor.manages:
            current = await self._propose(
                room_id=booking.room_id,
                starts_at=booking.starts_at,
                ends_at=booking.ends_at,
                attendees=booking.attendees,
            )
            self._outside_cutoff(actor=actor, proposal=current, doing="cancel")
        values = {
            "status": BookingStatus.CANCELLED.value,
            "cancelled_by": actor.id,
            "cancelled_at": self.clock(),
            "cancel_reason": reason,
        }
        return await self._apply(
            booking=booking, values=values, action=AuditAction.BOOKING_CANCELLED
        )

    async def approve(
        self, *, actor: Actor, booking: Booking, expected_versions: frozenset[int]
    ) -> Booking:
        """Confirm a pending booking (managers and admins)."""
        return await self._decide(
            actor=actor,
            booking=booking,
            expected_versions=expected_versions,
            status=BookingStatus.CONFIRMED,
            reason=None,
        )

    async def reject(
        self,
        *,
        actor: Actor,
        booking: Booking,
        expected_versions: frozenset[int],
        reason: str | None,
    ) -> Booking:
        """Turn down a pending booking (managers and admins); it frees the room."""
        return await self._decide(
            actor=actor,
            booking=booking,
            expected_versions=expected_versions,
            status=BookingStatus.REJECTED,
            reason=reason,
        )

    async def _decide(
        self,
        *,
        actor: Actor,
        booking: Booking,
        expected_versions: frozenset[int],
        status: BookingStatus,
        reason: str | None,
    ) -> Booking:
        check_version(
            current=booking.version, expected_versions=expected_versions, resource="booking"
        )
        _may_leave(booking=booking, allowed=(BookingStatus.PENDING.value,), step=status.value)
        values = {"status": status.value, "decided_by": actor.id, "decided_at": self.clock()}
        approved = status is BookingStatus.CONFIRMED
        action = AuditAction.BOOKING_APPROVED if approved else AuditAction.BOOKING_REJECTED
        return await self._apply(
            booking=booking,
            values=values,
            action=action,
            noted={} if reason is None else {"reject_reason": reason},
        )

    async def _propose(
        self, *, room_id: uuid.UUID, starts_at: datetime, ends_at: datetime, attendees: int
    ) -> Proposal:
        # FOR SHARE: a deactivation or change of the room (its UPDATE) waits until this
        # booking commits, or this waits for it and judges the room as changed; bookings
        # share the lock, so they never wait for each other here.
        room = await self.rooms.get(room_id=room_id, for_share=True)
        if room is None:
            raise ValidationFailed(
                [{"field": "room_id", "message": "No room has this id.", "type": "unknown_room"}]
            )
        return Proposal(
            room=room,
            policy=self._policy_of(room),
            starts_at=starts_at,
            ends_at=ends_at,
            attendees=attendees,
            now=self.clock(),
        )

    def _policy_of(self, room: Room) -> BookingPolicy:
        return effective_policy(self.defaults, PolicyOverrides.model_validate(room.policy))

    async def _moved(
        self, *, booking: Booking, current: Proposal, data: BookingUpdate
    ) -> tuple[Proposal, frozenset[ViolationCode]] | None:
        """The booking's new placement and the rules to judge it by; None if it stays put."""
        starts_at = _given(data.starts_at, booking.starts_at)
        ends_at = _given(data.ends_at, booking.ends_at)
        attendees = _given(data.attendees, booking.attendees)
        room_id = _given(data.room_id, booking.room_id)
        if starts_at >= ends_at:
            raise ValidationFailed(
                [
                    {
                        "field": "ends_at" if data.ends_at else "starts_at",
                        "message": "ends_at must come after starts_at.",
                        "type": "time_range",
                    }
                ]
            )
        retimed = (starts_at, ends_at) != (booking.starts_at, booking.ends_at)
        codes = frozenset(ViolationCode) if room_id != booking.room_id else frozenset()
        codes |= TIMING_CODES if retimed else frozenset()
        if attendees != booking.attendees:
            codes |= {ViolationCode.OVER_CAPACITY}
        if not codes:
            return None
        if room_id == booking.room_id:
            proposal = replace(current, starts_at=starts_at, ends_at=ends_at, attendees=attendees)
        else:
            proposal = await self._propose(
                room_id=room_id, starts_at=starts_at, ends_at=ends_at, attendees=attendees
            )
        return proposal, codes

    async def _judge(
        self,
        *,
        proposal: Proposal,
        override: bool,
        codes: frozenset[ViolationCode],
        other_than: uuid.UUID | None = None,
        always_look: bool = False,
    ) -> Judgement:
        """Every broken rule among `codes`; whether the time is taken, when that must be told.

        A change that breaks no rule goes straight to the constraint, so the time is looked
        up only to report it with other violations, or for a dry run (`always_look`).
        """
        broken = [v for v in _rules_broken(proposal) if v.code in codes]
        overridden = [v for v in broken if override and v.code not in UNOVERRIDABLE]
        refusing = [v for v in broken if v not in overridden]
        if not (refusing or always_look) or not (codes & TIMING_CODES):
            return Judgement(violations=refusing, overridden=overridden)
        taken = await self._in_the_way(proposal=proposal, other_than=other_than)
        alternatives = (
            await self._alternatives(proposal=proposal, other_than=other_than)
            if taken
            else Alternatives()
        )
        return Judgement(
            violations=taken + refusing, overridden=overridden, alternatives=alternatives
        )

    async def _taken(self, *, proposal: Proposal, other_than: uuid.UUID | None) -> AppError:
        """The refusal for a time the constraint found taken, with what to book instead."""
        taken = await self._in_the_way(proposal=proposal, other_than=other_than)
        # The row in the way may be gone by now (cancelled meanwhile): it was a booking.
        violations = taken or [_violation(BookingKind.BOOKING)]
        return refusal(
            violations=violations,
            alternatives=await self._alternatives(proposal=proposal, other_than=other_than),
        )

    async def _in_the_way(
        self, *, proposal: Proposal, other_than: uuid.UUID | None
    ) -> list[Violation]:
        kinds = await self.bookings.kinds_in_the_way(
            room_id=proposal.room.id,
            starts_at=proposal.starts_at,
            blocked_until=proposal.blocked_until,
            other_than=other_than,
        )
        return [_violation(kind) for kind in sorted(kinds)]

    async def _alternatives(
        self, *, proposal: Proposal, other_than: uuid.UUID | None
    ) -> Alternatives:
        """The nearest free times in the room and other rooms free then; nothing private."""
        count = self.settings.alternatives_count
        rooms = await self._free_rooms(proposal=proposal, other_than=other_than)
        room = proposal.room
        # Other times in a room that cannot take the booking at all would help nobody.
        fits = proposal.attendees <= room.capacity and room.is_active
        slots = await self._free_slots(proposal=proposal, other_than=other_than) if fits else []
        return Alternatives(
            slots=[SlotRead(starts_at=start, ends_at=end) for start, end in slots],
            rooms=[RoomOption.model_validate(other) for other in rooms[:count]],
        )

    async def _free_slots(
        self, *, proposal: Proposal, other_than: uuid.UUID | None
    ) -> list[tuple[datetime, datetime]]:
        """The free times nearest the proposal's in its room, as long as it, under its rules."""
        window_start, window_end = alternatives_window(
            policy=proposal.policy, starts_at=proposal.starts_at, ends_at=proposal.ends_at
        )
        busy = await self.bookings.blocked_ranges(
            room_id=proposal.room.id,
            window_start=window_start,
            window_end=window_end,
            other_than=other_than,
        )
        return nearest_free_slots(
            policy=proposal.policy,
            time_zone=ZoneInfo(proposal.room.time_zone),
            starts_at=proposal.starts_at,
            ends_at=proposal.ends_at,
            now=proposal.now,
            busy=busy,
            count=self.settings.alternatives_count,
        )

    async def _free_rooms(self, *, proposal: Proposal, other_than: uuid.UUID | None) -> list[Room]:
        """Other rooms free for the proposal's time whose own rules would take it."""
        if self.settings.alternatives_count == 0:
            return []
        candidates = await self.bookings.free_rooms(
            starts_at=proposal.starts_at,
            ends_at=proposal.ends_at,
            attendees=proposal.attendees,
            default_buffer_minutes=self.defaults.buffer_minutes,
            other_room=proposal.room.id,
            other_than=other_than,
            limit=self.settings.alternatives_count * CANDIDATE_ROOMS_PER_OPTION,
        )
        return [
            room
            for room in candidates
            if not _rules_broken(replace(proposal, room=room, policy=self._policy_of(room)))
        ]

    async def _within_quota(
        self, *, actor: Actor, proposal: Proposal, moving: uuid.UUID | None
    ) -> None:
        """Refuse what would take a member over a quota, judged under the member's lock."""
        broken = await self._quota_broken(actor=actor, proposal=proposal, moving=moving, lock=True)
        if broken:
            BOOKING_METRICS.refused(violation_codes=[v.code for v in broken])
            raise refusal(violations=broken, alternatives=Alternatives())

    async def _quota_broken(
        self, *, actor: Actor, proposal: Proposal, moving: uuid.UUID | None, lock: bool
    ) -> list[Violation]:
        """The member's quotas the proposal would exceed; managers and admins have none."""
        if actor.manages:
            return []
        return await self.quotas.violations(
            owner_id=actor.id,
            time_zone=ZoneInfo(proposal.room.time_zone),
            starts_at=proposal.starts_at,
            ends_at=proposal.ends_at,
            now=proposal.now,
            moving=moving,
            lock=lock,
        )

    def _outside_cutoff(self, *, actor: Actor, proposal: Proposal, doing: str) -> None:
        if actor.manages:
            return
        if within_member_cutoff(
            policy=proposal.policy, starts_at=proposal.starts_at, now=proposal.now
        ):
            minutes = proposal.policy.member_cutoff_minutes
            raise MemberCutoffPassed(
                f"Members cannot {doing} a booking less than {minutes} minutes before it "
                "starts; ask a manager."
            )

    async def _apply(
        self,
        *,
        booking: Booking,
        values: dict[str, Any],
        action: AuditAction = AuditAction.BOOKING_UPDATED,
        noted: dict[str, Any] | None = None,
    ) -> Booking:
        if not values:
            return booking
        before = booking_snapshot(booking)
        updated = await self.bookings.update_versioned(
            booking_id=booking.id, version=booking.version, values=values
        )
        if updated is None:
            raise StaleVersion("The booking was changed concurrently; read it again.")
        await self._record(action, booking=updated, before=before, noted=noted)
        return updated

    async def _record(
        self,
        action: AuditAction,
        *,
        booking: Booking,
        before: dict[str, Any] | None,
        noted: dict[str, Any] | None = None,
    ) -> None:
        await self.audit.record(
            action=action,
            entity_type=AuditEntity.BOOKING,
            entity_id=booking.id,
            before=before,
            after=booking_snapshot(booking) | (noted or {}),
        )
        await self.events.publish(action=action, booking=booking)

    async def _record_override(self, *, booking: Booking, overridden: list[Violation]) -> None:
        if overridden:
            await self.audit.record(
                action=AuditAction.BOOKING_RULES_OVERRIDDEN,
                entity_type=AuditEntity.BOOKING,
                entity_id=booking.id,
                after={"violations": [violation.code.value for violation in overridden]},
            )


def _given(value: T | None, current: T) -> T:
    return current if value is None else value


def _rules_broken(proposal: Proposal) -> list[Violation]:
    return check_booking_rules(
        policy=proposal.policy,
        time_zone=ZoneInfo(proposal.room.time_zone),
        starts_at=proposal.starts_at,
        ends_at=proposal.ends_at,
        now=proposal.now,
        attendees=proposal.attendees,
        capacity=proposal.room.capacity,
        room_active=proposal.room.is_active,
    )


def _may_override(*, actor: Actor, override: bool) -> None:
    if override and not actor.manages:
        raise RulesOverrideForbidden("Only managers and admins may override the room's rules.")


def _may_leave(*, booking: Booking, allowed: Sequence[str], step: str) -> None:
    if booking.status not in allowed:
        raise IllegalTransition(f"A {booking.status} booking cannot be {step}.")


def _violation(kind: BookingKind) -> Violation:
    # Names neither the booking in the way nor its owner: only that the time is taken.
    if kind is BookingKind.BLACKOUT:
        return Violation(ViolationCode.IN_BLACKOUT, "The room is closed for part of this time.")
    return Violation(ViolationCode.OVERLAP, "The room is already booked for part of this time.")


def _plain_changes(*, booking: Booking, data: BookingUpdate) -> dict[str, Any]:
    """Title and note changes, which no rule judges."""
    values: dict[str, Any] = {}
    if data.title is not None and data.title != booking.title:
        values["title"] = data.title
    if "note" in data.model_fields_set and data.note != booking.note:
        values["note"] = data.note
    return values


def _place(proposal: Proposal) -> tuple[uuid.UUID, datetime, datetime]:
    """Room, start and end: where and when a proposal would hold a room."""
    return (proposal.room.id, proposal.starts_at, proposal.ends_at)


def _placement(*, booking: Booking, proposal: Proposal, actor: Actor) -> dict[str, Any]:
    """The columns a change of attendees, time or room writes.

    A move takes the buffer of the room it lands in; a member's move into a room that
    needs approval waits for it again, or approval could be skipped by moving a booking.
    """
    values: dict[str, Any] = {}
    if proposal.attendees != booking.attendees:
        values["attendees"] = proposal.attendees
    if _place(proposal) == (booking.room_id, booking.starts_at, booking.ends_at):
        return values
    values |= {
        "room_id": proposal.room.id,
        "starts_at": proposal.starts_at,
        "ends_at": proposal.ends_at,
        "blocked_until": proposal.blocked_until,
    }
    if proposal.policy.requires_approval and not actor.manages:
        values |= {"status": BookingStatus.PENDING.value, "decided_by": None, "decided_at": None}
    return values


def build_booking_service(
    session: AsyncSession, *, audit: AuditService, settings: BookingSettings, clock: Clock
) -> BookingService:
    """The booking service on a session, sharing the unit of work's audit service."""
    return BookingService(session=session, audit=audit, settings=settings, clock=clock)

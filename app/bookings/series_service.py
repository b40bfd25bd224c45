"""Recurring series: book every occurrence under the bookings rules, and change them by scope.

Occurrences are made, edited and cancelled through the `BookingService`, so each one is
judged, constrained, counted against quotas and audited exactly like a single booking;
the series adds one audit entry of its own per operation, in the same transaction.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.actions import AuditAction, AuditEntity
from app.audit.service import AuditService
from app.bookings.errors import BookingRefused, BookingRulesViolated
from app.bookings.models import Booking
from app.bookings.repository import RoomRepository
from app.bookings.schemas import BookingCreate, BookingUpdate, ViolationRead
from app.bookings.series import expand, without
from app.bookings.series_errors import NothingToChange, SeriesNotFound, SeriesRefused
from app.bookings.series_models import BookingSeries
from app.bookings.series_repository import SeriesRepository
from app.bookings.series_schemas import (
    OccurrenceOutcome,
    OccurrenceReport,
    SeriesCancel,
    SeriesCreate,
    SeriesMode,
    SeriesScope,
    SeriesUpdate,
)
from app.bookings.service import Actor, BookingService
from app.core.clock import Clock
from app.core.config import BookingSettings
from app.core.errors import ValidationFailed
from app.core.preconditions import StaleVersion, check_version

TEMPLATE_FIELDS = frozenset({"title", "note", "attendees"})
"""The details an edit of a series copies to its occurrences as they are (times are moved
to new wall-clock times on each occurrence's own date)."""


def series_snapshot(series: BookingSeries) -> dict[str, Any]:
    """The audited fields of a series."""
    return {
        "room_id": series.room_id,
        "owner_id": series.owner_id,
        "title": series.title,
        "note": series.note,
        "attendees": series.attendees,
        "starts_at": series.starts_at,
        "ends_at": series.ends_at,
        "time_zone": series.time_zone,
        "rrule": series.rrule,
        "exdates": series.exdates,
    }


class SeriesService:
    """Make a series, read it, and edit or cancel one, following or all of its occurrences."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        audit: AuditService,
        settings: BookingSettings,
        clock: Clock,
        bookings: BookingService,
    ) -> None:
        self.series = SeriesRepository(session)
        self.rooms = RoomRepository(session)
        self.audit = audit
        self.settings = settings
        self.clock = clock
        self.bookings = bookings

    async def create(
        self, *, actor: Actor, data: SeriesCreate
    ) -> tuple[BookingSeries, list[OccurrenceReport]]:
        """Book every occurrence, or (all_or_nothing) none when any is refused."""
        room = await self.rooms.get(room_id=data.room_id)
        if room is None:
            raise _invalid("room_id", "No room has this id.", "unknown_room")
        times = self._occurrences(data=data, time_zone=ZoneInfo(room.time_zone))
        series = await self.series.add(
            series=BookingSeries(
                id=uuid.uuid4(),
                room_id=room.id,
                owner_id=actor.id,
                title=data.title,
                note=data.note,
                attendees=data.attendees,
                starts_at=data.starts_at,
                ends_at=data.ends_at,
                time_zone=room.time_zone,
                rrule=data.rrule,
                exdates=list(data.exdates),
                version=1,
            )
        )
        reports = [
            await self._book(actor=actor, data=data, series=series, starts_at=start, ends_at=end)
            for start, end in times
        ]
        self._refuse_unless_booked(mode=data.mode, reports=reports)
        await self.audit.record(
            action=AuditAction.SERIES_CREATED,
            entity_type=AuditEntity.BOOKING_SERIES,
            entity_id=series.id,
            after=series_snapshot(series) | {"mode": data.mode.value, "booked": _counts(reports)},
        )
        return series, reports

    async def visible(self, *, actor: Actor, series_id: uuid.UUID) -> BookingSeries:
        """A series the actor may see (their own, or any for managers), else `SeriesNotFound`."""
        series = await self.series.get(series_id=series_id)
        # Someone else's series is as unknown as a missing one: ids cannot be probed.
        if series is None or not (actor.manages or series.owner_id == actor.id):
            raise SeriesNotFound(f"No series has id {series_id}.")
        return series

    async def occurrences(self, *, series: BookingSeries) -> Sequence[Booking]:
        """Every occurrence of the series, whatever its status, in time order."""
        return await self.series.occurrences(series_id=series.id)

    async def update(
        self,
        *,
        actor: Actor,
        series: BookingSeries,
        expected_versions: frozenset[int],
        data: SeriesUpdate,
    ) -> tuple[BookingSeries, list[Booking]]:
        """Change details or local times of the occurrences in scope, each judged again."""
        check_version(
            current=series.version, expected_versions=expected_versions, resource="series"
        )
        changes = data.model_dump(include=set(TEMPLATE_FIELDS & data.model_fields_set))
        targets = await self._targets(series=series, scope=data.scope, anchor=data.occurrence_id)
        changed = []
        for booking in targets:
            version = booking.version
            result = await self.bookings.update(
                actor=actor,
                booking=booking,
                expected_versions=frozenset({version}),
                data=BookingUpdate.model_validate(
                    changes | _retimed(series, booking.starts_at, data)
                ),
            )
            # An occurrence that already read so is left alone, unaudited and unreported.
            if result.version != version:
                changed.append(result)
        template = (
            changes | _retimed(series, series.starts_at, data)
            if data.scope is SeriesScope.ALL
            else {}
        )
        times = data.model_dump(mode="json", include={"start_time", "end_time"}, exclude_none=True)
        updated = await self._bump(
            series=series,
            values=template,
            action=AuditAction.SERIES_UPDATED,
            noted={"scope": data.scope.value, "changes": changes | times, "occurrences": changed},
        )
        return updated, changed

    async def cancel(
        self,
        *,
        actor: Actor,
        series: BookingSeries,
        expected_versions: frozenset[int],
        data: SeriesCancel,
    ) -> tuple[BookingSeries, list[Booking]]:
        """Cancel the occurrences in scope (members: their own, none within the cut-off)."""
        check_version(
            current=series.version, expected_versions=expected_versions, resource="series"
        )
        targets = await self._targets(series=series, scope=data.scope, anchor=data.occurrence_id)
        cancelled = [
            await self.bookings.cancel(
                actor=actor,
                booking=booking,
                expected_versions=frozenset({booking.version}),
                reason=data.reason,
            )
            for booking in targets
        ]
        updated = await self._bump(
            series=series,
            values={},
            action=AuditAction.SERIES_CANCELLED,
            noted={"scope": data.scope.value, "reason": data.reason, "occurrences": cancelled},
        )
        return updated, cancelled

    def _occurrences(
        self, *, data: SeriesCreate, time_zone: ZoneInfo
    ) -> list[tuple[datetime, datetime]]:
        """The rule's occurrences less the EXDATEs; 422 past the cap or on an unknown EXDATE."""
        cap = self.settings.series_max_occurrences
        times, unmatched = without(
            expand(
                recurrence=data.recurrence,
                starts_at=data.starts_at,
                ends_at=data.ends_at,
                time_zone=time_zone,
                limit=cap + len(data.exdates) + 1,
            ),
            excluded=data.exdates,
        )
        if unmatched:
            raise ValidationFailed(
                [
                    {
                        "field": f"exdates.{index}",
                        "message": "The rule yields no occurrence starting then.",
                        "type": "unknown_exdate",
                    }
                    for index in unmatched
                ]
            )
        if len(times) > cap:
            raise _invalid("rrule", f"A series has at most {cap} occurrences.", "too_many")
        if not times:
            raise _invalid("rrule", "The rule yields no occurrence.", "no_occurrence")
        return times

    async def _book(
        self,
        *,
        actor: Actor,
        data: SeriesCreate,
        series: BookingSeries,
        starts_at: datetime,
        ends_at: datetime,
    ) -> OccurrenceReport:
        """Book one occurrence; a refusal is reported, not raised (it wrote nothing)."""
        occurrence = BookingCreate(
            room_id=data.room_id,
            title=data.title,
            note=data.note,
            attendees=data.attendees,
            starts_at=starts_at,
            ends_at=ends_at,
            override_rules=data.override_rules,
        )
        try:
            booking = await self.bookings.create(actor=actor, data=occurrence, series_id=series.id)
        except (BookingRefused, BookingRulesViolated) as refusal:
            return OccurrenceReport(
                starts_at=starts_at,
                ends_at=ends_at,
                outcome=_refused_as(data.mode),
                booking_id=None,
                violations=[ViolationRead.of(v) for v in refusal.violations],
            )
        return OccurrenceReport(
            starts_at=starts_at,
            ends_at=ends_at,
            outcome=OccurrenceOutcome.BOOKED,
            booking_id=booking.id,
            violations=[],
        )

    def _refuse_unless_booked(self, *, mode: SeriesMode, reports: list[OccurrenceReport]) -> None:
        """Raise `SeriesRefused` (rolling everything back) when the series may not stand."""
        refused = [r for r in reports if r.outcome is not OccurrenceOutcome.BOOKED]
        if mode is SeriesMode.ALL_OR_NOTHING and refused:
            for report in reports:
                if report.outcome is OccurrenceOutcome.BOOKED:
                    report.outcome, report.booking_id = OccurrenceOutcome.FREE, None
            raise SeriesRefused(
                f"{len(refused)} of {len(reports)} occurrences cannot be booked; none was.",
                occurrences=reports,
            )
        if len(refused) == len(reports):
            raise SeriesRefused("No occurrence can be booked.", occurrences=reports)

    async def _targets(
        self, *, series: BookingSeries, scope: SeriesScope, anchor: uuid.UUID | None
    ) -> Sequence[Booking]:
        """The occurrences a scope names: one, it and the later ones, or all not yet started."""
        if scope is SeriesScope.ALL:
            targets = await self.series.holding_from(series_id=series.id, starts_from=self.clock())
        else:
            first = await self._occurrence(series=series, booking_id=anchor)
            if scope is SeriesScope.ONE:
                return [first]
            targets = await self.series.holding_from(
                series_id=series.id, starts_from=first.starts_at
            )
        if not targets:
            raise NothingToChange("No occurrence in this scope holds its room any more.")
        return targets

    async def _occurrence(self, *, series: BookingSeries, booking_id: uuid.UUID | None) -> Booking:
        booking = await self.bookings.bookings.get(booking_id=booking_id) if booking_id else None
        if booking is None or booking.series_id != series.id:
            raise _invalid(
                "occurrence_id", "Not an occurrence of this series.", "unknown_occurrence"
            )
        return booking

    async def _bump(
        self,
        *,
        series: BookingSeries,
        values: dict[str, Any],
        action: AuditAction,
        noted: dict[str, Any],
    ) -> BookingSeries:
        """Write the series' new version (and template), audited with what the operation did."""
        before = series_snapshot(series)
        updated = await self.series.update_versioned(
            series_id=series.id, version=series.version, values=values
        )
        if updated is None:
            raise StaleVersion("The series was changed concurrently; read it again.")
        occurrences = [booking.id for booking in noted.pop("occurrences")]
        await self.audit.record(
            action=action,
            entity_type=AuditEntity.BOOKING_SERIES,
            entity_id=series.id,
            before=before,
            after=series_snapshot(updated) | noted | {"occurrences": occurrences},
        )
        return updated


def _retimed(series: BookingSeries, starts_at: datetime, data: SeriesUpdate) -> dict[str, datetime]:
    """The new start and end, on the local date of `starts_at`, that `data` asks for, if any."""
    if data.start_time is None or data.end_time is None:
        return {}
    zone = ZoneInfo(series.time_zone)
    day = starts_at.astimezone(zone).date()
    return {
        "starts_at": datetime.combine(day, data.start_time, tzinfo=zone),
        "ends_at": datetime.combine(day, data.end_time, tzinfo=zone),
    }


def _refused_as(mode: SeriesMode) -> OccurrenceOutcome:
    if mode is SeriesMode.SKIP_CONFLICTS:
        return OccurrenceOutcome.SKIPPED
    return OccurrenceOutcome.REFUSED


def _counts(reports: list[OccurrenceReport]) -> dict[str, int]:
    """How many occurrences had each outcome."""
    counts: dict[str, int] = {}
    for report in reports:
        counts[report.outcome.value] = counts.get(report.outcome.value, 0) + 1
    return counts


def _invalid(field: str, message: str, kind: str) -> ValidationFailed:
    return ValidationFailed([{"field": field, "message": message, "type": kind}])


def build_series_service(
    session: AsyncSession,
    *,
    audit: AuditService,
    settings: BookingSettings,
    clock: Clock,
    bookings: BookingService,
) -> SeriesService:
    """The series service on a session, sharing the unit of work's audit and booking services."""
    return SeriesService(
        session=session, audit=audit, settings=settings, clock=clock, bookings=bookings
    )

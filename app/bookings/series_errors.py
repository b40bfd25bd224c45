"""The domain errors of recurring booking series."""

from collections.abc import Sequence
from typing import Any

from app.bookings.series_schemas import OccurrenceReport
from app.core.errors import Conflict, NotFound


class SeriesNotFound(NotFound):
    """No series with this id is visible to the caller."""

    code = "series-not-found"
    title = "Series not found"


class SeriesRefused(Conflict):
    """Occurrences of a new series were refused, so nothing was booked; each one is reported."""

    code = "series-refused"
    title = "Series refused"

    def __init__(self, detail: str, *, occurrences: Sequence[OccurrenceReport]) -> None:
        super().__init__(detail)
        self.occurrences = list(occurrences)

    def extensions(self) -> dict[str, Any]:
        """Carry every occurrence's outcome and violations."""
        return {"occurrences": [o.model_dump(mode="json") for o in self.occurrences]}


class NothingToChange(Conflict):
    """The scope names no occurrence that still holds its room and has not started."""

    code = "series-nothing-to-change"
    title = "No occurrence to change"

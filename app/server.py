"""uvicorn's HTTP protocol with a deadline for a request's headers (slow-loris clients)."""

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.config import get_settings

PROTOCOL = "app.server:HeaderDeadlineProtocol"
"""The import string given to uvicorn's `http` option (a string survives worker spawning)."""


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """Close a connection whose next request's headers are not complete in time.

    uvicorn times only the idle gap between requests, and new bytes cancel even that
    timer, so a client trickling its headers could hold a connection for ever. The
    deadline (`SERVER__HEADER_TIMEOUT_S`) runs from the connection's opening and from each
    response's end; a request in progress when it passes is left alone.
    """

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the first request's deadline."""
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        """Start the next request's deadline."""
        super().on_response_complete()
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        if not self.transport.is_closing():
            timeout = get_settings().server.header_timeout_s
            self._header_timer = self.loop.call_later(timeout, self._header_deadline_passed)

    def _disarm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        # `cycle` is the request whose headers arrived last; a finished one means none since.
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

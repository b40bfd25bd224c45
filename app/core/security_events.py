"""One structured log event, `security_event`, for everything an operator may alert on.

Each occurrence is logged once, at warning level, with a `reason` from a closed list and
the request's id, client IP and actor. Events that change state (a counted failed login, a
revoked session) are audited as well; the high-volume ones that change nothing (refused
requests, throttled guesses) stay out of the audit hash chain.
"""

# ruff: noqa: S105 - reason names such as "token_rejected" are not secrets.

from enum import StrEnum

import structlog

from app.core.context import current_context

log = structlog.get_logger("roombook.security")


class SecurityReason(StrEnum):
    """Why a `security_event` was logged; append members, never rename them."""

    ROLE_FORBIDDEN = "role_forbidden"
    RATE_LIMITED = "rate_limited"
    CROSS_SITE_REFUSED = "cross_site_refused"
    TOKEN_REJECTED = "token_rejected"
    REFRESH_REJECTED = "refresh_rejected"
    REFRESH_REUSED = "refresh_reused"
    REFRESH_GRACE_REPLAY = "refresh_grace_replay"
    LOGIN_FAILED = "login_failed"
    LOGIN_THROTTLED = "login_throttled"
    DEVICE_COOKIE_REJECTED = "device_cookie_rejected"
    WRONG_CURRENT_PASSWORD = "wrong_current_password"
    CURRENT_PASSWORD_THROTTLED = "current_password_throttled"


def security_event(reason: SecurityReason, **details: str | int | None) -> None:
    """Log one occurrence of a security event with who and where it came from."""
    context = current_context()
    log.warning(
        "security_event",
        reason=reason.value,
        client_ip=context.client_ip,
        actor_id=str(context.actor_id) if context.actor_id else None,
        **details,
    )

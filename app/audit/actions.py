"""The closed vocabularies of the audit trail: actions and the kinds of thing they touch.

Append members, never rename them: recorded entries keep the old values forever.
"""

# ruff: noqa: S105 - action names such as "user.password_changed" are not secrets.

from enum import StrEnum


class AuditAction(StrEnum):
    """Every action the audit trail records, as `<entity>.<verb>`."""

    USER_CREATED = "user.created"
    USER_REGISTERED = "user.registered"
    USER_UPDATED = "user.updated"
    USER_EMAIL_CHANGED = "user.email_changed"
    USER_ROLE_CHANGED = "user.role_changed"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    USER_PASSWORD_CHANGED = "user.password_changed"
    USER_PASSWORD_REHASHED = "user.password_rehashed"
    AUTH_LOGIN_SUCCEEDED = "auth.login_succeeded"
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AUTH_LOGIN_THROTTLED = "auth.login_throttled"
    AUTH_TOKEN_REFRESHED = "auth.token_refreshed"
    AUTH_REFRESH_REUSED = "auth.refresh_reused"
    AUTH_LOGOUT = "auth.logout"
    AUTH_SESSION_REVOKED = "auth.session_revoked"
    AUTH_ADMIN_BOOTSTRAPPED = "auth.admin_bootstrapped"
    ROOM_CREATED = "room.created"
    ROOM_UPDATED = "room.updated"
    ROOM_DEACTIVATED = "room.deactivated"
    BOOKING_CREATED = "booking.created"
    BOOKING_UPDATED = "booking.updated"
    BOOKING_CANCELLED = "booking.cancelled"
    AUTH_PASSWORD_CHECK_FAILED = "auth.password_check_failed"
    BOOKING_APPROVED = "booking.approved"
    BOOKING_REJECTED = "booking.rejected"
    BOOKING_RULES_OVERRIDDEN = "booking.rules_overridden"
    ROOM_REACTIVATED = "room.reactivated"
    BLACKOUT_ADDED = "blackout.added"
    BLACKOUT_REMOVED = "blackout.removed"
    SERIES_CREATED = "booking_series.created"
    SERIES_UPDATED = "booking_series.updated"
    SERIES_CANCELLED = "booking_series.cancelled"
    CALENDAR_TOKEN_CREATED = "calendar_token.created"
    CALENDAR_TOKEN_REVOKED = "calendar_token.revoked"


class AuditEntity(StrEnum):
    """Every kind of thing an audit entry is filed under: one value per thing, never two."""

    USER = "user"
    AUTH_SESSION = "auth_session"
    ROOM = "room"
    BOOKING = "booking"
    BLACKOUT = "blackout"
    BOOKING_SERIES = "booking_series"
    CALENDAR_TOKEN = "calendar_token"

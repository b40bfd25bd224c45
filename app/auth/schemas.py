"""Request and response shapes of the auth API."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.types import RequestBody, SingleLine
from app.users.schemas import Email, FullName, NewPassword, Password


class Delivery(StrEnum):
    """Where login and refresh put the new refresh token."""

    COOKIE = "cookie"
    BODY = "body"


class RegisterRequest(RequestBody):
    """A self-service sign-up; the account becomes a `member`."""

    email: Email
    password: NewPassword
    full_name: FullName


class RefreshRequest(RequestBody):
    """A refresh token in the body, for clients without a cookie jar (the answer uses the body)."""

    refresh_token: SingleLine = Field(min_length=1, max_length=256)


class PasswordChange(RequestBody):
    """The current password, and the new one it is replaced with."""

    current_password: Password
    new_password: NewPassword


class TokenResponse(BaseModel):
    """An access token; the refresh token appears here only for `body` delivery."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type name
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str | None = Field(
        default=None,
        description=(
            "Only with body delivery. Null on a refresh answered inside the reuse grace "
            "window: keep the token you already have."
        ),
    )


class SessionRead(BaseModel):
    """One of the caller's live sessions (a login on some device)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    client_ip: str | None
    current: bool = False

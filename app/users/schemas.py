"""Request and response shapes of the users API; none carries a password hash.

Login's view of an account, hash included, is `Credentials` in the service layer.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from app.core.openapi import POLICY_MIN_LENGTH
from app.core.types import JsonStringForm, NoControlCharacters, RequestBody, SingleLine

PASSWORD_INPUT_MAX = 1024
"""Raw input cap before normalisation; the policy then enforces the real maximum (128)."""


class Role(StrEnum):
    """What a user may do: members book, managers run rooms, admins run everything."""

    MEMBER = "member"
    MANAGER = "manager"
    ADMIN = "admin"


def normalise_email(value: str) -> str:
    """Lower-case an address so each mailbox has exactly one spelling."""
    return value.strip().lower()


Email = Annotated[
    EmailStr, NoControlCharacters(), Field(max_length=254), AfterValidator(normalise_email)
]
FullName = Annotated[
    SingleLine, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]
Password = Annotated[SingleLine, Field(min_length=1, max_length=PASSWORD_INPUT_MAX)]
"""A password as typed to prove who one is."""
NewPassword = Annotated[
    Password,
    Field(
        description=(
            "15 to 128 characters after NFKC normalisation (the minimum is "
            "`AUTH__PASSWORD_MIN_LENGTH`); common, predictable or email-based passwords "
            "are refused."
        ),
        json_schema_extra={POLICY_MIN_LENGTH: True},
    ),
]
"""A password being set: the policy decides, and the API document shows its minimum."""


class UserRead(BaseModel):
    """A user as the API shows it; `version` is the value of its ETag."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    version: int
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


class UserCreate(RequestBody):
    """An account an admin creates, with its initial password and role."""

    email: Email
    full_name: FullName
    password: NewPassword
    role: Annotated[Role, JsonStringForm] = Role.MEMBER


class SelfUpdate(RequestBody):
    """Changes a user makes to their own account; a new email needs the current password."""

    full_name: FullName | None = None
    email: Email | None = None
    current_password: Password | None = None


class AdminUpdate(RequestBody):
    """Changes an admin makes to any account."""

    full_name: FullName | None = None
    role: Annotated[Role, JsonStringForm] | None = None
    is_active: bool | None = None


@dataclass(frozen=True, slots=True)
class UserFilter:
    """List filters: exact role and active flag, `q` a substring of email or name."""

    role: Role | None = None
    active: bool | None = None
    q: str | None = None

"""Operator commands of the auth domain, run by `python -m app.cli`."""

from pydantic import ValidationError

from app.auth.bootstrap import build_account_services, create_admin
from app.core.config import Settings
from app.core.db import create_engine, create_session_factory
from app.core.errors import AppError, ValidationFailed
from app.core.security import PasswordHasher
from app.users.schemas import UserRead


class AdminNotCreated(Exception):
    """The admin account could not be created; the message says why, for the operator."""


def describe(error: AppError) -> str:
    """One line naming what was wrong, field by field for validation failures."""
    if isinstance(error, ValidationFailed):
        return "; ".join(f"{e['field']}: {e['message']}" for e in error.errors)
    return error.detail


async def create_admin_account(
    settings: Settings, *, url: str, email: str, password: str, full_name: str
) -> UserRead:
    """Create and commit an admin account in the database at `url`."""
    engine = create_engine(settings.database, url=url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            _, users = build_account_services(
                session, hasher=PasswordHasher.from_settings(settings.security), settings=settings
            )
            return await create_admin(
                users,
                email=email,
                password=password,
                full_name=full_name,
            )
    except ValidationError as exc:
        fields = ", ".join(str(e["loc"][-1]) for e in exc.errors())
        raise AdminNotCreated(f"invalid {fields}") from exc
    except AppError as exc:
        raise AdminNotCreated(describe(exc)) from exc
    finally:
        await engine.dispose()

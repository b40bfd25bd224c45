"""Operator commands of the auth domain, run by `python -m app.cli`."""

from pydantic import ValidationError

from app.audit.service import build_audit_service
from app.auth.bootstrap import build_account_services, create_admin
from app.auth.service import PrunedTable, build_session_service
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


async def prune_expired(settings: Settings, *, url: str, batch_size: int) -> dict[str, int]:
    """Delete what has expired from the auth tables in batches; return rows removed per table.

    Each batch is its own short transaction, so a large backlog never holds many row
    locks or one long transaction, and rows a request is using are skipped, not waited for.
    """
    engine = create_engine(settings.database, url=url)
    removed: dict[str, int] = {}
    try:
        factory = create_session_factory(engine)
        for table in PrunedTable:
            removed[table.value] = 0
            while True:
                async with factory() as session, session.begin():
                    sessions = build_session_service(
                        session,
                        audit=build_audit_service(session, settings=settings),
                        settings=settings,
                    )
                    count = await sessions.prune(table=table, limit=batch_size)
                removed[table.value] += count
                if count < batch_size:
                    break
    finally:
        await engine.dispose()
    return removed

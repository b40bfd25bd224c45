"""The first admin: `make create-admin` (CLI) and the one-time bootstrap from settings."""

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app import cli
from app.audit.models import AuditEvent
from app.core.config import AuthSettings, get_settings
from app.factory import create_app
from app.users.models import User
from tests.conftest import make_settings

GOOD = "operations passphrase of some length"


@pytest.fixture
def scratch_url(migrated_database_url: str) -> str:
    """A migrated database of its own, so bootstrap runs against an empty user table."""
    return migrated_database_url


@pytest.fixture
def cli_env(scratch_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI pointed at the scratch database, with fresh settings before and after."""
    for name in list(os.environ):
        if name == "ENVIRONMENT" or "__" in name:
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE__URL", scratch_url)
    monkeypatch.setenv("SECURITY__ARGON2_TIME_COST", "1")
    monkeypatch.setenv("SECURITY__ARGON2_MEMORY_KIB", "64")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def _users(url: str) -> list[tuple[str, str, str]]:
    engine: AsyncEngine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(User.email, User.role, User.full_name).order_by(User.email)
            )
            return [(email, role, name) for email, role, name in rows]
    finally:
        await engine.dispose()


async def _actions(url: str) -> list[str]:
    engine: AsyncEngine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(AuditEvent.action).order_by(AuditEvent.seq))
            return list(rows.scalars())
    finally:
        await engine.dispose()


async def test_create_admin_reads_the_password_from_the_environment(
    cli_env: None,
    scratch_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(cli.ADMIN_PASSWORD_ENV, GOOD)
    await asyncio.to_thread(cli.main, ["create-admin", "Ops@Example.com", "--name", "Ops Team"])
    assert "admin ops@example.com created" in capsys.readouterr().out
    assert await _users(scratch_url) == [("ops@example.com", "admin", "Ops Team")]
    assert await _actions(scratch_url) == ["user.created"]

    with pytest.raises(SystemExit) as again:
        await asyncio.to_thread(cli.main, ["create-admin", "ops@example.com"])
    assert again.value.code == 1
    assert "already exists" in capsys.readouterr().err


async def test_create_admin_prompts_twice_without_the_variable(
    cli_env: None, scratch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(cli.ADMIN_PASSWORD_ENV, raising=False)
    answers = iter([GOOD, GOOD])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    await asyncio.to_thread(cli.main, ["create-admin", "prompted@example.com"])
    assert await _users(scratch_url) == [("prompted@example.com", "admin", "Administrator")]


async def test_create_admin_refuses_mismatch_weak_passwords_and_bad_emails(
    cli_env: None,
    scratch_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    answers = iter([GOOD, GOOD + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    with pytest.raises(SystemExit, match="do not match"):
        await asyncio.to_thread(cli.main, ["create-admin", "x@example.com"])

    monkeypatch.setenv(cli.ADMIN_PASSWORD_ENV, "too short")
    with pytest.raises(SystemExit):
        await asyncio.to_thread(cli.main, ["create-admin", "x@example.com"])
    assert "password: Use at least 15 characters." in capsys.readouterr().err

    monkeypatch.setenv(cli.ADMIN_PASSWORD_ENV, GOOD)
    with pytest.raises(SystemExit):
        await asyncio.to_thread(cli.main, ["create-admin", "not-an-email"])
    assert "invalid email" in capsys.readouterr().err
    assert await _users(scratch_url) == []


def _bootstrap(url: str, email: str = "boot@example.com") -> AuthSettings:
    return AuthSettings(
        bootstrap_admin_email=email,
        bootstrap_admin_password=SecretStr(GOOD),
        bootstrap_admin_name="Boot Admin",
    )


async def test_startup_bootstrap_creates_the_first_admin_once(scratch_url: str) -> None:
    settings = make_settings(scratch_url, auth=_bootstrap(scratch_url))
    async with LifespanManager(create_app(settings)):
        pass
    assert await _users(scratch_url) == [("boot@example.com", "admin", "Boot Admin")]
    # Later starts, even with another email configured, create nothing more.
    other = make_settings(scratch_url, auth=_bootstrap(scratch_url, "second@example.com"))
    async with LifespanManager(create_app(other)):
        pass
    assert await _users(scratch_url) == [("boot@example.com", "admin", "Boot Admin")]
    assert await _actions(scratch_url) == ["user.created", "auth.admin_bootstrapped"]


async def test_parallel_workers_bootstrap_one_admin(scratch_url: str) -> None:
    settings = make_settings(scratch_url, auth=_bootstrap(scratch_url))
    apps = [create_app(settings) for _ in range(3)]

    async def start(app: object) -> None:
        async with LifespanManager(app):  # type: ignore[arg-type]
            pass

    await asyncio.gather(*(start(app) for app in apps))
    assert await _users(scratch_url) == [("boot@example.com", "admin", "Boot Admin")]


async def test_bootstrap_never_promotes_an_existing_account(scratch_url: str) -> None:
    engine = create_async_engine(scratch_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (id, email, full_name, password_hash) "
                    "VALUES (:id, 'boot@example.com', 'Member', 'x')"
                ),
                {"id": uuid.uuid4()},
            )
    finally:
        await engine.dispose()
    settings = make_settings(scratch_url, auth=_bootstrap(scratch_url))
    async with LifespanManager(create_app(settings)):
        pass
    assert await _users(scratch_url) == [("boot@example.com", "member", "Member")]


async def test_no_bootstrap_without_settings(scratch_url: str) -> None:
    async with LifespanManager(create_app(make_settings(scratch_url))):
        pass
    assert await _users(scratch_url) == []

"""Least privilege in the database: the API's role appends to the audit trail, never rewrites it."""

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from app import cli, devdb
from app.audit.commands import verify_chain
from app.auth.commands import prune_expired
from app.core.config import AuthSettings
from app.core.idempotency_store import prune_expired_keys
from app.dbroles import APP_PRIVILEGES, RoleNotGrantable, grant_app_role
from app.factory import create_app
from app.models import metadata
from tests.conftest import make_settings
from tests.database import _admin, login_role

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
HELD = """
SELECT t.tablename, p.privilege FROM pg_tables t
CROSS JOIN unnest($2::text[]) AS p(privilege)
WHERE t.schemaname = 'public' AND has_table_privilege($1, 'public.' || t.tablename, p.privilege)
"""
API = "/api/v1"
ADMIN_EMAIL = "admin@roles.example.org"
PASSWORD = "velvet lanterns drift over quiet harbours"


@pytest.fixture(scope="module")
async def app_role_url(database_url: str) -> AsyncIterator[str]:
    """URL of a role of this run's database holding exactly the API's privileges."""
    async with login_role(database_url, "app") as url:
        await grant_app_role(database_url, role=role_of(url))
        yield url


def role_of(url: str) -> str:
    """The user a URL logs in as."""
    user = make_url(url).username
    assert user is not None
    return user


async def held_privileges(url: str, *, role: str) -> dict[str, set[str]]:
    """Table privileges `role` holds in the database at `url`, by table."""
    connection = await devdb.connect(url)
    try:
        rows = await connection.fetch(HELD, role, list(TABLE_PRIVILEGES))
    finally:
        await connection.close()
    held: dict[str, set[str]] = {}
    for row in rows:
        held.setdefault(row["tablename"], set()).add(row["privilege"])
    return held


def declared() -> dict[str, set[str]]:
    """The privileges `APP_PRIVILEGES` declares, in the shape of `held_privileges`."""
    return {table: set(privileges) for table, privileges in APP_PRIVILEGES.items()}


def test_the_readme_shows_the_grants_as_sql() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for table, privileges in APP_PRIVILEGES.items():
        assert f"GRANT {', '.join(privileges)} ON {table} TO roombook_app;" in readme


def test_every_table_declares_what_the_api_may_do_to_it() -> None:
    # A new table fails here until it is given its privileges (or none, deliberately).
    assert set(APP_PRIVILEGES) == set(metadata.tables)


async def test_the_api_role_holds_exactly_the_declared_privileges(
    database_url: str, app_role_url: str
) -> None:
    held = await held_privileges(database_url, role=role_of(app_role_url))
    assert held == declared()
    assert "alembic_version" not in held


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE audit_events SET entity_id = 'forged'", "permission denied for table"),
        ("DELETE FROM audit_events", "permission denied for table"),
        ("TRUNCATE audit_events", "permission denied for table"),
        ("ALTER TABLE audit_events DISABLE TRIGGER ALL", "must be owner of table"),
        ("DROP TRIGGER audit_events_no_update_delete ON audit_events", "must be owner of"),
        ("DELETE FROM audit_chain_head", "permission denied for table"),
        ("TRUNCATE audit_chain_head", "permission denied for table"),
        ("ALTER TABLE audit_chain_head DISABLE TRIGGER ALL", "must be owner of table"),
        ("SET session_replication_role = replica", "permission denied to set parameter"),
        ("CREATE TABLE intruder (id int)", "permission denied for schema public"),
    ],
)
async def test_the_api_role_cannot_rewrite_the_audit_trail_or_get_past_its_triggers(
    app_role_url: str, statement: str, message: str
) -> None:
    connection = await devdb.connect(app_role_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
            async with connection.transaction():
                await connection.execute(statement)
    finally:
        await connection.close()
    # The privilege check, not the append-only trigger (same SQLSTATE), refused it.
    assert refused.value.sqlstate == "42501"
    assert message in str(refused.value)


async def test_the_head_it_may_update_still_never_moves_back(app_role_url: str) -> None:
    connection = await devdb.connect(app_role_url)
    transaction = connection.transaction()
    await transaction.start()
    try:
        # Tests that commit empty the tables: the head comes back as the append restores
        # it (and goes again with the rollback).
        await connection.execute(
            "INSERT INTO audit_chain_head (id, last_seq, last_hash) "
            "VALUES (1, 0, repeat('0', 64)) ON CONFLICT DO NOTHING"
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="only advances"):
            await connection.execute("UPDATE audit_chain_head SET last_seq = last_seq - 1")
    finally:
        await transaction.rollback()
        await connection.close()


async def test_granting_again_withdraws_stray_privileges(
    database_url: str, app_role_url: str
) -> None:
    role = devdb.quote_ident(role_of(app_role_url))
    await _admin(database_url, f"GRANT ALL ON audit_events, alembic_version TO {role}")
    await grant_app_role(database_url, role=role_of(app_role_url))
    await grant_app_role(database_url, role=role_of(app_role_url))
    assert await held_privileges(database_url, role=role_of(app_role_url)) == declared()


async def test_grant_refuses_a_superuser_and_a_missing_role(database_url: str) -> None:
    with pytest.raises(RoleNotGrantable, match="is a superuser"):
        await grant_app_role(database_url, role=role_of(database_url))
    with pytest.raises(RoleNotGrantable, match="does not exist"):
        await grant_app_role(database_url, role="roombook_no_such_role")


async def test_grant_refuses_a_role_that_can_make_itself_the_owner(database_url: str) -> None:
    async with login_role(database_url, "creator", options="CREATEROLE") as url:
        with pytest.raises(RoleNotGrantable, match="has CREATEROLE"):
            await grant_app_role(database_url, role=role_of(url))


@pytest.fixture
async def operator_setup(
    database_url: str, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> AsyncIterator[tuple[str, str]]:
    """The README's setup: an owner (no superuser) owning the database, an API role.

    Yields (owner URL, API URL) of a database of their own, migrated by `migrate` with
    `DATABASE__MIGRATION_URL` as the owner and `DATABASE__URL` as the API's role.
    """
    async with (
        login_role(database_url, "owner") as owner_url,
        login_role(database_url, "api") as api_url,
    ):
        name = f"{make_url(database_url).database}_ops"
        owner_role = devdb.quote_ident(role_of(owner_url))
        await _admin(database_url, f"CREATE DATABASE {devdb.quote_ident(name)} OWNER {owner_role}")
        try:
            owner = devdb.with_database(owner_url, name)
            api = devdb.with_database(api_url, name)
            for variable in list(os.environ):
                if variable == "ENVIRONMENT" or "__" in variable:
                    monkeypatch.delenv(variable)
            monkeypatch.setenv("DATABASE__MIGRATION_URL", owner)
            monkeypatch.setenv("DATABASE__URL", api)
            # Alembic's env runs its own event loop, so the command runs in a worker thread.
            await asyncio.to_thread(cli.main, ["migrate"])
            yield owner, api
        finally:
            await _admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_migrate_runs_as_the_owner_and_grants_the_api_role(
    operator_setup: tuple[str, str],
) -> None:
    owner, api = operator_setup
    connection = await devdb.connect(owner)
    try:
        owners = await connection.fetch(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        )
    finally:
        await connection.close()
    assert [row["tableowner"] for row in owners] == [role_of(owner)]
    assert await held_privileges(owner, role=role_of(api)) == declared()
    with pytest.raises(RoleNotGrantable, match="owns"):
        await grant_app_role(owner, role=role_of(owner))


async def test_grant_app_role_command(
    operator_setup: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    owner, api = operator_setup
    await asyncio.to_thread(cli.main, ["grant-app-role"])
    assert f"granted the API's privileges to {role_of(api)}" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"grant-app-role: .* owns"):
        await asyncio.to_thread(cli.main, ["grant-app-role", "--role", role_of(owner)])
    assert await held_privileges(owner, role=role_of(api)) == declared()


async def test_the_app_works_end_to_end_as_the_api_role(operator_setup: tuple[str, str]) -> None:
    _, api = operator_setup
    settings = make_settings(
        api,
        auth=AuthSettings(
            bootstrap_admin_email=ADMIN_EMAIL, bootstrap_admin_password=SecretStr(PASSWORD)
        ),
    )
    application = create_app(settings)
    async with (
        LifespanManager(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://testserver") as c,
    ):
        email = "member@roles.example.org"
        registered = await c.post(
            f"{API}/auth/register",
            json={"email": email, "password": PASSWORD, "full_name": "Role Member"},
        )
        assert registered.status_code == 201, registered.text
        member = await bearer(c, email)
        etag = (await c.get(f"{API}/users/me", headers=member)).headers["etag"]
        renamed = await c.patch(
            f"{API}/users/me", json={"full_name": "Renamed"}, headers={**member, "If-Match": etag}
        )
        assert renamed.status_code == 200, renamed.text
        assert (await c.post(f"{API}/auth/logout", headers=member)).status_code == 204
        admin = await bearer(c, ADMIN_EMAIL)
        # An idempotent create takes the key's lock, stores the answer and replays it.
        keyed = {**admin, "Idempotency-Key": "roles-create"}
        manager = {"email": "manager@roles.example.org", "password": PASSWORD, "full_name": "M"}
        created = await c.post(f"{API}/users", json=manager, headers=keyed)
        assert created.status_code == 201, created.text
        replayed = await c.post(f"{API}/users", json=manager, headers=keyed)
        assert replayed.headers["idempotent-replayed"] == "true"
        verified = await c.get(f"{API}/audit/verify", headers=admin)
        assert verified.status_code == 200
        # Bootstrap, sign-up, two logins, the rename, the logout and the create: all appended.
        assert verified.json()["ok"] is True
        assert verified.json()["checked"] >= 7
    report = await verify_chain(settings, url=api)
    assert report.ok
    # Pruning deletes as the same role; the logged-out session is gone.
    removed = await prune_expired(settings, url=api, batch_size=100)
    assert removed["auth_sessions"] >= 1
    # Nothing has expired, but the delete runs with the role's privileges all the same.
    assert await prune_expired_keys(settings, url=api, batch_size=100) == 0


async def bearer(client: AsyncClient, email: str) -> dict[str, str]:
    """Log in and return the `Authorization` header of the new session."""
    response = await client.post(
        f"{API}/auth/login",
        data={"username": email, "password": PASSWORD, "refresh_token_delivery": "body"},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}

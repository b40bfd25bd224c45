"""Operator commands and the database they are given."""

import argparse
import asyncio
import gc
import importlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from alembic import command
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app import cli, devdb
from app.core.config import AuthSettings, get_settings
from tests.database import _admin, server_url


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, fresh_settings: None) -> None:
    """No Roombook variable from the outer environment; settings read afresh."""
    for name in list(os.environ):
        if name == "ENVIRONMENT" or "__" in name:
            monkeypatch.delenv(name)
    # Commands export DATABASE__URL; monkeypatch restores the variable's absence afterwards.
    monkeypatch.delenv("DATABASE__URL", raising=False)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["migrate"], {"command": "migrate", "revision": "head"}),
        (["migrate", "0002"], {"command": "migrate", "revision": "0002"}),
        (["downgrade"], {"command": "downgrade", "revision": "-1"}),
        (["downgrade", "base"], {"command": "downgrade", "revision": "base"}),
        (
            ["makemigration", "-m", "add rooms"],
            {"command": "makemigration", "message": "add rooms"},
        ),
        (["openapi"], {"command": "openapi", "output": "openapi.json", "defaults": False}),
        (
            ["openapi", "-o", "x.json"],
            {"command": "openapi", "output": "x.json", "defaults": False},
        ),
        (
            ["openapi", "--defaults"],
            {"command": "openapi", "output": "openapi.json", "defaults": True},
        ),
        (["run"], {"command": "run"}),
        (["serve"], {"command": "serve"}),
        (["db-start"], {"command": "db-start"}),
        (["db-stop"], {"command": "db-stop"}),
        (["grant-app-role"], {"command": "grant-app-role", "role": None}),
        (["grant-app-role", "--role", "api"], {"command": "grant-app-role", "role": "api"}),
    ],
)
def test_parser(argv: list[str], expected: dict[str, str]) -> None:
    assert vars(cli.build_parser().parse_args(argv)) == expected


@pytest.mark.parametrize("argv", [[], ["nope"], ["makemigration"]])
def test_parser_refuses_bad_command_lines(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert "usage: python -m app.cli" in capsys.readouterr().err


def test_every_command_has_a_handler() -> None:
    parser = cli.build_parser()
    [subparsers] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(subparsers.choices) == set(cli.COMMANDS)


def test_openapi_command_writes_json(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    cli.main(["openapi", "-o", str(target)])
    document = json.loads(target.read_text())
    assert document["info"]["title"] == "Roombook API"
    assert "/health/live" in document["paths"]
    assert target.read_text().endswith("}\n")


def test_openapi_defaults_ignore_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    """The committed TypeScript client is generated this way: the same on every machine."""
    monkeypatch.setenv("AUTH__PASSWORD_MIN_LENGTH", "40")
    (tmp_path / ".env").write_text("AUTH__PASSWORD_MIN_LENGTH=30\n")
    monkeypatch.chdir(tmp_path)
    cli.main(["openapi", "--defaults", "-o", "defaults.json"])
    cli.main(["openapi", "-o", "configured.json"])
    minimums = {
        name: {
            prop["minLength"]
            for schema in json.loads((tmp_path / name).read_text())["components"][
                "schemas"
            ].values()
            for prop in schema.get("properties", {}).values()
            if prop.get("x-password-policy")
        }
        for name in ("defaults.json", "configured.json")
    }
    assert minimums == {
        "defaults.json": {AuthSettings().password_min_length},
        "configured.json": {40},
    }


def test_provide_database_returns_the_configured_url(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://roombook:pw@db.internal:5432/roombook"
    monkeypatch.setenv("DATABASE__URL", url)
    assert cli.provide_database() == url


async def test_provide_database_without_url_uses_the_embedded_server(
    monkeypatch: pytest.MonkeyPatch, scratch_url: str
) -> None:
    name = make_url(scratch_url).database
    assert name is not None
    server = server_url()
    started: list[bool] = []

    def embedded(*, keep_running: bool = False) -> str:
        started.append(keep_running)
        return server

    monkeypatch.setattr(devdb, "embedded_server_url", embedded)
    monkeypatch.setattr(devdb, "DATABASE_NAME", name)
    # Roles are cluster-wide: this run's own name, dropped afterwards.
    monkeypatch.setattr(devdb, "APP_ROLE", f"{name}_embedded_app")
    try:
        url = await asyncio.to_thread(cli.provide_database, keep_running=True)
        await devdb.ensure_login_role(server, devdb.APP_ROLE)  # already there: nothing to do
        connection = await devdb.connect(url)
        assert await connection.fetchrow("SELECT current_database(), current_user") == (
            name,
            devdb.APP_ROLE,
        )
        await connection.close()
    finally:
        await _admin(server, f'DROP ROLE IF EXISTS "{devdb.APP_ROLE}"')
    assert started == [True]
    # Exported so reloaders, workers and Alembic see the same database: the API as its
    # own role, migrations as the server's superuser.
    assert os.environ["DATABASE__URL"] == url
    assert os.environ["DATABASE__MIGRATION_URL"] == devdb.with_database(server, name)
    configured = get_settings().database.url
    assert configured is not None
    assert configured.get_secret_value() == url


async def test_ensure_database_creates_once() -> None:
    name = f"roombook_ensure_{uuid.uuid4().hex[:8]}"
    server = server_url()
    try:
        await devdb.ensure_database(server, name)
        await devdb.ensure_database(server, name)  # already there: nothing to do
        connection = await devdb.connect(devdb.with_database(server, name))
        assert await connection.fetchval("SELECT current_database()") == name
        await connection.close()
    finally:
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_with_database_keeps_everything_but_the_name() -> None:
    url = "postgresql://postgres:pw@/postgres?host=/run/pg"
    assert (
        devdb.with_database(url, "roombook")
        == "postgresql://postgres:pw@/roombook?host=%2Frun%2Fpg"
    )


async def test_migrate_and_downgrade_commands(
    monkeypatch: pytest.MonkeyPatch, scratch_url: str
) -> None:
    monkeypatch.setenv("DATABASE__URL", scratch_url)
    # Alembic's env runs its own event loop, so the commands run in a worker thread.
    await asyncio.to_thread(cli.main, ["migrate"])
    assert await version_of(scratch_url) is not None
    await asyncio.to_thread(cli.main, ["downgrade", "base"])
    assert await version_of(scratch_url) is None


async def version_of(url: str) -> str | None:
    """The migration a database is at."""
    connection = await devdb.connect(url)
    try:
        version: str | None = await connection.fetchval(
            "SELECT max(version_num) FROM alembic_version"
        )
        return version
    finally:
        await connection.close()


def record_calls(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> list[tuple[Any, ...]]:
    """Replace `target.name` with a recorder of its calls."""
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(target, name, lambda *args, **kwargs: calls.append((*args, kwargs)))
    return calls


def test_makemigration_upgrades_then_autogenerates(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("DATABASE__URL", database_url)
    upgrades = record_calls(monkeypatch, command, "upgrade")
    revisions = record_calls(monkeypatch, command, "revision")
    cli.main(["makemigration", "-m", "add rooms"])
    assert [call[1] for call in upgrades] == ["head"]
    [(config, options)] = revisions
    assert options == {"message": "add rooms", "autogenerate": True}
    assert config.config_file_name == str(cli.ALEMBIC_INI)


def test_run_migrates_and_serves_with_reload(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("DATABASE__URL", database_url)
    monkeypatch.setenv("SERVER__PORT", "8123")
    upgrades = record_calls(monkeypatch, command, "upgrade")
    served = record_calls(monkeypatch, uvicorn, "run")
    cli.main(["run"])
    assert [call[1] for call in upgrades] == ["head"]
    [(target, options)] = served
    assert target == cli.APP_FACTORY
    assert options == cli.server_options(get_settings(), reload=True)
    assert options["reload"] is True
    assert options["factory"] is True
    assert options["port"] == 8123
    assert options["host"] == "127.0.0.1"
    assert options["log_config"] is None


def test_serve_runs_workers(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("DATABASE__URL", database_url)
    monkeypatch.setenv("SERVER__WORKERS", "3")
    served = record_calls(monkeypatch, uvicorn, "run")
    cli.main(["serve"])
    [(target, options)] = served
    assert target == cli.APP_FACTORY
    assert options == cli.server_options(get_settings(), reload=False)
    assert options["workers"] == 3
    assert options["reload"] is False


def test_server_timeouts_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER__KEEP_ALIVE_TIMEOUT_S", "7")
    monkeypatch.setenv("SERVER__GRACEFUL_SHUTDOWN_TIMEOUT_S", "12")
    for reload in (True, False):
        options = cli.server_options(get_settings(), reload=reload)
        assert options["timeout_keep_alive"] == 7
        assert options["timeout_graceful_shutdown"] == 12


@pytest.mark.parametrize("reload", [True, False])
def test_uvicorn_never_reads_forwarded_headers_itself(
    monkeypatch: pytest.MonkeyPatch, reload: bool
) -> None:
    # Even with proxies configured, Roombook's middleware alone decides what to believe.
    monkeypatch.setenv("HTTP__TRUSTED_PROXIES", '["10.0.0.0/8"]')
    assert cli.server_options(get_settings(), reload=reload)["proxy_headers"] is False


def test_db_start_leaves_a_configured_server_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(devdb, "embedded_server_url", fail_if_called)
    monkeypatch.setenv("DATABASE__URL", "postgresql://postgres:pw@/roombook?host=/tmp")
    cli.main(["db-start"])
    out = capsys.readouterr().out
    assert "nothing embedded started" in out
    assert "pw" not in out


def test_db_start_reports_the_embedded_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE__URL", raising=False)
    monkeypatch.setattr(cli, "provide_database", lambda *, keep_running: "postgresql://app@e/db")
    monkeypatch.setenv("DATABASE__MIGRATION_URL", "postgresql://owner@e/db")
    cli.main(["db-start"])
    assert (
        "embedded PostgreSQL running: DATABASE__URL=postgresql://app@e/db "
        "DATABASE__MIGRATION_URL=postgresql://owner@e/db"
    ) in capsys.readouterr().out


def test_cli_refuses_unsafe_production_settings_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECURITY__JWT_SECRET", "short-secret-value")
    with pytest.raises(SystemExit) as exited:
        cli.main(["migrate"])
    message = str(exited.value.code)
    assert message.startswith("roombook: refusing to start:")
    assert "shorter than 32 bytes" in message
    assert "short-secret-value" not in message


def fail_if_called(**_: object) -> str:
    """Stand-in for code a test expects not to run."""
    raise AssertionError("the embedded server must not start")


def test_db_stop_when_nothing_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(devdb, "DATA_DIR", tmp_path / "postgres")
    with caplog.at_level(logging.INFO, logger="roombook.devdb"):
        devdb.stop_embedded_server()
    assert "embedded PostgreSQL is not running" in caplog.text


def test_db_stop_reports_a_failed_stop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "postgres"
    data.mkdir()
    (data / "postmaster.pid").write_text("not a pid\n")
    monkeypatch.setattr(devdb, "DATA_DIR", data)
    with caplog.at_level(logging.WARNING, logger="roombook.devdb"):
        cli.cmd_db_stop(argparse.Namespace())
    assert "pg_ctl could not stop the embedded server" in caplog.text


def test_the_served_app_freezes_its_start_up_objects_and_collects_young_ones_less_often(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("DATABASE__URL", database_url)
    monkeypatch.setenv("SERVER__GC_YOUNG_THRESHOLD", "12345")
    module, name = cli.APP_FACTORY.split(":")
    factory = getattr(importlib.import_module(module), name)
    thresholds = gc.get_threshold()
    try:
        app = factory()
        assert isinstance(app, FastAPI)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (12345, *thresholds[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)

"""`python -m app.cli audit-verify` (behind `make audit-verify`) on committed data."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.actions import AuditAction, AuditEntity
from app.audit.commands import verify_chain
from app.audit.service import AuditService
from app.cli import main
from app.core.config import get_settings
from tests.audit.conftest import KEYS, events_by_seq
from tests.conftest import make_settings, truncate_all
from tests.database import create_test_database, drop_later


@pytest.fixture
async def committed_chain(app: FastAPI) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Three committed entries; every table is emptied afterwards."""
    factory = async_sessionmaker(app.state.engine, expire_on_commit=False)
    for number in range(3):
        async with factory() as session, session.begin():
            await AuditService(session, keys=KEYS).record(
                action=AuditAction.ROOM_CREATED,
                entity_type=AuditEntity.ROOM,
                entity_id=f"cli-{number}",
            )
    yield factory
    await truncate_all(app.state.engine)


async def _run(argv: list[str]) -> int:
    try:
        await asyncio.to_thread(main, argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


async def _run_cli() -> int:
    return await _run(["audit-verify"])


@pytest.mark.usefixtures("cli_database")
async def test_cli_reports_ok_then_the_first_broken_entry(
    committed_chain: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await _run_cli() == 0
    assert capsys.readouterr().out.endswith("ok: 3 entries verified\n")

    async with committed_chain() as session, session.begin():
        target = (await events_by_seq(session))[1]
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        await session.execute(
            text("UPDATE audit_events SET entity_id = 'forged' WHERE id = :id"), {"id": target.id}
        )

    assert await _run_cli() == 1
    assert capsys.readouterr().out.endswith(
        f"broken at seq 2 (id {target.id}) after 1 good entries: "
        "hash does not match the entry's content\n"
    )


async def test_cli_on_a_database_without_audit_tables_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server, url = await create_test_database()
    monkeypatch.setenv("DATABASE__URL", url)
    get_settings.cache_clear()
    try:
        code = await _run_cli()
    finally:
        get_settings.cache_clear()
        drop_later(server, url)

    assert code == 2
    assert capsys.readouterr().err.endswith(
        "no audit tables in this database: run `make migrate` first\n"
    )


async def test_other_database_errors_are_not_mistaken_for_missing_tables(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(_: AuditService, **__: object) -> None:
        raise ProgrammingError("SELECT …", {}, PermissionError("permission denied"))

    monkeypatch.setattr(AuditService, "verify", refuse)

    with pytest.raises(ProgrammingError, match="permission denied"):
        await verify_chain(make_settings(database_url), url=database_url)


@pytest.mark.usefixtures("cli_database")
async def test_anchor_prints_the_verified_head_and_verify_checks_it(
    committed_chain: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await _run(["audit-anchor"]) == 0
    anchor = capsys.readouterr().out.strip()
    async with committed_chain() as session:
        last = (await events_by_seq(session))[-1]
    wrong = f"{last.seq}:{'0' * 64}"

    assert anchor == f"{last.seq}:{last.hash}"
    assert await _run(["audit-verify", "--anchor", anchor]) == 0
    assert capsys.readouterr().out.endswith("ok: 3 entries verified\n")
    assert await _run(["audit-verify", "--anchor", anchor, "--anchor", wrong]) == 1
    assert capsys.readouterr().out.endswith(
        f"broken at seq {last.seq} (id {last.id}) after 2 good entries: "
        "hash differs from the published anchor\n"
    )
    assert await _run(["audit-verify", "--anchor", "3:not-a-hash"]) == 2
    assert "not an anchor" in capsys.readouterr().err


@pytest.mark.usefixtures("cli_database")
async def test_no_anchor_is_printed_for_a_broken_chain(
    committed_chain: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with committed_chain() as session, session.begin():
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        await session.execute(text("UPDATE audit_events SET entity_id = 'forged' WHERE seq = 1"))

    assert await _run(["audit-anchor"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no anchor: broken at seq 1" in captured.err

"""Concurrent updates with real commits: one ETag, one winner; the last admin survives races.

Each race holds its contenders at a barrier until all of them have read the state they
act on, so the guard under test (the versioned UPDATE, the admin-set lock) is what
decides, every run.
"""

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.users.models import User
from app.users.repository import UserRepository
from app.users.schemas import Role
from tests.auth.conftest import bearer, committed_user, login

USERS = "/api/v1/users"


async def _admin_headers(app: FastAPI, client: AsyncClient, email: str) -> dict[str, str]:
    await committed_user(app, email=email, role=Role.ADMIN)
    response = await login(client, email)
    assert response.status_code == 200
    return bearer(response.json()["access_token"])


async def test_two_updates_with_the_same_etag_exactly_one_wins(
    app: FastAPI, committed_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await _admin_headers(app, committed_client, "root@example.com")
    target = await committed_user(app, email="target@example.com")
    etag = (await committed_client.get(f"{USERS}/{target}", headers=admin)).headers["etag"]
    headers = {**admin, "If-Match": etag}
    all_read = asyncio.Barrier(3)
    update_versioned = UserRepository.update_versioned

    async def update_after_all_read(
        self: UserRepository, *, user_id: uuid.UUID, version: int, values: Mapping[str, Any]
    ) -> User | None:
        # All three passed the early version check; only the UPDATE can pick one now.
        await all_read.wait()
        return await update_versioned(self, user_id=user_id, version=version, values=values)

    monkeypatch.setattr(UserRepository, "update_versioned", update_after_all_read)
    answers = await asyncio.gather(
        *(
            committed_client.patch(f"{USERS}/{target}", json={"full_name": name}, headers=headers)
            for name in ("Winner A", "Winner B", "Winner C")
        )
    )
    monkeypatch.undo()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 412, 412]
    assert [a.json()["code"] for a in answers if a.status_code == 412] == ["stale-version"] * 2
    winner = next(a for a in answers if a.status_code == 200)
    final = await committed_client.get(f"{USERS}/{target}", headers=admin)
    assert final.json()["full_name"] == winner.json()["full_name"]
    assert final.json()["version"] == 2


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    app: FastAPI, committed_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _admin_headers(app, committed_client, "first@example.com")
    second = await _admin_headers(app, committed_client, "second@example.com")
    me_first = (await committed_client.get(f"{USERS}/me", headers=first)).json()
    me_second = (await committed_client.get(f"{USERS}/me", headers=second)).json()
    both_guarded = asyncio.Barrier(2)
    lock_active_admins = UserRepository.lock_active_admins

    async def lock_after_both_guarded(self: UserRepository) -> list[uuid.UUID]:
        # Both callers passed the admin guard and read their target: the admin-set lock
        # alone must now make the second count again and refuse.
        await both_guarded.wait()
        return await lock_active_admins(self)

    monkeypatch.setattr(UserRepository, "lock_active_admins", lock_after_both_guarded)
    answers = await asyncio.gather(
        committed_client.patch(
            f"{USERS}/{me_second['id']}",
            json={"role": "member"},
            headers={**first, "If-Match": f'"{me_second["version"]}"'},
        ),
        committed_client.patch(
            f"{USERS}/{me_first['id']}",
            json={"role": "member"},
            headers={**second, "If-Match": f'"{me_first["version"]}"'},
        ),
    )
    monkeypatch.undo()
    # The second to take the lock finds its target the last active admin.
    assert sorted(a.status_code for a in answers) == [200, 409]
    assert next(a for a in answers if a.status_code == 409).json()["code"] == "last-admin"
    winner = first if answers[0].status_code == 200 else second
    admins = await committed_client.get(
        USERS, params={"role": "admin", "active": "true"}, headers=winner
    )
    assert [admin["id"] for admin in admins.json()["items"]] == [
        me_first["id"] if winner is first else me_second["id"]
    ]

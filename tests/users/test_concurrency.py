"""Concurrent updates with real commits: one ETag, one winner; the last admin survives races."""

import asyncio

from fastapi import FastAPI
from httpx import AsyncClient

from app.users.schemas import Role
from tests.auth.conftest import bearer, committed_user, login

USERS = "/api/v1/users"


async def _admin_headers(app: FastAPI, client: AsyncClient, email: str) -> dict[str, str]:
    await committed_user(app, email=email, role=Role.ADMIN)
    response = await login(client, email)
    assert response.status_code == 200
    return bearer(response.json()["access_token"])


async def test_two_updates_with_the_same_etag_exactly_one_wins(
    app: FastAPI, committed_client: AsyncClient
) -> None:
    admin = await _admin_headers(app, committed_client, "root@example.com")
    target = await committed_user(app, email="target@example.com")
    etag = (await committed_client.get(f"{USERS}/{target}", headers=admin)).headers["etag"]
    headers = {**admin, "If-Match": etag}
    answers = await asyncio.gather(
        *(
            committed_client.patch(f"{USERS}/{target}", json={"full_name": name}, headers=headers)
            for name in ("Winner A", "Winner B", "Winner C")
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 412, 412]
    assert [a.json()["code"] for a in answers if a.status_code == 412] == ["stale-version"] * 2
    winner = next(a for a in answers if a.status_code == 200)
    final = await committed_client.get(f"{USERS}/{target}", headers=admin)
    assert final.json()["full_name"] == winner.json()["full_name"]
    assert final.json()["version"] == 2


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    app: FastAPI, committed_client: AsyncClient
) -> None:
    first = await _admin_headers(app, committed_client, "first@example.com")
    second = await _admin_headers(app, committed_client, "second@example.com")
    me_first = (await committed_client.get(f"{USERS}/me", headers=first)).json()
    me_second = (await committed_client.get(f"{USERS}/me", headers=second)).json()
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
    statuses = sorted(a.status_code for a in answers)
    # The loser is either refused as the last admin (409) or, if the winner's demotion
    # committed first, is no longer an admin at all (403).
    assert statuses[0] == 200
    assert statuses[1] in (403, 409)
    admins = await committed_client.get(
        USERS, params={"role": "admin", "active": "true"}, headers=first
    )
    fallback = await committed_client.get(
        USERS, params={"role": "admin", "active": "true"}, headers=second
    )
    listing = admins if admins.status_code == 200 else fallback
    assert len(listing.json()["items"]) == 1

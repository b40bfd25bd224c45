"""Timing safety: every failed login does the same hash work and answers the same.

Counting the hasher's work instead of measuring durations keeps this deterministic:
equal work per outcome, over many samples, is what makes the durations indistinguishable.
"""

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import LoginThrottle
from app.core.security import PasswordHasher
from tests.auth.conftest import REGISTER, login, without_request_id
from tests.conftest import CreateUser

SAMPLES = 25
WRONG = "definitely not the right passphrase"


class HashSpy:
    """Counts hash and verify calls made through the app's hasher."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.counts: Counter[str] = Counter()
        self._hash = hasher.hash
        self._verify = hasher.verify

    async def hash(self, password: str) -> str:
        """Count, then hash."""
        self.counts["hash"] += 1
        return await self._hash(password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Count, then verify."""
        self.counts["verify"] += 1
        return await self._verify(password_hash, password)

    def take(self) -> dict[str, int]:
        """The counts since the last call, then reset."""
        counts = dict(self.counts)
        self.counts.clear()
        return counts


@pytest.fixture
def spy(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> HashSpy:
    """Count the app hasher's work for the duration of a test."""
    hasher: PasswordHasher = app.state.password_hasher
    counting = HashSpy(hasher)
    monkeypatch.setattr(hasher, "hash", counting.hash)
    monkeypatch.setattr(hasher, "verify", counting.verify)
    return counting


async def test_failed_logins_cost_the_same_hash_work_and_answer_the_same(
    client: AsyncClient,
    create_user: CreateUser,
    db_session: AsyncSession,
    spy: HashSpy,
) -> None:
    await create_user(email="wrong@example.com")
    await create_user(email="inactive@example.com", active=False)
    throttled = await create_user(email="throttled@example.com")
    db_session.add(
        LoginThrottle(
            user_id=throttled,
            scope="login",
            failures=5,
            blocked_until=datetime.now(UTC) + timedelta(hours=1),
        )
    )
    await db_session.flush()
    await login(client, "warm-up@example.com", WRONG)  # the dummy hash is made once
    spy.take()

    cases = {
        "unknown": ("nobody@example.com", WRONG),
        "wrong": ("wrong@example.com", WRONG),
        "inactive": ("inactive@example.com", WRONG),
        "throttled": ("throttled@example.com", WRONG),
    }
    work: dict[str, list[dict[str, int]]] = {name: [] for name in cases}
    bodies: set[str] = set()
    for sample in range(SAMPLES):
        for name, (email, password) in cases.items():
            # Keep the wrong-password account below the slow-down threshold.
            if name == "wrong" and sample % 4 == 3:
                await _reset_failures(db_session)
            response = await login(client, email, password)
            assert response.status_code == 401
            bodies.add(repr(sorted(without_request_id(response.json()).items())))
            work[name].append(spy.take())

    assert len(bodies) == 1
    for name, samples in work.items():
        assert samples == [{"verify": 1}] * SAMPLES, name


async def _reset_failures(session: AsyncSession) -> None:
    await session.execute(
        update(LoginThrottle).where(LoginThrottle.blocked_until.is_(None)).values(failures=0)
    )


async def test_registration_hashes_once_whether_or_not_the_email_is_taken(
    client: AsyncClient, create_user: CreateUser, spy: HashSpy
) -> None:
    await create_user(email="taken@example.com")
    spy.take()
    payload: dict[str, Any] = {"password": "a long enough new passphrase", "full_name": "New"}
    results = []
    for sample in range(SAMPLES):
        free = await client.post(REGISTER, json={**payload, "email": f"free{sample}@example.com"})
        taken = await client.post(REGISTER, json={**payload, "email": "Taken@Example.com"})
        assert (free.status_code, taken.status_code) == (201, 409)
        results.append(spy.take())
    assert results == [{"hash": 2}] * SAMPLES

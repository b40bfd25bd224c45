"""Forged, expired and misused access tokens are all refused with 401 and `WWW-Authenticate`."""

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.auth.conftest import ME, bearer, login
from tests.conftest import TEST_SECRET, AuthHeaders, CreateUser

USERS = "/api/v1/users"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(user_id: uuid.UUID, session_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "sid": str(session_id),
        "role": "admin",
        "iss": "roombook",
        "aud": "roombook-api",
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(header: dict[str, Any], claims: dict[str, Any], key: bytes, digest: str) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), getattr(hashlib, digest)).digest()
    return f"{signing_input}.{_b64(signature)}"


def _hs256(claims: dict[str, Any], **header: Any) -> str:
    return _sign(
        {"alg": "HS256", "typ": "at+jwt", "kid": "k1", **header},
        claims,
        TEST_SECRET.encode(),
        "sha256",
    )


async def _session_of(headers: dict[str, str], app: FastAPI) -> tuple[uuid.UUID, uuid.UUID]:
    claims = app.state.token_codec.decode(headers["Authorization"].removeprefix("Bearer "))
    return uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"])


@pytest.fixture
async def live_ids(
    app: FastAPI, create_user: CreateUser, auth_headers: AuthHeaders
) -> tuple[uuid.UUID, uuid.UUID]:
    """The user and session ids of a live member session, to forge tokens around."""
    headers = await auth_headers(await create_user())
    return await _session_of(headers, app)


async def assert_rejected(client: AsyncClient, token: str) -> None:
    response = await client.get(ME, headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not-authenticated"


async def test_a_correctly_signed_token_of_a_live_session_is_accepted(
    client: AsyncClient, live_ids: tuple[uuid.UUID, uuid.UUID]
) -> None:
    response = await client.get(ME, headers=bearer(_hs256(_claims(*live_ids))))
    assert response.status_code == 200
    assert response.json()["id"] == str(live_ids[0])


async def test_the_role_comes_from_the_database_not_the_claim(
    app: FastAPI, client: AsyncClient, live_ids: tuple[uuid.UUID, uuid.UUID]
) -> None:
    token = _hs256(_claims(*live_ids, role="admin"))
    assert app.state.token_codec.decode(token)["role"] == "admin"

    response = await client.get(USERS, headers=bearer(token))

    # The member's correctly signed token says admin; the guard reads the role from the
    # database and refuses the admin-only route.
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "role-forbidden"


async def test_alg_none_is_rejected(
    client: AsyncClient, live_ids: tuple[uuid.UUID, uuid.UUID]
) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": "k1"}).encode())
    payload = _b64(json.dumps(_claims(*live_ids)).encode())
    await assert_rejected(client, f"{header}.{payload}.")


@pytest.mark.parametrize(("alg", "digest"), [("RS256", "sha256"), ("HS512", "sha512")])
async def test_other_algorithms_are_rejected_even_when_keyed_with_the_secret(
    client: AsyncClient, live_ids: tuple[uuid.UUID, uuid.UUID], alg: str, digest: str
) -> None:
    # HS/RS confusion: a token naming an asymmetric algorithm but HMAC-signed with a
    # key the attacker knows must never reach a verifier that would accept it.
    token = _sign(
        {"alg": alg, "typ": "at+jwt", "kid": "k1"},
        _claims(*live_ids),
        TEST_SECRET.encode(),
        digest,
    )
    await assert_rejected(client, token)


async def test_embedded_key_header_is_rejected(
    client: AsyncClient, live_ids: tuple[uuid.UUID, uuid.UUID]
) -> None:
    token = _hs256(_claims(*live_ids), jwk={"kty": "oct", "k": _b64(b"attacker")})
    await assert_rejected(client, token)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(
            {"exp": int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())}, id="expired"
        ),
        pytest.param(
            {"nbf": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())}, id="not-yet-valid"
        ),
        pytest.param({"aud": "someone-else"}, id="wrong-audience"),
        pytest.param({"iss": "evil"}, id="wrong-issuer"),
        pytest.param({"jti": None}, id="missing-jti"),
        pytest.param({"sid": None}, id="missing-session"),
        pytest.param({"sid": "not-a-uuid"}, id="malformed-session"),
        pytest.param({"sid": str(uuid.uuid4())}, id="unknown-session"),
        pytest.param({"sub": str(uuid.uuid4())}, id="session-of-someone-else"),
    ],
)
async def test_bad_claims_are_rejected(
    client: AsyncClient, live_ids: tuple[uuid.UUID, uuid.UUID], overrides: dict[str, Any]
) -> None:
    await assert_rejected(client, _hs256(_claims(*live_ids, **overrides)))


async def test_tampered_signature_and_payload_are_rejected(
    client: AsyncClient, live_ids: tuple[uuid.UUID, uuid.UUID]
) -> None:
    token = _hs256(_claims(*live_ids))
    header, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    await assert_rejected(client, f"{header}.{payload}.{flipped}")
    other = _b64(json.dumps(_claims(*live_ids, role="admin", jti="x")).encode())
    await assert_rejected(client, f"{header}.{other}.{signature}")


async def test_wrong_key_and_unknown_key_id_are_rejected(
    client: AsyncClient, live_ids: tuple[uuid.UUID, uuid.UUID]
) -> None:
    forged = jwt.encode(
        _claims(*live_ids),
        "an-attacker-secret-that-is-long-enough-to-use",
        algorithm="HS256",
        headers={"kid": "k1", "typ": "at+jwt"},
    )
    await assert_rejected(client, forged)
    await assert_rejected(client, _hs256(_claims(*live_ids), kid="k9"))


async def test_other_token_types_are_rejected(
    client: AsyncClient, live_ids: tuple[uuid.UUID, uuid.UUID]
) -> None:
    await assert_rejected(client, _hs256(_claims(*live_ids), typ="refresh+jwt"))
    await assert_rejected(client, _hs256(_claims(*live_ids), typ="JWT"))


async def test_refresh_token_used_as_access_token_is_rejected(
    client: AsyncClient, create_user: CreateUser
) -> None:
    email = "refresh-as-access@example.com"
    await create_user(email=email)
    tokens = (await login(client, email)).json()
    assert tokens["refresh_token"]
    await assert_rejected(client, tokens["refresh_token"])
    assert (await client.get(ME, headers=bearer(tokens["access_token"]))).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer"}, id="empty-bearer"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic"),
        pytest.param({"Authorization": "Bearer not.a.jwt"}, id="garbage"),
    ],
)
async def test_missing_or_malformed_credentials_are_rejected(
    client: AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "not-authenticated"


async def test_deactivated_users_still_valid_token_is_rejected(
    client: AsyncClient,
    create_user: CreateUser,
    auth_headers: AuthHeaders,
    admin_headers: dict[str, str],
) -> None:
    user_id = await create_user()
    headers = await auth_headers(user_id)
    assert (await client.get(ME, headers=headers)).status_code == 200
    deactivated = await client.delete(
        f"/api/v1/users/{user_id}", headers={**admin_headers, "If-Match": '"1"'}
    )
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["is_active"] is False
    response = await client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "not-authenticated"

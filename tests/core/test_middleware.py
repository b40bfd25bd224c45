"""The HTTP edge: request ids, security headers, docs CSP, CORS, trusted hosts, client address."""

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from httpx import AsyncClient
from pydantic import SecretStr, ValidationError
from starlette.types import Message, Scope

from app.core.config import HttpSettings, SecuritySettings, Settings
from app.core.context import current_context
from app.core.errors import PayloadTooLarge
from app.core.middleware import (
    DOCS_CSP,
    ProxyTrust,
    _no_receive,
    host_name,
    send_problem,
)
from app.factory import create_app
from tests.conftest import make_settings
from tests.core.support import assert_problem, client_for, serve

APP_ORIGIN = "https://app.roombook.dev"
PRODUCTION_SECRET = "a-production-signing-secret-that-is-long-enough"
CORS_HEADERS = re.compile(r"^access-control-", re.I)


def add_routes(app: FastAPI) -> None:
    """Routes that show the request context and fail on purpose."""

    @app.get("/context")
    async def context(request: Request) -> dict[str, str | None]:
        seen = current_context()
        return {
            "request_id": seen.request_id,
            "client_ip": seen.client_ip,
            "user_agent": seen.user_agent,
            "url": str(request.url),
        }

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")


@pytest.fixture(scope="module")
async def client(database_url: str) -> AsyncIterator[AsyncClient]:
    """A client of a test-environment app with explicit CORS origins."""
    app = create_app(make_settings(database_url, http=HttpSettings(cors_origins=[APP_ORIGIN])))
    add_routes(app)
    async with serve(app) as client:
        yield client


def production_settings(database_url: str, **http: Any) -> Settings:
    """Settings that pass the production checks."""
    return make_settings(
        database_url,
        environment="production",
        security=SecuritySettings(jwt_secret=SecretStr(PRODUCTION_SECRET)),
        # Production refuses a wildcard Host; the test client is `testserver`.
        http=HttpSettings(**({"allowed_hosts": ["testserver"]} | http)),
    )


async def test_valid_request_id_is_kept_and_echoed(client: AsyncClient) -> None:
    response = await client.get("/context", headers={"X-Request-ID": "edge-7f3a:01.x_y"})
    assert response.headers["x-request-id"] == "edge-7f3a:01.x_y"
    assert response.json()["request_id"] == "edge-7f3a:01.x_y"


@pytest.mark.parametrize(
    "offered",
    ["has spaces", "x" * 129, "semi;colon", "<script>", "new\nline", ""],
    ids=["spaces", "too-long", "semicolon", "markup", "newline", "empty"],
)
async def test_invalid_request_id_is_replaced(client: AsyncClient, offered: str) -> None:
    headers = {"X-Request-ID": offered} if "\n" not in offered else {}
    response = await client.get("/context", headers=headers)
    generated = response.headers["x-request-id"]
    assert generated != offered
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert response.json()["request_id"] == generated


async def test_longest_valid_request_id_is_kept(client: AsyncClient) -> None:
    response = await client.get("/context", headers={"X-Request-ID": "a" * 128})
    assert response.headers["x-request-id"] == "a" * 128


async def test_request_ids_differ_between_requests(client: AsyncClient) -> None:
    first = await client.get("/health/live")
    second = await client.get("/health/live")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert first.json() == second.json() == {"status": "ok"}


async def test_request_context_has_client_and_user_agent(client: AsyncClient) -> None:
    response = await client.get("/context", headers={"User-Agent": "probe/1.0"})
    assert response.json()["client_ip"] == "127.0.0.1"
    assert response.json()["user_agent"] == "probe/1.0"


def assert_security_headers(
    headers: Any, *, csp: str = "default-src 'none'; frame-ancestors 'none'"
) -> None:
    """The headers every response carries."""
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["content-security-policy"] == csp


async def test_security_headers_on_success_not_found_and_crash(client: AsyncClient) -> None:
    ok = await client.get("/health/live")
    missing = await client.get("/missing")
    crashed = await client.get("/crash", headers={"X-Request-ID": "crash-1"})
    assert ok.json() == {"status": "ok"}
    assert_problem(missing, status=404, code="not-found", instance="/missing")
    assert_problem(
        crashed, status=500, code="internal-error", instance="/crash", request_id="crash-1"
    )
    for response in (ok, missing, crashed):
        assert_security_headers(response.headers)
        assert "strict-transport-security" not in response.headers
    assert crashed.headers["x-request-id"] == "crash-1"


async def test_hsts_only_in_production(database_url: str) -> None:
    app = create_app(production_settings(database_url))
    add_routes(app)
    async with serve(app) as client:
        ok = await client.get("/health/live")
        crashed = await client.get("/crash")
    assert ok.json() == {"status": "ok"}
    assert_problem(crashed, status=500, code="internal-error", instance="/crash")
    for response in (ok, crashed):
        assert (
            response.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
        )
        assert_security_headers(response.headers)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_work_offline_under_their_csp(client: AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_security_headers(response.headers, csp=DOCS_CSP)
    html = response.text
    assert "openapi.json" in html
    assert "cdn" not in html.lower()
    assert "http://" not in html
    assert "https://" not in html
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls
    for url in urls:
        assert url.startswith("/static-offline-docs/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content
        assert_security_headers(asset.headers, csp=DOCS_CSP)
    # The CSP lets the page run its own inline start-up script and same-origin assets only.
    assert "script-src 'self' 'unsafe-inline'" in DOCS_CSP
    assert "https:" not in DOCS_CSP


async def test_swagger_oauth2_redirect_page(client: AsyncClient) -> None:
    response = await client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "oauth2" in response.text.lower()
    assert response.headers["content-security-policy"] == DOCS_CSP


async def test_cors_allows_the_configured_origin_with_credentials(client: AsyncClient) -> None:
    response = await client.get("/health/live", headers={"Origin": APP_ORIGIN})
    assert response.json() == {"status": "ok"}
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]


async def test_cors_preflight_for_the_configured_origin(client: AsyncClient) -> None:
    response = await client.options(
        "/health/live",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.status_code == 200
    assert response.text == "OK"
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]


@pytest.mark.parametrize(
    "origin", ["null", "https://evil.example", "https://app.roombook.dev.evil"]
)
async def test_foreign_and_null_origins_get_no_cors_headers(
    client: AsyncClient, origin: str
) -> None:
    simple = await client.get("/health/live", headers={"Origin": origin})
    preflight = await client.options(
        "/health/live",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert simple.json() == {"status": "ok"}
    assert [h for h in simple.headers if CORS_HEADERS.match(h)] == []
    assert [h for h in preflight.headers if CORS_HEADERS.match(h)] == []
    # The preflight is not answered by CORS at all: the route has no OPTIONS.
    assert_problem(preflight, status=405, code="method-not-allowed", instance="/health/live")


async def test_no_cors_without_configured_origins(host_checked: FastAPI) -> None:
    async with client_for(host_checked, base_url="http://api.roombook.dev") as client:
        response = await client.get("/health/live", headers={"Origin": APP_ORIGIN})
    assert response.json() == {"status": "ok"}
    assert [h for h in response.headers if CORS_HEADERS.match(h)] == []


async def test_wildcard_origins_never_allow_credentials(database_url: str) -> None:
    settings = make_settings(database_url, http=HttpSettings(cors_origins=["*"]))
    async with serve(create_app(settings)) as client:
        response = await client.get("/health/live", headers={"Origin": "https://any.example"})
    assert response.json() == {"status": "ok"}
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


@pytest.fixture(scope="module")
async def host_checked(database_url: str) -> AsyncIterator[FastAPI]:
    """An app serving only api.roombook.dev and its subdomains, behind a proxy on 127.0.0.1."""
    settings = make_settings(
        database_url,
        http=HttpSettings(
            allowed_hosts=["API.roombook.dev", "*.internal.roombook.dev"],
            trusted_proxies=["127.0.0.1"],
        ),
    )
    app = create_app(settings)
    add_routes(app)
    async with serve(app):
        yield app


@pytest.mark.parametrize(
    "host", ["api.roombook.dev", "api.roombook.dev:8443", "web.internal.roombook.dev"]
)
async def test_trusted_host_accepts_allowed_hosts(host_checked: FastAPI, host: str) -> None:
    async with client_for(host_checked, base_url=f"http://{host}") as client:
        response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("host", ["evil.example", "roombook.dev", "internal.roombook.dev"])
async def test_trusted_host_rejects_other_hosts(host_checked: FastAPI, host: str) -> None:
    async with client_for(host_checked, base_url=f"http://{host}") as client:
        response = await client.get("/context", headers={"X-Request-ID": "host-1"})
    assert_problem(
        response,
        status=400,
        code="bad-request",
        instance="/context",
        detail="Invalid host header.",
        request_id="host-1",
    )
    assert_security_headers(response.headers)


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
async def test_probes_answer_whatever_the_host(host_checked: FastAPI, path: str) -> None:
    # The image's HEALTHCHECK and load balancers call http://<ip>:8000/health/...
    async with client_for(host_checked, base_url="http://10.1.2.3:8000") as client:
        response = await client.get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("API.roombook.dev:8443", "api.roombook.dev"),
        ("[::1]:8000", "[::1]"),
        ("[::1]", "[::1]"),
        ("[broken", "[broken"),
        ("", ""),
    ],
)
def test_host_name_strips_the_port_but_keeps_ipv6_brackets(header: str, expected: str) -> None:
    assert host_name(header) == expected


def scope_from(
    peer: str | None, forwarded: str | None = None, proto: str | None = None
) -> dict[str, Any]:
    """A minimal HTTP scope from a peer address and X-Forwarded-For/-Proto headers."""
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto.encode()))
    return {
        "type": "http",
        "scheme": "http",
        "client": (peer, 50000) if peer else None,
        "headers": headers,
    }


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.9", None, [], "203.0.113.9"),
        # Anyone can write the header: an untrusted peer's claim is ignored.
        ("203.0.113.9", "198.51.100.1", [], "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", ["10.0.0.0/8"], "203.0.113.9"),
        ("10.0.0.5", "198.51.100.1", ["10.0.0.0/8"], "198.51.100.1"),
        # The rightmost untrusted hop is the client; earlier hops are the client's own claims.
        ("10.0.0.5", "1.1.1.1, 198.51.100.1, 10.0.0.7", ["10.0.0.0/8"], "198.51.100.1"),
        ("10.0.0.5", "10.0.0.8, 10.0.0.7", ["10.0.0.0/8"], "10.0.0.8"),
        ("10.0.0.5", None, ["10.0.0.5"], "10.0.0.5"),
        ("10.0.0.5", " , ", ["10.0.0.5"], "10.0.0.5"),
        (None, "198.51.100.1", ["10.0.0.0/8"], None),
        ("not-an-ip", "198.51.100.1", ["10.0.0.0/8"], "not-an-ip"),
        ("::1", "2001:db8::1", ["::1"], "2001:db8::1"),
    ],
)
def test_client_ip(
    peer: str | None, forwarded: str | None, trusted: list[str], expected: str | None
) -> None:
    assert ProxyTrust(trusted).client_ip(scope_from(peer, forwarded)) == expected


@pytest.mark.parametrize(
    ("peer", "proto", "trusted", "expected"),
    [
        ("10.0.0.5", "https", ["10.0.0.0/8"], "https"),
        ("10.0.0.5", "http, HTTPS", ["10.0.0.0/8"], "https"),
        ("10.0.0.5", None, ["10.0.0.0/8"], "http"),
        ("10.0.0.5", "gopher", ["10.0.0.0/8"], "http"),
        # An untrusted peer, loopback included, cannot claim https.
        ("127.0.0.1", "https", [], "http"),
        ("203.0.113.9", "https", ["10.0.0.0/8"], "http"),
        (None, "https", ["10.0.0.0/8"], "http"),
    ],
)
def test_forwarded_scheme(
    peer: str | None, proto: str | None, trusted: list[str], expected: str
) -> None:
    assert ProxyTrust(trusted).scheme(scope_from(peer, proto=proto)) == expected


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(ValidationError, match="trusted_proxies"):
        HttpSettings(trusted_proxies=["proxy.internal"])


async def test_forwarded_for_is_believed_from_a_trusted_proxy(host_checked: FastAPI) -> None:
    async with client_for(host_checked, base_url="http://api.roombook.dev") as client:
        response = await client.get("/context", headers={"X-Forwarded-For": "198.51.100.23"})
    assert response.json()["client_ip"] == "198.51.100.23"


async def test_forwarded_proto_from_a_trusted_proxy_makes_the_url_https(
    host_checked: FastAPI,
) -> None:
    async with client_for(host_checked, base_url="http://api.roombook.dev") as client:
        response = await client.get("/context", headers={"X-Forwarded-Proto": "https"})
    assert response.json()["url"] == "https://api.roombook.dev/context"


async def test_forwarded_headers_are_ignored_from_other_peers(client: AsyncClient) -> None:
    response = await client.get(
        "/context", headers={"X-Forwarded-For": "198.51.100.23", "X-Forwarded-Proto": "https"}
    )
    assert response.json()["client_ip"] == "127.0.0.1"
    assert response.json()["url"] == "http://testserver/context"


async def test_problems_sent_from_middleware_never_read_the_body() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "path": "/x", "headers": [], "state": {"request_id": "r-1"}}
    await send_problem(scope, send, PayloadTooLarge("Too big."))
    start, body = sent
    assert start["status"] == 413
    assert json.loads(body["body"])["request_id"] == "r-1"
    assert await _no_receive() == {"type": "http.disconnect"}

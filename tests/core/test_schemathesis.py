"""Schemathesis over every operation, as each role: no 5xx, and every answer as documented.

The app runs in-process on a database of its own (the fuzzer commits). `make test` runs a
short derandomized pass; `make fuzz` sets `FUZZ_EXAMPLES` for a long one.
"""

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, settings
from pydantic import BaseModel, SecretStr
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import CoveragePhaseData
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from app.core.config import AuthSettings
from app.factory import create_app
from tests.conftest import make_settings
from tests.database import create_test_database, drop_later

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
"""Generated examples per operation (each sent as every role); `make fuzz` sets it.

Unset, the short run of `make test`: a few examples and no coverage phase. Set, the long
run adds Schemathesis' coverage phase (boundary and negative values of every parameter)."""
LONG_RUN = FUZZ_EXAMPLES > 0
API = "/api/v1"
EMAILS = {
    "member": "fuzz-member@example.org",
    "manager": "fuzz-manager@example.org",
    "admin": "fuzz-admin@example.org",
}
PASSWORD = "a sturdy fuzzing passphrase of mine"
ROLES = ("anonymous", "member", "manager", "admin")
DOCUMENT = create_app(make_settings("postgresql://unused@127.0.0.1/unused")).openapi()
"""The document as any app builds it; generation needs no database (nothing connects)."""
STATE_DEPENDENT = ["412", "428"]
"""Answers valid requests may get from the state of the data: a stale or missing `If-Match`."""
CONFIG = schemathesis.Config.from_dict(
    {
        "phases": {"coverage": {"enabled": LONG_RUN}},
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "429", *STATE_DEPENDENT]
            },
        },
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
BEYOND_THE_SCHEMA = frozenset(
    {
        "password_policy",
        "cursor",
        "range",
        "datetime_range",
        "time_range",
        "unknown_room",
        "time_zone",
        "policy_inconsistent",
        "window_too_long",
        "rrule",
        "unknown_exdate",
        "too_many",
        "no_occurrence",
        "occurrence_required",
        "unknown_occurrence",
        "time_pair",
        "int_type",
    }
)
"""422 error types JSON Schema cannot express: the password policy (common, predictable or
email-based passwords), HMAC-signed cursors, `since` before `until`, datetimes outside
1900 to 9000 once in UTC (the descriptions say so), a booking ending before it starts, a
booking of a room that does not exist, a time zone name the zone database does not know,
room policy overrides inconsistent with the defaults, an availability window longer than
`BOOKINGS__AVAILABILITY_MAX_DAYS`, a series' recurrence rule (its grammar, COUNT or UNTIL,
the cap, EXDATEs the rule never yields, an occurrence a scope needs or that is not the
series', a new start time without its end), and a number such as `702.0` for an integer
(JSON Schema counts it as one; the strict request bodies take only `702`). A schema-valid
request refused only for these is still refused rightly."""
STATE_DEPENDENT_422 = frozenset({"idempotency-key-reused", "booking-rules-violated"})
"""422s that follow from the data, not the request's shape: a generated `Idempotency-Key`
the fuzzer already sent with another body, and a booking the room's rules refuse (opening
hours, notice, capacity …)."""
RESERVED_DOMAIN = "special-use or reserved name"
"""Email domains reserved for special use (RFC 6761, such as `.test`) are refused, though the
`email` format of JSON Schema allows them."""
SESSION_ENDING = frozenset(
    {
        "POST /api/v1/auth/logout",
        "POST /api/v1/auth/password",
        "DELETE /api/v1/auth/sessions/{session_id}",
    }
)
"""Operations after whose success the role logs in again (its session may be over)."""


@pytest.fixture(scope="module")
async def fuzz_database(migrated_template: str) -> AsyncIterator[str]:
    """A migrated database only the fuzzed app writes to."""
    server, url = await create_test_database(template=migrated_template)
    yield url
    drop_later(server, url)


@pytest.fixture(scope="module")
def fuzz_app(fuzz_database: str) -> Iterator[FastAPI]:
    """The app under test, with an admin bootstrapped at startup."""
    auth = AuthSettings(
        bootstrap_admin_email=EMAILS["admin"],
        bootstrap_admin_password=SecretStr(PASSWORD),
    )
    yield create_app(make_settings(fuzz_database, auth=auth))
    # Schemathesis runs the lifespan on its own event loop; end it before the database goes.
    asgi.shutdown_lifespans()


class Accounts:
    """One account per role, logged in on demand through the API itself."""

    def __init__(self, app: FastAPI) -> None:
        self.client = asgi.get_client(cast(Any, app))
        self.tokens: dict[str, str] = {}

    def login(self, role: str) -> str:
        response = self.client.post(
            f"{API}/auth/login",
            data={
                "username": EMAILS[role],
                "password": PASSWORD,
                "refresh_token_delivery": "body",
            },
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def create(self) -> None:
        """Sign a member up and have the admin create a manager."""
        registered = self.client.post(
            f"{API}/auth/register",
            json={"email": EMAILS["member"], "password": PASSWORD, "full_name": "Member"},
        )
        assert registered.status_code == 201, registered.text
        created = self.client.post(
            f"{API}/users",
            json={
                "email": EMAILS["manager"],
                "password": PASSWORD,
                "full_name": "Manager",
                "role": "manager",
            },
            headers=self.headers("admin"),
        )
        assert created.status_code == 201, created.text

    def headers(self, role: str) -> dict[str, str]:
        """The role's `Authorization` header (none for anonymous)."""
        if role == "anonymous":
            return {}
        if role not in self.tokens:
            self.tokens[role] = self.login(role)
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def forget(self, role: str) -> None:
        """Log in again next time."""
        self.tokens.pop(role, None)


@pytest.fixture(scope="module")
def accounts(fuzz_app: FastAPI) -> Iterator[Accounts]:
    """The accounts of every role."""
    with asgi.get_client(cast(Any, fuzz_app)):
        registered = Accounts(fuzz_app)
        registered.create()
        yield registered


def test_the_fuzzed_document_is_the_apps(fuzz_app: FastAPI) -> None:
    assert fuzz_app.openapi() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES or 4,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], fuzz_app: FastAPI, accounts: Accounts
) -> None:
    # Every generated request goes out as each role, so every guard is crossed both ways.
    for role in ROLES:
        headers = accounts.headers(role)
        response = case.call(app=fuzz_app, headers=headers)
        assert response.status_code < 500, f"{case.operation.label} as {role}"
        excluded: list[schemathesis.CheckFunction] = []
        if _refused_beyond_the_schema(response):
            excluded.append(positive_data_acceptance)
        if _lists_valid_as_sent(case, response):
            excluded.append(negative_data_rejection)
        case.validate_response(
            response, headers=headers, excluded_checks=excluded, transport_kwargs={"app": fuzz_app}
        )
        if response.status_code < 300 and case.operation.label in SESSION_ENDING:
            accounts.forget(role)


def _refused_beyond_the_schema(response: schemathesis.Response) -> bool:
    if response.status_code != 422:
        return False
    if response.json().get("code") in STATE_DEPENDENT_422:
        return True
    errors = response.json().get("errors") or [{"type": None, "message": ""}]
    return all(
        error["type"] in BEYOND_THE_SCHEMA or RESERVED_DOMAIN in error["message"]
        for error in errors
    )


def _lists_valid_as_sent(case: schemathesis.Case[Any], response: schemathesis.Response) -> bool:
    """Whether every value the negative case broke is a list parameter the server reads, from
    the texts the query carried, as a valid list.

    A query string holds only texts, and a list parameter is its repeated key: the boolean
    `true` generated to break `amenities` goes out as `?amenities=true`, the one-tag list
    `["true"]`. Schemathesis judges the boolean it generated, not the text it sent.
    """
    meta = case.meta
    if meta is None:
        return False
    data = meta.phase.data
    broken: list[tuple[ParameterLocation | None, str | None]] = [
        (mutation.parameter_location, mutation.parameter) for mutation in data.mutations
    ]
    if not broken and isinstance(data, CoveragePhaseData):
        broken = [(data.parameter_location, data.parameter)]
    sent = parse_qs(urlsplit(str(response.request.url)).query, keep_blank_values=True)
    for location, name in broken or [(None, None)]:
        parameter = case.operation.query.get(name) if location == ParameterLocation.QUERY else None
        if parameter is None or not _is_list(parameter.validation_schema):
            return False
        if name not in sent or not parameter.get_validator().is_valid(sent[name]):
            return False
    return True


def _is_list(schema: Any) -> bool:
    """Whether a parameter's schema is an array, alone or as a choice beside `null`."""
    choices = schema.get("anyOf", [schema]) if isinstance(schema, dict) else []
    return any(choice.get("type") == "array" for choice in choices)


class Counted(BaseModel):
    """What the lying route documents."""

    count: int


def test_the_checks_catch_a_server_error_and_an_undocumented_answer() -> None:
    broken = FastAPI()

    @broken.get("/boom")
    async def boom() -> JSONResponse:
        return JSONResponse({"detail": "unexpected"}, status_code=500)

    @broken.get("/liar", response_model=Counted)
    async def liar() -> JSONResponse:
        return JSONResponse({"count": "many"})

    loaded = schemathesis.openapi.from_asgi("/openapi.json", broken)
    for path, failure in [("/boom", "Server error"), ("/liar", "Response violates schema")]:
        case = loaded[path]["GET"].Case()
        with pytest.raises(FailureGroup, match=failure):
            case.call_and_validate()

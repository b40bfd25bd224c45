"""The guards every router uses: who is calling, and may their role do this."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request, Response
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.dependencies import audit_service_for
from app.auth.passwords import PasswordService, build_password_service
from app.auth.ratelimit import RateLimiter
from app.auth.service import (
    AuthService,
    PasswordCheckService,
    SessionService,
    build_auth_service,
    build_password_check_service,
    build_session_service,
)
from app.core.config import Settings
from app.core.context import bind_actor, current_context
from app.core.db import SessionDep, shared_in_unit_of_work
from app.core.errors import AppError, Forbidden, Unauthorized
from app.core.idempotency import Idempotency, IdempotencyKey
from app.core.security import InvalidToken
from app.core.security_events import SecurityReason, security_event
from app.core.types import SingleLine
from app.core.verified_tokens import VerifiedTokens
from app.users.schemas import Role, UserRead
from app.users.service import build_user_service

LOGIN_PATH = "/api/v1/auth/login"
MAX_TICKET_LENGTH = 64
"""Longer than any ticket issued (43 characters): anything beyond is refused unread."""


bearer_scheme = OAuth2PasswordBearer(
    tokenUrl=LOGIN_PATH,
    auto_error=False,
    description=(
        "Access token from `POST /auth/login` or `POST /auth/refresh`. The password flow "
        "is Roombook's first-party login only (RFC 9700 deprecates it for third parties)."
    ),
)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: user, current role, and the session the token belongs to."""

    id: uuid.UUID
    role: Role
    session_id: uuid.UUID
    account: UserRead
    """The caller's account as the guard's query read it in this request's transaction."""


class NotAuthenticated(Unauthorized):
    """No valid access token came with the request."""

    code = "not-authenticated"
    title = "Not authenticated"


class RoleForbidden(Forbidden):
    """The caller's role may not use this endpoint."""

    code = "role-forbidden"
    title = "Forbidden for your role"


class CrossSiteRequest(Forbidden):
    """A browser sent an auth call from an origin that is not allowed."""

    code = "cross-site-request"
    title = "Cross-site request refused"


def _claim_ids(claims: dict[str, object]) -> tuple[uuid.UUID, uuid.UUID]:
    try:
        return uuid.UUID(str(claims["sub"])), uuid.UUID(str(claims["sid"]))
    except (KeyError, ValueError) as exc:
        raise InvalidToken("subject or session id missing or malformed") from exc


def password_service_for(request: Request) -> PasswordService:
    """The password policy and hasher of this app."""
    return build_password_service(
        hasher=request.app.state.password_hasher, settings=request.app.state.settings
    )


def session_service_for(request: Request, session: AsyncSession) -> SessionService:
    """The unit of work's one SessionService, on its one audit service."""
    return shared_in_unit_of_work(
        session,
        SessionService,
        lambda: build_session_service(
            session, audit=audit_service_for(request, session), settings=request.app.state.settings
        ),
    )


def password_check_service_for(request: Request, session: AsyncSession) -> PasswordCheckService:
    """The unit of work's current-password checks, on its one audit service."""
    return shared_in_unit_of_work(
        session,
        PasswordCheckService,
        lambda: build_password_check_service(
            session,
            audit=audit_service_for(request, session),
            passwords=password_service_for(request),
            settings=request.app.state.settings,
        ),
    )


async def get_session_service(request: Request, session: SessionDep) -> SessionService:
    """The request's one SessionService."""
    return session_service_for(request, session)


SessionServiceDep = Annotated[SessionService, Depends(get_session_service)]


async def get_current_user(
    request: Request,
    session: SessionDep,
    token: Annotated[str | None, Depends(bearer_scheme)],
) -> Principal:
    """Verify the access token, then check user and session in one query; 401 otherwise.

    The database check is what makes logout, session revocation and deactivation take
    effect at once instead of when the token expires.
    """
    if not token:
        raise NotAuthenticated("Log in and send the access token as a Bearer token.")
    # The signature is checked once per token; the session below is checked every time.
    tokens: VerifiedTokens = request.app.state.verified_tokens
    try:
        claims = tokens.decode(token)
        user_id, session_id = _claim_ids(claims)
    except InvalidToken as exc:
        security_event(SecurityReason.TOKEN_REJECTED, problem=str(exc))
        raise NotAuthenticated("The access token is invalid or expired.") from exc
    sessions = session_service_for(request, session)
    account = await sessions.caller(user_id=user_id, session_id=session_id)
    if account is None:
        security_event(
            SecurityReason.TOKEN_REJECTED, problem="session_over", session_id=str(session_id)
        )
        raise NotAuthenticated("The session has ended; log in again.")
    principal = Principal(id=account.id, role=account.role, session_id=session_id, account=account)
    bind_actor(actor_id=principal.id, actor_role=principal.role.value)
    return principal


CurrentUser = Annotated[Principal, Depends(get_current_user)]


class StreamTicketRefused(Unauthorized):
    """The event-stream ticket is unknown, used, expired, or its session has ended."""

    code = "stream-ticket-refused"
    title = "Stream ticket refused"


StreamTicket = Annotated[
    SingleLine,
    Query(
        min_length=1,
        max_length=MAX_TICKET_LENGTH,
        description="A single-use ticket from `POST /bookings/events/ticket`.",
    ),
]


async def get_stream_caller(sessions: SessionServiceDep, ticket: StreamTicket) -> Principal:
    """The caller a single-use stream ticket names, using it up; 401 otherwise.

    For `EventSource`, which cannot send an `Authorization` header: the ticket stands in
    for the access token in the URL, and it is worth nothing once used or 30 s old.
    """
    holder = await sessions.redeem_stream_ticket(ticket=ticket)
    if holder is None:
        security_event(SecurityReason.TOKEN_REJECTED, problem="stream_ticket")
        raise StreamTicketRefused("The ticket is unknown, used or expired; ask for a new one.")
    account = holder.account
    principal = Principal(
        id=account.id, role=account.role, session_id=holder.session_id, account=account
    )
    bind_actor(actor_id=principal.id, actor_role=principal.role.value)
    return principal


StreamCaller = Annotated[Principal, Depends(get_stream_caller)]
"""The holder of the request's `?ticket=`, for the event stream only."""


@dataclass(frozen=True)
class RoleGuard:
    """Admit only callers whose current role is one of `roles`; the route walk reads them."""

    roles: frozenset[Role]

    async def __call__(self, principal: CurrentUser) -> Principal:
        """Return the caller, or raise 403 for any other role."""
        if principal.role not in self.roles:
            security_event(SecurityReason.ROLE_FORBIDDEN, role=principal.role.value)
            raise RoleForbidden("Your role may not do this.")
        return principal


def require_role(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting only callers with one of `roles` (403 problem otherwise)."""
    return RoleGuard(frozenset(roles))


MANAGER_ROLES = frozenset({Role.MANAGER, Role.ADMIN})
"""The roles that run rooms and every booking."""
AdminUser = Annotated[Principal, Depends(require_role(Role.ADMIN))]
ManagerUser = Annotated[Principal, Depends(require_role(*MANAGER_ROLES))]


async def get_idempotency(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: CurrentUser,
    key: IdempotencyKey = None,
) -> Idempotency:
    """The request's `Idempotency-Key`, scoped to the caller: replayed, refused, or held.

    Keys belong to signed-in callers only. Anonymous endpoints do not take one: scoped
    per IP, a key would be shared by everyone behind one NAT and lost when a phone changes
    networks (sign-up, the one anonymous POST that changes data, is safe to retry anyway:
    the retry answers 409 `email-taken`).
    """
    settings: Settings = request.app.state.settings
    return await Idempotency.begin(
        session=session,
        request=request,
        response=response,
        caller_id=principal.id,
        key=key,
        ttl_s=settings.http.idempotency_ttl_s,
    )


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
"""Opt-in for a POST: list it after the route's guard and return `idempotency.respond(...)`."""


async def get_auth_service(request: Request, session: SessionDep) -> AuthService:
    """The request's AuthService; every service in it shares one audit and session service."""
    audit = audit_service_for(request, session)
    sessions = session_service_for(request, session)
    passwords = password_service_for(request)
    password_checks = password_check_service_for(request, session)
    users = build_user_service(
        session,
        audit=audit,
        passwords=passwords,
        sessions=sessions,
        password_checks=password_checks,
    )
    return build_auth_service(
        session,
        audit=audit,
        sessions=sessions,
        users=users,
        passwords=passwords,
        password_checks=password_checks,
        codec=request.app.state.token_codec,
        settings=request.app.state.settings,
    )


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


async def check_origin(request: Request) -> None:
    """Refuse browser calls from origins outside the CORS allow-list (or this API itself).

    The refresh cookie is SameSite=Strict already; this is the second lock on the door
    against cross-site request forgery. Clients that send no `Origin` are not browsers.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return
    settings: Settings = request.app.state.settings
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin != own and origin not in settings.http.cors_origins:
        security_event(SecurityReason.CROSS_SITE_REFUSED, origin=origin[:100])
        raise CrossSiteRequest(f"Requests from {origin[:100]} are not allowed.")


def client_key() -> str:
    """The rate-limit key of the caller: its IP (callers without one share a budget)."""
    return current_context().client_ip or "unknown"


async def _spend(request: Request, response: Response, *, credentials: bool) -> dict[str, str]:
    limiter: RateLimiter = request.app.state.rate_limiter
    policy = limiter.credentials if credentials else limiter.auth
    budget = await limiter.hit(policy=policy, client=client_key())
    headers = budget.headers() if budget is not None else {}
    response.headers.update(headers)
    return headers


def _show_budget(error: AppError, headers: dict[str, str]) -> None:
    # Failures (a 401 from login above all) show the budget too; a 429 of a stricter
    # budget keeps its own numbers.
    error.headers = {**headers, **error.headers}


async def limit_auth(request: Request, response: Response) -> AsyncIterator[None]:
    """Spend one unit of the client IP's budget for `/auth/*`; every answer shows what is left."""
    headers = await _spend(request, response, credentials=False)
    try:
        yield
    except AppError as error:
        _show_budget(error, headers)
        raise


async def limit_credentials(request: Request, response: Response) -> AsyncIterator[None]:
    """Spend one unit of the client IP's stricter budget for password-checking calls."""
    headers = await _spend(request, response, credentials=True)
    try:
        yield
    except AppError as error:
        _show_budget(error, headers)
        raise

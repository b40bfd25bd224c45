"""`/auth`: register, first-party login, refresh, logout, sessions, password change."""

import uuid
from typing import Annotated

from fastapi import Depends, Form, Request, Response, status

from app.auth.dependencies import (
    AuthServiceDep,
    CurrentUser,
    SessionServiceDep,
    check_origin,
    limit_auth,
    limit_credentials,
)
from app.auth.schemas import (
    Delivery,
    PasswordChange,
    RefreshRequest,
    RegisterRequest,
    SessionRead,
    TokenResponse,
)
from app.auth.service import InvalidRefreshToken, IssuedTokens, utc_now
from app.core.config import Settings
from app.core.openapi import problem_responses
from app.core.routing import DomainRouter
from app.core.types import SingleLine
from app.users.schemas import PASSWORD_INPUT_MAX, UserRead

REFRESH_COOKIE_PATH = "/api/v1/auth"
"""The refresh and device cookies go only to auth endpoints; must match this router's mount."""

router = DomainRouter(
    prefix="/auth",
    tags=["auth"],
    dependencies=[Depends(check_origin), Depends(limit_auth)],
    responses=problem_responses(403, 429),
)
CredentialsLimit = Depends(limit_credentials)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _no_store(response: Response) -> None:
    # Tokens must never sit in a browser or proxy cache.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


def _cookie_secure(request: Request) -> bool:
    settings = _settings(request)
    # Plain-HTTP cookies are a local-development convenience only: production always
    # sends the refresh token over HTTPS, whatever the setting says.
    return settings.auth.refresh_cookie_secure or settings.is_production


def _deliver(
    request: Request, response: Response, tokens: IssuedTokens, delivery: Delivery
) -> TokenResponse:
    _no_store(response)
    body = TokenResponse(access_token=tokens.access_token, expires_in=tokens.expires_in)
    if tokens.refresh_token is None:
        return body
    if delivery is Delivery.BODY:
        return body.model_copy(update={"refresh_token": tokens.refresh_token})
    settings = _settings(request).auth
    max_age = int((tokens.refresh_expires_at - utc_now()).total_seconds())
    # HttpOnly keeps the token away from scripts (XSS), Strict keeps it off cross-site
    # requests (CSRF), and the path keeps it off every other endpoint.
    response.set_cookie(
        settings.refresh_cookie_name,
        tokens.refresh_token,
        max_age=max(max_age, 0),
        expires=tokens.refresh_expires_at,
        path=REFRESH_COOKIE_PATH,
        secure=_cookie_secure(request),
        httponly=True,
        samesite="strict",
    )
    return body


def _clear_cookie(request: Request, response: Response) -> None:
    settings = _settings(request).auth
    response.delete_cookie(
        settings.refresh_cookie_name,
        path=REFRESH_COOKIE_PATH,
        secure=_cookie_secure(request),
        httponly=True,
        samesite="strict",
    )


@router.post(
    "/register",
    name="register",
    status_code=status.HTTP_201_CREATED,
    dependencies=[CredentialsLimit],
    responses=problem_responses(409, 422),
)
async def register(data: RegisterRequest, auth: AuthServiceDep) -> UserRead:
    """Create a `member` account (403 when registration is turned off).

    A taken email answers 409: without email verification, telling a person that their
    address is already registered is what the product needs. The answer costs the same
    password hashing either way and is rate-limited per IP like login.
    """
    return await auth.register(email=data.email, password=data.password, full_name=data.full_name)


@router.post(
    "/login",
    name="login",
    dependencies=[CredentialsLimit],
    responses=problem_responses(401),
)
async def login(
    *,
    request: Request,
    response: Response,
    auth: AuthServiceDep,
    username: Annotated[SingleLine, Form(max_length=254, description="The account's email.")],
    password: Annotated[SingleLine, Form(max_length=PASSWORD_INPUT_MAX)],
    refresh_token_delivery: Annotated[
        Delivery,
        Form(description="`cookie` (browsers, default) or `body` (non-browser clients)."),
    ] = Delivery.COOKIE,
) -> TokenResponse:
    """Roombook's own first-party login (OAuth2 password-grant shape, for the docs page only).

    The password grant is deprecated for third-party clients (RFC 9700): only Roombook's
    SPA and tools may call this. Any failure answers the same 401, whether the email is
    unknown, the password wrong or the account slowed down after failed attempts.
    """
    settings = _settings(request).auth
    tokens = await auth.login(
        email=username,
        password=password,
        device_cookie=request.cookies.get(settings.device_cookie_name),
    )
    if tokens.device_cookie is not None:
        # Marks this browser as one the account logged in from (the lockout exemption):
        # as guarded as the refresh cookie, and kept far longer.
        response.set_cookie(
            settings.device_cookie_name,
            tokens.device_cookie,
            max_age=settings.device_cookie_lifetime_s,
            path=REFRESH_COOKIE_PATH,
            secure=_cookie_secure(request),
            httponly=True,
            samesite="strict",
        )
    return _deliver(request, response, tokens, refresh_token_delivery)


@router.post("/refresh", name="refresh", responses=problem_responses(401))
async def refresh(
    request: Request,
    response: Response,
    auth: AuthServiceDep,
    body: RefreshRequest | None = None,
) -> TokenResponse:
    """Rotate the refresh token (cookie, or `refresh_token` in the body) and mint an access token.

    A token already rotated ends the whole session (401), unless it is the one just
    replaced and arrives within the grace window: then the answer carries an access token
    and no new refresh token.
    """
    if body is not None:
        tokens = await auth.refresh(token=body.refresh_token)
        return _deliver(request, response, tokens, Delivery.BODY)
    token = request.cookies.get(_settings(request).auth.refresh_cookie_name)
    if not token:
        raise InvalidRefreshToken
    tokens = await auth.refresh(token=token)
    return _deliver(request, response, tokens, Delivery.COOKIE)


@router.post(
    "/logout",
    name="logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401),
)
async def logout(
    principal: CurrentUser, request: Request, response: Response, auth: AuthServiceDep
) -> None:
    """End the current session: its refresh token and access tokens stop working now."""
    await auth.logout(user_id=principal.id, session_id=principal.session_id)
    _clear_cookie(request, response)


@router.get("/sessions", name="list-sessions", responses=problem_responses(401))
async def list_sessions(principal: CurrentUser, sessions: SessionServiceDep) -> list[SessionRead]:
    """The caller's live sessions, newest first; `current` marks this one."""
    return await sessions.list_live(user_id=principal.id, current_session_id=principal.session_id)


@router.delete(
    "/sessions/{session_id}",
    name="end-session",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404),
)
async def end_session(
    principal: CurrentUser, session_id: uuid.UUID, sessions: SessionServiceDep
) -> None:
    """End one of the caller's sessions (for example a lost device)."""
    await sessions.end_one(user_id=principal.id, session_id=session_id)


@router.post(
    "/password",
    name="change-password",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[CredentialsLimit],
    responses=problem_responses(401, 422),
)
async def change_password(
    principal: CurrentUser, data: PasswordChange, auth: AuthServiceDep
) -> None:
    """Change the password (current one required); every other session ends."""
    await auth.change_password(
        user_id=principal.id,
        session_id=principal.session_id,
        current_password=data.current_password,
        new_password=data.new_password,
    )

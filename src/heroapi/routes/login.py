"""Logging in: the OAuth2 password flow (so "Authorize" in /docs works), refresh tokens that are
rotated at each use, and logging out."""

import time
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from heroapi import crud
from heroapi.config import Settings
from heroapi.crud import auth
from heroapi.db import Database, Row
from heroapi.errors import ErrorDetail
from heroapi.models import PASSWORD_MAX_LENGTH, Message, RefreshRequest, Token
from heroapi.routes.deps import (
    DatabaseDep,
    SettingsDep,
    ThrottleDep,
    TokensDep,
    not_authenticated,
)
from heroapi.routes.routing import Endpoint, Resource, Responses
from heroapi.security import AccessTokens
from heroapi.throttle import LOGIN_ADDRESS, Counted, Limit, Throttled

# The same answer, after the same work, for an unknown email and a wrong password.
INCORRECT_LOGIN = "Incorrect email or password"
INVALID_REFRESH = "Invalid or expired refresh token"
DAY: Final = 86400
# Refreshes are counted per login over a minute (HEROAPI_REFRESHES_PER_MINUTE), under this name.
REFRESH_WINDOW: Final = 60
REFRESH_SESSION: Final = "refresh-session"
THROTTLED: Responses = {
    status.HTTP_429_TOO_MANY_REQUESTS: {
        "model": ErrorDetail,
        "description": "Too many failed attempts from this address or for this account; "
        "retry after Retry-After seconds",
    },
    status.HTTP_503_SERVICE_UNAVAILABLE: {
        "model": ErrorDetail,
        "description": "No password-hashing turn came in time (HEROAPI_PASSWORD_HASH_WAIT), or "
        "the database is unavailable; retry after Retry-After seconds",
    },
}


async def _issue(database: Database, tokens: AccessTokens, user: Row, *, days: int) -> Token:
    """An access token and the first refresh token of a new login, which ends
    HEROAPI_SESSION_MAX_DAYS from now whatever its refreshes."""
    settings: Settings = database.settings
    now = int(time.time())
    refresh = await auth.start_session(
        database=database,
        user_id=user["id"],
        security_stamp=user["security_stamp"],
        expires_at=now + days * DAY,
        ends_at=now + settings.session_max_days * DAY,
    )
    return Token(
        access_token=tokens.issue(user_id=user["id"], stamp=user["security_stamp"]),
        expires_in=tokens.lifetime,
        refresh_token=refresh,
    )


async def login_access_token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    database: DatabaseDep,
    settings: SettingsDep,
    tokens: TokensDep,
    throttle: ThrottleDep,
) -> Token:
    """Exchange an email (as `username`) and password for a bearer token and a refresh token."""
    password = form.password[: PASSWORD_MAX_LENGTH + 1]  # never hash megabytes
    async with throttle.hashing(
        request.scope, throttle.login_address, account=form.username
    ) as attempt:
        database.read_latest()  # the password as it is now, not as a replica last saw it
        user = await crud.get_login(database=database, email=form.username)
        hashed = None if user is None else user["hashed_password"]
        valid, stronger_hash = await attempt.verify(password, hashed)
        if user is None or hashed is None or not valid:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, INCORRECT_LOGIN)
        await attempt.succeeded()
    if not user["is_active"]:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Inactive user")
    if stronger_hash is not None:
        # A bcrypt hash, or Argon2 with older parameters: replaced now that we know the password,
        # unless the password was changed since we read the hash.
        await crud.replace_password_hash(
            database=database,
            user_id=user["id"],
            verified_hash=hashed,
            hashed_password=stronger_hash,
        )
    return await _issue(database, tokens, user, days=settings.refresh_token_expire_days)


REFRESH_THROTTLED: Responses = {
    status.HTTP_429_TOO_MANY_REQUESTS: {
        "model": ErrorDetail,
        "description": "This login refreshed more than HEROAPI_REFRESHES_PER_MINUTE times in a "
        "minute; its refresh token stays valid: retry after Retry-After seconds",
    }
}


async def refresh_access_token(
    body: RefreshRequest, database: DatabaseDep, settings: SettingsDep, tokens: TokensDep
) -> Token:
    """Exchange a refresh token for a new access token and a new refresh token.

    Each refresh token works once. Presenting one that was already used ends its login (it has
    been copied): no refresh token of that login works any more. So does a change of the
    account's password, role or activation, and the login's end (HEROAPI_SESSION_MAX_DAYS)."""
    now = int(time.time())
    rate = auth.RefreshRate(settings.refreshes_per_minute, REFRESH_WINDOW)
    outcome = await auth.rotate_refresh_token(
        database=database,
        token=body.refresh_token,
        now=now,
        expires_at=now + settings.refresh_token_expire_days * DAY,
        rate=rate,
    )
    if outcome.result is auth.Refresh.THROTTLED:
        assert outcome.hits is not None
        limit = Limit(REFRESH_SESSION, rate.quota, rate.window)
        raise Throttled(Counted(limit, "", outcome.hits), now)
    if outcome.result is not auth.Refresh.ROTATED:
        raise not_authenticated(INVALID_REFRESH)
    assert outcome.user_id is not None
    assert outcome.security_stamp is not None
    assert outcome.refresh_token is not None
    return Token(
        access_token=tokens.issue(user_id=outcome.user_id, stamp=outcome.security_stamp),
        expires_in=tokens.lifetime,
        refresh_token=outcome.refresh_token,
    )


async def logout(body: RefreshRequest, database: DatabaseDep) -> Message:
    """End the login of a refresh token: none of its refresh tokens works any more. Access
    tokens already issued work until they expire (`expires_in`); change the password to end
    them at once."""
    await auth.end_session(database=database, token=body.refresh_token)
    return Message(message="Logged out")


ROUTES: Final = Resource(
    "login",
    [
        Endpoint(
            "POST",
            "/login/access-token",
            login_access_token,
            Token,
            {status.HTTP_400_BAD_REQUEST: {"model": ErrorDetail}, **THROTTLED},
            # A flood from an address already past its limit is answered before the form is read.
            refused_over=LOGIN_ADDRESS,
        ),
        Endpoint(
            "POST",
            "/login/refresh",
            refresh_access_token,
            Token,
            {status.HTTP_401_UNAUTHORIZED: {"model": ErrorDetail}, **REFRESH_THROTTLED},
        ),
        Endpoint("POST", "/logout", logout, Message),
    ],
)

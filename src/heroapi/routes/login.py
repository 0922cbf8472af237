"""Logging in: the OAuth2 password flow (so "Authorize" in /docs works), refresh tokens that are
rotated at each use, and logging out."""

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from heroapi import crud
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
from heroapi.security import AccessTokens, new_refresh_token, new_token_family, refresh_token_hash
from heroapi.throttle import LOGIN_ADDRESS, refusing_route

router = APIRouter(tags=["login"])

# The same answer, after the same work, for an unknown email and a wrong password.
INCORRECT_LOGIN = "Incorrect email or password"
INVALID_REFRESH = "Invalid or expired refresh token"
THROTTLED: dict[int | str, dict[str, Any]] = {
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
    """An access token and the first refresh token of a new family (one per login)."""
    refresh, refresh_hash = new_refresh_token()
    await auth.store_refresh_token(
        database=database,
        token_hash=refresh_hash,
        family=new_token_family(),
        user_id=user["id"],
        security_stamp=user["security_stamp"],
        expires_at=int(time.time()) + days * 86400,
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


router.add_api_route(
    "/login/access-token",
    login_access_token,
    methods=["POST"],
    response_model=Token,
    responses={status.HTTP_400_BAD_REQUEST: {"model": ErrorDetail}, **THROTTLED},
    # A flood from an address already past its limit is answered before the form is read.
    route_class_override=refusing_route(LOGIN_ADDRESS),
)


@router.post(
    "/login/refresh",
    response_model=Token,
    responses={status.HTTP_401_UNAUTHORIZED: {"model": ErrorDetail}},
)
async def refresh_access_token(
    body: RefreshRequest, database: DatabaseDep, settings: SettingsDep, tokens: TokensDep
) -> Token:
    """Exchange a refresh token for a new access token and a new refresh token.

    Each refresh token works once. Presenting one that was already used revokes every token
    descended from the same login (it has been copied), and so does a change of the account's
    password, role or activation."""
    refresh, refresh_hash = new_refresh_token()
    outcome = await auth.rotate_refresh_token(
        database=database,
        token_hash=refresh_token_hash(body.refresh_token),
        successor_hash=refresh_hash,
        now=int(time.time()),
        expires_at=int(time.time()) + settings.refresh_token_expire_days * 86400,
    )
    if outcome.result is not auth.Refresh.ROTATED:
        raise not_authenticated(INVALID_REFRESH)
    assert outcome.user_id is not None
    assert outcome.security_stamp is not None
    return Token(
        access_token=tokens.issue(user_id=outcome.user_id, stamp=outcome.security_stamp),
        expires_in=tokens.lifetime,
        refresh_token=refresh,
    )


@router.post("/logout", response_model=Message)
async def logout(body: RefreshRequest, database: DatabaseDep) -> Message:
    """Revoke a refresh token and every token of its login. Access tokens already issued expire
    on their own (`expires_in`); change the password to end them at once."""
    await auth.revoke_refresh_family(
        database=database, token_hash=refresh_token_hash(body.refresh_token)
    )
    return Message(message="Logged out")

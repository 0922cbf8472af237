"""Dependencies the routes share: the database, the settings, and who is asking.

Every dependency is `async def`: FastAPI runs a plain `def` dependency in its thread pool, a hop
that costs more than the work these do.
"""

import hmac
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer
from starlette.types import Scope

from heroapi import crud
from heroapi.config import Settings
from heroapi.crud.auth import SIGNING_KEY, stored_secret
from heroapi.cursors import Cursors
from heroapi.db import Database, Row
from heroapi.models import ID_MAX
from heroapi.security import AccessTokens, PasswordHasher, new_secret_key
from heroapi.throttle import Throttle

TOKEN_URL: Final = "/login/access-token"  # noqa: S105
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def app_database(scope: Scope) -> Database:
    """The app's `Database`, from a request's ASGI scope (`request.scope` in a handler that
    takes `Request` to keep its dependencies flat; the scope itself on the fast path)."""
    database: Database = scope["app"].state.database
    return database


def app_settings(scope: Scope) -> Settings:
    """The app's `Settings`, from a request's ASGI scope."""
    settings: Settings = scope["app"].state.settings
    return settings


async def get_app_database(request: Request) -> Database:
    """The app's `Database`, as a dependency (`DatabaseDep`)."""
    return app_database(request.scope)


async def get_app_settings(request: Request) -> Settings:
    """The app's `Settings`, as a dependency (`SettingsDep`)."""
    return app_settings(request.scope)


# Paging, as in the tutorials (`offset` for heroes, `skip` for users and items).
PageStart = Annotated[
    int,
    Query(
        ge=0,
        le=ID_MAX,
        description="Rows to skip, in the list's order (by id unless `order` says).",
    ),
]
MAX_PAGE_SIZE: Final = 100
# A list's page size when a request names none: the tutorial's `limit: int = 100`.
DEFAULT_PAGE_SIZE: Final = MAX_PAGE_SIZE
PageSize = Annotated[
    int, Query(ge=0, le=MAX_PAGE_SIZE, description=f"Rows to return, at most {MAX_PAGE_SIZE}.")
]


async def _signing_key(scope: Scope) -> str:
    """HEROAPI_SECRET_KEY or, without it, the key kept in the database (made at random by the
    first process that needs one)."""
    settings = app_settings(scope)
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return await stored_secret(
        database=app_database(scope), name=SIGNING_KEY, candidate=new_secret_key()
    )


async def get_tokens(request: Request) -> AccessTokens:
    """The app's access tokens, signed with the signing key."""
    tokens: AccessTokens | None = request.app.state.tokens
    if tokens is None:
        key = await _signing_key(request.scope)
        tokens = request.app.state.tokens = AccessTokens(key, request.app.state.settings)
    return tokens


async def cursors_in(scope: Scope) -> Cursors:
    """The app's list cursors, signed with a key derived from the signing key."""
    state = scope["app"].state
    cursors: Cursors | None = state.cursors
    if cursors is None:
        cursors = state.cursors = Cursors(await _signing_key(scope))
    return cursors


async def get_passwords(request: Request) -> PasswordHasher:
    passwords: PasswordHasher = request.app.state.passwords
    return passwords


async def get_throttle(request: Request) -> Throttle:
    throttle: Throttle = request.app.state.throttle
    return throttle


def offset_allowed(scope: Scope, offset: int) -> bool:
    """Whether `offset` is within HEROAPI_MAX_OFFSET (always, when it is not set)."""
    settings = app_settings(scope)
    return settings.max_offset is None or offset <= settings.max_offset


def check_offset(request: Request, name: str, offset: int) -> None:
    """HEROAPI_MAX_OFFSET, as the 422 pydantic's own `le` gives for the query parameter."""
    if not offset_allowed(request.scope, offset):
        maximum = app_settings(request.scope).max_offset
        raise RequestValidationError(
            [
                {
                    "type": "less_than_equal",
                    "loc": ("query", name),
                    "msg": f"Input should be less than or equal to {maximum} "
                    "(HEROAPI_MAX_OFFSET; page deeper with a narrower query)",
                    "input": str(offset),
                    "ctx": {"le": maximum},
                }
            ]
        )


DatabaseDep = Annotated[Database, Depends(get_app_database)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
TokensDep = Annotated[AccessTokens, Depends(get_tokens)]
PasswordsDep = Annotated[PasswordHasher, Depends(get_passwords)]
ThrottleDep = Annotated[Throttle, Depends(get_throttle)]
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]


def not_authenticated(detail: str = "Not authenticated") -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def in_id_range(value: int) -> bool:
    """Whether `value` fits the 64-bit id columns (anything else names no row)."""
    return 1 <= value <= ID_MAX


async def get_current_user(database: DatabaseDep, tokens: TokensDep, token: TokenDep) -> Row:
    """The user whose bearer token came with the request: 401 if there is none, or if it is
    malformed, expired, or revoked (the account's security stamp changed since: password, role
    or activation), or its account is gone or inactive."""
    if token is None:
        raise not_authenticated()
    claims = tokens.check(token)
    if claims is None or not in_id_range(claims.user_id):
        raise not_authenticated("Could not validate credentials")
    database.read_latest()  # a revoked token (a new stamp) stops working at once, replicas or not
    user = await crud.get_user(database=database, user_id=claims.user_id)
    if (
        user is None
        or not user["is_active"]
        or not hmac.compare_digest(user["security_stamp"], claims.stamp)
    ):
        raise not_authenticated("Could not validate credentials")
    return user


CurrentUser = Annotated[Row, Depends(get_current_user)]


async def get_current_superuser(user: CurrentUser) -> Row:
    if not user["is_superuser"]:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "The user doesn't have enough privileges")
    return user

"""Users: the tutorial's `sql_app` endpoints, plus the account's own (`/users/me`).

`ROUTES` lists them in matching order; who may call each one is its rule in
`heroapi.routes.policy.RULES`, enforced by the dependencies `routing.add_routes` gives it.
"""

from typing import Any, Final

from fastapi import HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError

from heroapi import accounts, crud
from heroapi.db import Database, Row, Values
from heroapi.errors import ErrorDetail
from heroapi.models import (
    Item,
    ItemCreate,
    Message,
    UpdatePassword,
    User,
    UserCreate,
    UserUpdate,
    UserUpdateMe,
)
from heroapi.rendering import item_json, user_json, users_json
from heroapi.routes import policy
from heroapi.routes.deps import (
    DEFAULT_PAGE_SIZE,
    CurrentUser,
    DatabaseDep,
    PageSize,
    PageStart,
    PasswordsDep,
    SettingsDep,
    ThrottleDep,
    app_database,
    check_offset,
    in_id_range,
)
from heroapi.routes.direct import fast_read_one, row_response
from heroapi.routes.list_headers import LIST_RESPONSES
from heroapi.routes.list_parameters import with_list_parameters
from heroapi.routes.lists import FastList, page_response, read_page, validated_request
from heroapi.routes.login import THROTTLED
from heroapi.routes.policy import user_not_found
from heroapi.routes.routing import Endpoint, Resource, Responses
from heroapi.throttle import REGISTER_ADDRESS

EMAIL_TAKEN = "Email already registered"
NOT_FOUND: Responses = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorDetail, "description": "User not found"}
}
EMAIL_CONFLICT: Responses = {
    status.HTTP_400_BAD_REQUEST: {"model": ErrorDetail, "description": EMAIL_TAKEN}
}


def check_password_length(password: str, minimum: int, field: str) -> None:
    """HEROAPI_PASSWORD_MIN_LENGTH, as a 422 in the shape pydantic's own `min_length` gives."""
    if len(password) < minimum:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_short",
                    "loc": ("body", field),
                    "msg": f"String should have at least {minimum} characters",
                    "input": password,  # never echoed: the error handler redacts passwords
                    "ctx": {"min_length": minimum},
                }
            ]
        )


def email_taken() -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, EMAIL_TAKEN)


async def create_user(
    request: Request,
    user: UserCreate,
    database: DatabaseDep,
    settings: SettingsDep,
    throttle: ThrottleDep,
) -> Row:
    """Register an account (with `HEROAPI_AUTH_MODE=required`, superusers only)."""
    check_password_length(user.password, settings.password_min_length, "password")
    # Only when HEROAPI_REGISTRATIONS_PER_ADDRESS is set, and never for a superuser (the only
    # caller where the rule asks for one).
    counted = policy.rule(settings.auth_mode, "POST", "/users/") is not policy.SUPERUSER
    turn = throttle.hashing(request.scope, throttle.register_address if counted else None)
    try:
        return await accounts.register(database=database, account=user, turn=turn)
    except crud.EmailAlreadyRegistered:
        raise email_taken() from None


@with_list_parameters(crud.USERS)
async def read_users(
    request: Request, skip: PageStart = 0, limit: PageSize = DEFAULT_PAGE_SIZE, **choices: Any
) -> Response:
    """List accounts, each with its items, `limit` from `skip` or from a `cursor`; by id, or in
    the `order` asked for; only those the filters match (`required` mode: superusers only)."""
    check_offset(request, "skip", skip)
    listed = await validated_request(
        request.scope, crud.USERS, choices, offset_param="skip", offset=skip, limit=limit
    )
    page, headers = await read_page(request.scope, listed)
    return page_response(users_json(page.rows), headers)


async def read_user_me(user: CurrentUser, database: DatabaseDep) -> Response:
    """The account the bearer token belongs to."""
    found = await crud.get_user_with_items(database=database, user_id=user["id"])
    return row_response(found, user_json, user_not_found)


async def update_user_me(body: UserUpdateMe, user: CurrentUser, database: DatabaseDep) -> Response:
    """Change your own account's email."""
    return await _update(database, user["id"], body.model_dump(exclude_unset=True))


async def update_password_me(
    request: Request,
    body: UpdatePassword,
    user: CurrentUser,
    database: DatabaseDep,
    settings: SettingsDep,
    throttle: ThrottleDep,
) -> Message:
    """Change your password (the current one is required); tokens issued before stop working."""
    check_password_length(body.new_password, settings.password_min_length, "new_password")
    # A wrong current password counts as a failed login of the account.
    async with throttle.hashing(
        request.scope, throttle.login_address, account=user["email"]
    ) as attempt:
        database.read_latest()
        login = await crud.get_login(database=database, email=user["email"])
        hashed = None if login is None else login["hashed_password"]
        valid, _ = await attempt.verify(body.current_password, hashed)
        if not valid or hashed is None:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "Incorrect password")
        await attempt.succeeded()
        if body.new_password == body.current_password:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, "New password cannot be the same as the current one"
            )
        new_hash = await attempt.hash(body.new_password)
    changed = await crud.update_user(
        database=database,
        user_id=user["id"],
        changes={"hashed_password": new_hash},
        verified_hash=hashed,  # a change that landed meanwhile is not overwritten
    )
    if changed is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Incorrect password")
    return Message(message="Password updated; log in again")


async def read_user(user_id: int, request: Request) -> Response:
    """Read one account, with its items."""
    user = None
    if in_id_range(user_id):  # else no account can have it
        database = app_database(request.scope)
        user = await crud.get_user_with_items(database=database, user_id=user_id)
    return row_response(user, user_json, user_not_found, modified_at=crud.USER_LAST_MODIFIED)


async def update_user(
    user_id: int,
    body: UserUpdate,
    database: DatabaseDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
) -> Response:
    """Change any account (superusers only); a new password, role or activation revokes every
    token the account had."""
    if not in_id_range(user_id):
        raise user_not_found()
    changes = body.model_dump(exclude_unset=True)
    password = changes.pop("password", None)
    if password is not None:
        check_password_length(password, settings.password_min_length, "password")
        changes["hashed_password"] = await passwords.hash(password)
    return await _update(database, user_id, changes)


async def delete_user(user_id: int, database: DatabaseDep) -> Message:
    """Delete an account and all its items (your own, or any as a superuser)."""
    if not in_id_range(user_id):
        raise user_not_found()
    if not await crud.delete_user(database=database, user_id=user_id):
        raise user_not_found()
    return Message(message="User deleted")


async def create_item_for_user(user_id: int, item: ItemCreate, request: Request) -> Response:
    """Create an item owned by a user (`required` mode: yourself, unless a superuser)."""
    created = None
    if in_id_range(user_id):  # else no account can have it
        database = app_database(request.scope)
        created = await crud.create_item(database=database, owner_id=user_id, item=item)
    return row_response(created, item_json, user_not_found)


async def _update(database: Database, user_id: int, changes: dict[str, Any]) -> Response:
    """The account after `changes`, with its items (404 if it is gone, or was meanwhile)."""
    try:
        user = await crud.update_user(database=database, user_id=user_id, changes=changes)
    except crud.EmailAlreadyRegistered:
        raise email_taken() from None
    if user is None:
        raise user_not_found()
    found = await crud.get_user_with_items(database=database, user_id=user_id)
    return row_response(found, user_json, user_not_found)


async def _get_user(database: Database, user_id: int) -> Values | None:
    return await crud.get_user_with_items(database=database, user_id=user_id)


# Fast answers only where anyone may read every account (`routing.add_routes`).
fast_read_user = fast_read_one("user_id", _get_user, user_json, modified_at=crud.USER_LAST_MODIFIED)
fast_read_users = FastList(crud.USERS, users_json, offset_param="skip")


# `/users/me` before `/users/{user_id}`, which would match it too.
USER_PATH: Final = "/users/{user_id}"
ROUTES: Final = Resource(
    "users",
    [
        # An address known to be past its registration limit is answered before the body is read.
        Endpoint(
            "POST",
            "/users/",
            create_user,
            User,
            EMAIL_CONFLICT | THROTTLED,
            refused_over=REGISTER_ADDRESS,
        ),
        Endpoint("GET", "/users/", read_users, list[User], LIST_RESPONSES, fast=fast_read_users),
        Endpoint("GET", "/users/me", read_user_me, User),
        Endpoint("PATCH", "/users/me", update_user_me, User, EMAIL_CONFLICT),
        Endpoint("POST", "/users/me/password", update_password_me, Message, THROTTLED),
        Endpoint("GET", USER_PATH, read_user, User, NOT_FOUND, fast=fast_read_user),
        Endpoint("PATCH", USER_PATH, update_user, User, NOT_FOUND | EMAIL_CONFLICT),
        Endpoint("DELETE", USER_PATH, delete_user, Message, NOT_FOUND),
        Endpoint("POST", "/users/{user_id}/items/", create_item_for_user, Item, NOT_FOUND),
    ],
)

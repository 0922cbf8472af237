"""Users: the tutorial's `sql_app` endpoints, plus the account's own (`/users/me`).

`router(mode)` registers them for the app's auth mode; who may call each one is its rule in
`heroapi.policy.RULES`, enforced by the dependencies `policy.Router` gives it.
"""

from collections.abc import Callable
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError

from heroapi import crud, policy
from heroapi.db import Database, Row
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
from heroapi.policy import AuthMode, user_not_found
from heroapi.rendering import http_date
from heroapi.routes.deps import (
    CurrentUser,
    DatabaseDep,
    PageSize,
    PageStart,
    PasswordsDep,
    SettingsDep,
    ThrottleDep,
    check_offset,
    in_id_range,
)
from heroapi.routes.list_headers import LIST_RESPONSES, add_headers
from heroapi.routes.list_parameters import with_list_parameters
from heroapi.routes.lists import read_page, validated_request
from heroapi.routes.login import THROTTLED
from heroapi.throttle import REGISTER_ADDRESS, refusing_route

Responses = dict[int | str, dict[str, Any]]  # documented answers, by status

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


async def user_id_in_range(user_id: int) -> int:
    """The path's user id; an id no account can have is a 404, before the body is validated."""
    if not in_id_range(user_id):
        raise user_not_found()
    return user_id


UserId = Annotated[int, Depends(user_id_in_range)]


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
    async with throttle.hashing(
        request.scope, throttle.register_address if counted else None
    ) as attempt:
        # A cheap early answer for the common case, asked in the request's turn (a burst of one
        # email hashes once or twice, not once per request); the unique index decides races.
        if await crud.email_registered(database=database, email=user.email):
            raise email_taken()
        hashed = await attempt.hash(user.password)
    try:
        return await crud.create_user(database=database, email=user.email, hashed_password=hashed)
    except crud.EmailAlreadyRegistered:
        raise email_taken() from None


@with_list_parameters(crud.USERS)
async def read_users(
    request: Request,
    response: Response,
    skip: PageStart = 0,
    limit: PageSize = 100,
    **choices: Any,
) -> list[Row]:
    """List accounts, each with its items, `limit` from `skip` or from a `cursor`; by id, or in
    the `order` asked for; only those the filters match (`required` mode: superusers only)."""
    check_offset(request, "skip", skip)
    listed = await validated_request(
        request.scope, crud.USERS, choices, offset_param="skip", offset=skip, limit=limit
    )
    page, headers = await read_page(request.scope, listed)
    add_headers(response, headers)
    rows: list[Row] = page.rows
    return rows


async def read_user_me(user: CurrentUser, database: DatabaseDep) -> Row:
    """The account the bearer token belongs to."""
    found = await crud.get_user_with_items(database=database, user_id=user["id"])
    if found is None:
        raise user_not_found()
    return found


async def update_user_me(body: UserUpdateMe, user: CurrentUser, database: DatabaseDep) -> Row:
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


async def read_user(user_id: UserId, database: DatabaseDep, response: Response) -> Row:
    """Read one account, with its items."""
    user = await crud.get_user_with_items(database=database, user_id=user_id)
    if user is None:
        raise user_not_found()
    response.headers["last-modified"] = http_date(user["last_modified"]).decode()
    return user


async def update_user(
    user_id: int,
    body: UserUpdate,
    database: DatabaseDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
) -> Row:
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


async def create_item_for_user(user_id: UserId, item: ItemCreate, database: DatabaseDep) -> Row:
    """Create an item owned by a user (`required` mode: yourself, unless a superuser)."""
    created = await crud.create_item(database=database, owner_id=user_id, item=item)
    if created is None:
        raise user_not_found()
    return created


async def _update(database: Database, user_id: int, changes: dict[str, Any]) -> Row:
    try:
        user = await crud.update_user(database=database, user_id=user_id, changes=changes)
    except crud.EmailAlreadyRegistered:
        raise email_taken() from None
    if user is None:
        raise user_not_found()
    found = await crud.get_user_with_items(database=database, user_id=user_id)
    return found if found is not None else user


# path (under /users), method, handler, response model, answers besides 200 and 422; `/me`
# before `/{user_id}`, which would match it too.
ROUTES: Final[list[tuple[str, str, Callable[..., Any], Any, Responses]]] = [
    ("/", "POST", create_user, User, EMAIL_CONFLICT | THROTTLED),
    ("/", "GET", read_users, list[User], LIST_RESPONSES),
    ("/me", "GET", read_user_me, User, {}),
    ("/me", "PATCH", update_user_me, User, EMAIL_CONFLICT),
    ("/me/password", "POST", update_password_me, Message, THROTTLED),
    ("/{user_id}", "GET", read_user, User, NOT_FOUND),
    ("/{user_id}", "PATCH", update_user, User, NOT_FOUND | EMAIL_CONFLICT),
    ("/{user_id}", "DELETE", delete_user, Message, NOT_FOUND),
    ("/{user_id}/items/", "POST", create_item_for_user, Item, NOT_FOUND),
]


# Routes that answer an address known to be past its limit before reading the request.
REFUSING: Final = {("/", "POST"): refusing_route(REGISTER_ADDRESS)}


def router(mode: AuthMode) -> APIRouter:
    """The `/users` routes, each guarded by its rule in `mode` (`policy.RULES`)."""
    users = policy.Router(mode, prefix="/users")
    for path, method, handler, model, responses in ROUTES:
        users.add_api_route(
            path,
            handler,
            methods=[method],
            response_model=model,
            responses=responses,
            route_class_override=REFUSING.get((path, method)),
            tags=["users"],
        )
    return users

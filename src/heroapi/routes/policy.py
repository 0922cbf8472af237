"""Who may do what, in each auth mode (`HEROAPI_AUTH_MODE`): the table `RULES`.

One row per operation (method and path template), one column per mode, each cell a rule:

- `ANYONE`: no token is asked for, and none is looked at (the tutorials' behaviour).
- `ACCOUNT`: any logged-in user.
- `SELF_OR_SUPERUSER`: the account the path's `{user_id}` names must be your own, unless you are
  a superuser. Another account is a 404, the answer for a missing one, so that which ids are
  taken is not revealed (a 403 would say the account exists).
- `OWN_ITEMS`: any logged-in user, who sees only their own items (a superuser sees them all);
  another's item is a 404, like a missing one.
- `SUPERUSER`: superusers only; 403 for other users.

Every rule but `ANYONE` answers 401 (`WWW-Authenticate: Bearer`) without a valid token.

A new rule, or a changed one, is an edit of `RULES` alone: the routes are built for the app's
mode (`main.create_app`), and `routing.add_routes`, which registers every route, gives each the
dependencies `dependencies()` returns for its rule there, and refuses a route `RULES` does not
name. So FastAPI's own OpenAPI document tells the truth: an operation shows `security` exactly
when its rule needs a token in the running mode. An `ANYONE` operation gets no dependency at all,
which keeps the hot hero routes flat in `open` mode (the fast hero reads cannot take one, and are
`ANYONE` in every mode). The item handlers, whose answer depends on who asks, take `ItemOwner`.

Not in the table (`OUTSIDE_RULES`): the docs pages and `/health/*` (open to anyone), and
`/metrics` (guarded by a token of its own, `HEROAPI_METRICS_TOKEN`).
"""

import enum
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal, TypeAlias, get_args

from fastapi import Depends, HTTPException, Request, params, status
from pydantic import TypeAdapter, ValidationError

from heroapi.routes.deps import CurrentUser, get_current_superuser, get_current_user

AuthMode: TypeAlias = Literal["open", "required"]  # Settings.auth_mode
MODES: Final[tuple[AuthMode, ...]] = get_args(AuthMode)  # RULES' columns, in this order


class Rule(enum.Enum):
    """Who may call an operation (see the module's docstring)."""

    ANYONE = enum.auto()
    ACCOUNT = enum.auto()
    SELF_OR_SUPERUSER = enum.auto()
    OWN_ITEMS = enum.auto()
    SUPERUSER = enum.auto()


ANYONE: Final = Rule.ANYONE
ACCOUNT: Final = Rule.ACCOUNT
SELF_OR_SUPERUSER: Final = Rule.SELF_OR_SUPERUSER
OWN_ITEMS: Final = Rule.OWN_ITEMS
SUPERUSER: Final = Rule.SUPERUSER
Operation: TypeAlias = tuple[str, str]  # method, path template

# fmt: off
RULES: Final[dict[Operation, tuple[Rule, Rule]]] = {
    # method    path template                open               required
    ("GET",    "/heroes/"):                 (ANYONE,            ANYONE),
    ("GET",    "/heroes/{hero_id}"):        (ANYONE,            ANYONE),
    ("POST",   "/heroes/"):                 (ANYONE,            ACCOUNT),
    ("PATCH",  "/heroes/{hero_id}"):        (ANYONE,            ACCOUNT),
    ("DELETE", "/heroes/{hero_id}"):        (ANYONE,            ACCOUNT),
    ("POST",   "/users/"):                  (ANYONE,            SUPERUSER),
    ("GET",    "/users/"):                  (ANYONE,            SUPERUSER),
    ("GET",    "/users/me"):                (ACCOUNT,           ACCOUNT),
    ("PATCH",  "/users/me"):                (ACCOUNT,           ACCOUNT),
    ("POST",   "/users/me/password"):       (ACCOUNT,           ACCOUNT),
    ("GET",    "/users/{user_id}"):         (ANYONE,            SELF_OR_SUPERUSER),
    ("PATCH",  "/users/{user_id}"):         (SUPERUSER,         SUPERUSER),
    ("DELETE", "/users/{user_id}"):         (SELF_OR_SUPERUSER, SELF_OR_SUPERUSER),
    ("POST",   "/users/{user_id}/items/"):  (ANYONE,            SELF_OR_SUPERUSER),
    ("GET",    "/items/"):                  (ANYONE,            OWN_ITEMS),
    ("GET",    "/items/{item_id}"):         (ANYONE,            OWN_ITEMS),
    ("PATCH",  "/items/{item_id}"):         (ANYONE,            OWN_ITEMS),
    ("DELETE", "/items/{item_id}"):         (ANYONE,            OWN_ITEMS),
    ("POST",   "/login/access-token"):      (ANYONE,            ANYONE),
    ("POST",   "/login/refresh"):           (ANYONE,            ANYONE),
    ("POST",   "/logout"):                  (ANYONE,            ANYONE),
}
# fmt: on
# Operations no rule guards: the health checks are open to anyone, /metrics checks its own token.
OUTSIDE_RULES: Final[frozenset[Operation]] = frozenset(
    {("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/metrics")}
)


def rule(mode: AuthMode, method: str, path: str) -> Rule:
    """The rule for `method` on `path` (a path template) in `mode`."""
    try:
        rules = RULES[method, path]
    except KeyError:
        raise LookupError(f"{method} {path} has no rule in heroapi.routes.policy.RULES") from None
    return rules[MODES.index(mode)]


def user_not_found() -> HTTPException:
    """The answer for a missing account, and so for another's (`SELF_OR_SUPERUSER`)."""
    return HTTPException(status.HTTP_404_NOT_FOUND, "User not found")


# Parses the path's `{user_id}` as FastAPI parses the handler's `user_id: int`.
_USER_ID: Final = TypeAdapter(int)


async def _self_or_superuser(request: Request, user: CurrentUser) -> None:
    if user["is_superuser"]:
        return
    try:
        user_id = _USER_ID.validate_python(request.path_params["user_id"])
    except ValidationError:
        # Not an id: the handler's own validation answers (a 422), once. Declaring `user_id: int`
        # here instead would list the same error twice, this dependency's and the handler's.
        return
    if user_id != user["id"]:
        raise user_not_found()


async def _own_items(request: Request, user: CurrentUser) -> None:
    # Read by `item_owner`: route dependencies run before the handler's own.
    request.state.item_owner = None if user["is_superuser"] else user["id"]


async def item_owner(request: Request) -> int | None:
    """Whose items the requester may see, as an owner's id, or None for every item: under the
    `OWN_ITEMS` rule, your own unless you are a superuser (as its dependency recorded); under
    any other rule, every item.

    Closed on failure: under `OWN_ITEMS` with nothing recorded (its dependency did not run
    first), `LookupError`, a 500, never every item."""
    if hasattr(request.state, "item_owner"):
        owner: int | None = request.state.item_owner
        return owner
    route = request.scope["route"]
    mode: AuthMode = request.app.state.settings.auth_mode
    if rule(mode, request.method, route.path) is OWN_ITEMS:
        raise LookupError(f"{request.method} {route.path}: the OWN_ITEMS guard did not run")
    return None


ItemOwner = Annotated[int | None, Depends(item_owner)]


# What enforces each rule; get_current_user answers the 401s.
_GUARDS: Final[dict[Rule, Callable[..., Any] | None]] = {
    ANYONE: None,
    ACCOUNT: get_current_user,
    SELF_OR_SUPERUSER: _self_or_superuser,
    OWN_ITEMS: _own_items,
    SUPERUSER: get_current_superuser,
}


def dependencies(mode: AuthMode, method: str, path: str) -> list[params.Depends]:
    """The route dependencies that enforce the operation's rule in `mode`: none for `ANYONE`,
    nor for an operation `OUTSIDE_RULES`."""
    if (method, path) in OUTSIDE_RULES:
        return []
    found = rule(mode, method, path)
    if found is SELF_OR_SUPERUSER and "{user_id}" not in path:
        raise ValueError(f"{method} {path}: SELF_OR_SUPERUSER needs a {{user_id}} in the path")
    guard = _GUARDS[found]
    return [] if guard is None else [params.Depends(guard)]

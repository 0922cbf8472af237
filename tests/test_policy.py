"""Who may do what (heroapi.routes.policy.RULES): every route has a rule, and the OpenAPI
document and the answers to requests without a valid token follow it, in each auth mode.

What each rule lets a logged-in user do is in tests/test_auth.py and tests/test_users.py.
"""

import asyncio
import re
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from heroapi.main import create_app
from heroapi.routes import policy
from heroapi.routes.policy import ANYONE, MODES, RULES, SUPERUSER, AuthMode
from heroapi.routes.routing import Endpoint, Resource, add_routes
from tests.conftest import make_settings, running_app

# Routes outside the table: the docs pages and /health/* are open, /metrics has its own token.
UNRULED = ("/docs", "/redoc", "/static/", "/health/", "/metrics")

# What the README's "Auth modes" table says needs a token, written out so that a change to
# policy.RULES that changes it fails here too.
NEEDS_A_TOKEN: dict[AuthMode, set[tuple[str, str]]] = {
    "open": {
        ("GET", "/users/me"),
        ("PATCH", "/users/me"),
        ("POST", "/users/me/password"),
        ("PATCH", "/users/{user_id}"),
        ("DELETE", "/users/{user_id}"),
    },
    "required": {
        ("GET", "/users/me"),
        ("PATCH", "/users/me"),
        ("POST", "/users/me/password"),
        ("PATCH", "/users/{user_id}"),
        ("DELETE", "/users/{user_id}"),
        ("POST", "/heroes/"),
        ("PATCH", "/heroes/{hero_id}"),
        ("DELETE", "/heroes/{hero_id}"),
        ("POST", "/users/"),
        ("GET", "/users/"),
        ("GET", "/users/{user_id}"),
        ("POST", "/users/{user_id}/items/"),
        ("GET", "/items/"),
        ("GET", "/items/{item_id}"),
        ("PATCH", "/items/{item_id}"),
        ("DELETE", "/items/{item_id}"),
    },
}


def app_for(mode: AuthMode, directory: Path) -> FastAPI:
    """The app in `mode`, not started: its routes and OpenAPI document need no database."""
    return create_app(make_settings(f"sqlite:///{directory}/policy.db", auth_mode=mode))


def operations_of(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path template) of the app's routes but UNRULED's."""
    found = set()
    for context in iter_route_contexts(app.routes):
        path = context.path
        if isinstance(context.original_route, APIRoute) and path and not path.startswith(UNRULED):
            found |= {(method, path) for method in context.methods or ()}
    return found


@pytest.mark.parametrize("mode", MODES)
def test_every_route_has_a_rule_and_every_rule_a_route(mode: AuthMode, tmp_path: Path) -> None:
    assert operations_of(app_for(mode, tmp_path)) == set(RULES)


def test_a_route_without_a_rule_is_refused() -> None:
    async def unruled() -> None:
        pass

    with pytest.raises(LookupError, match="GET /new/ has no rule"):
        add_routes(FastAPI(), Resource("new", [Endpoint("GET", "/new/", unruled)]), mode="open")


@pytest.mark.parametrize("mode", MODES)
def test_openapi_security_follows_the_table(mode: AuthMode, tmp_path: Path) -> None:
    document = TestClient(app_for(mode, tmp_path)).get("/openapi.json").json()
    secured = set()
    for path, operations in document["paths"].items():
        if path.startswith(UNRULED):
            continue
        for method, operation in operations.items():
            rule = policy.rule(mode, method.upper(), path)
            responses = operation["responses"]
            if operation.get("security"):
                secured.add((method.upper(), path))
                assert operation["security"] == [{"OAuth2PasswordBearer": []}]
                assert "401" in responses, (method, path)
            if rule is SUPERUSER:
                assert "403" in responses, (method, path)
            assert bool(operation.get("security")) == (rule is not ANYONE), (method, path)
    assert secured == NEEDS_A_TOKEN[mode]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("token", [None, "not-a-jwt"], ids=["no-token", "bad-token"])
def test_requests_without_a_valid_token_follow_the_table(
    mode: AuthMode, token: str | None, database_url: str
) -> None:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    with running_app(make_settings(database_url, auth_mode=mode)) as client:
        for method, path in RULES:
            # No body: an operation that lets anyone in answers 422 (or 200, 404) for it, and
            # one that needs a token answers 401 before it looks at the body.
            response = client.request(method, re.sub(r"\{\w+\}", "1", path), headers=headers)
            if policy.rule(mode, method, path) is ANYONE:
                assert response.status_code not in (401, 403), (method, path, response.text)
            else:
                assert response.status_code == 401, (method, path, response.text)
                assert response.headers["WWW-Authenticate"] == "Bearer"
        if mode == "open":  # the tutorial's clients, which never log in
            assert client.get("/users/", headers=headers).status_code == 200
            assert client.get("/items/", headers=headers).status_code == 200


@pytest.mark.parametrize("mode", MODES)
def test_hero_routes_open_to_anyone_have_no_dependencies(mode: AuthMode, tmp_path: Path) -> None:
    # The hot paths: in `open` mode FastAPI has nothing to solve for them besides the handler.
    for context in iter_route_contexts(app_for(mode, tmp_path).routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.path.startswith("/heroes/"):
            [method] = list(route.methods or [])
            open_to_anyone = policy.rule(mode, method, route.path) is ANYONE
            assert (route.dependant.dependencies == []) == open_to_anyone, (method, route.path)


@pytest.mark.parametrize("mode", MODES)
def test_whose_items_fails_closed_when_its_guard_did_not_run(
    tmp_path: Path, mode: AuthMode
) -> None:
    """`ItemOwner` under `OWN_ITEMS` is what its guard recorded; with nothing recorded it is an
    error, never every item. Under any other rule, every item."""
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'owner.db'}", auth_mode=mode))
    [route] = [
        route
        for route in app.routes
        if isinstance(route, APIRoute) and route.path == "/items/" and route.methods == {"GET"}
    ]
    request = Request({"type": "http", "method": "GET", "app": app, "route": route})
    if policy.rule(mode, "GET", "/items/") is policy.OWN_ITEMS:
        with pytest.raises(LookupError, match="guard did not run"):
            asyncio.run(policy.item_owner(request))
        request.state.item_owner = 7
        assert asyncio.run(policy.item_owner(request)) == 7
    else:
        assert asyncio.run(policy.item_owner(request)) is None

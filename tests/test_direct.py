"""The reads of heroes, users and items answer plain requests on the fast path
(routes/direct.py): the same bytes as FastAPI's own handling, which still gets everything else;
and only where anyone may read (an `ANYONE` rule), never past a rule's guard."""

import inspect
from collections.abc import Callable
from typing import Any, Final

import httpx2 as httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from heroapi import crud
from heroapi.db import DatabaseUnavailable
from heroapi.models import ID_MAX
from heroapi.routes import items, users
from heroapi.routes.direct import plain_int, plain_query
from heroapi.routes.heroes import fast_read_hero, fast_read_heroes, read_hero, read_heroes
from heroapi.routes.lists import FastList
from heroapi.routes.routing import Route
from tests.support import add_items, add_users

PAGE_DEFAULTS: Final = fast_read_heroes.defaults
PAGE_MAXIMA: Final = fast_read_heroes.maxima
# Every fast answer, and the handler whose answers it gives.
FAST_ANSWERS: Final[dict[Any, Callable[..., Any]]] = {
    fast_read_hero: read_hero,
    fast_read_heroes: read_heroes,
    users.fast_read_user: users.read_user,
    users.fast_read_users: users.read_users,
    items.fast_read_item: items.read_item,
    items.fast_read_items: items.read_items,
}

# Plain requests (answered directly) and their awkward neighbours (handled by FastAPI).
ONE_HERO = [
    "/heroes/{first}",
    "/heroes/{last}",
    "/heroes/{missing}",
    "/heroes/0",
    "/heroes/-1",
    "/heroes/0{first}",
    "/heroes/+{first}",
    "/heroes/{first}.0",
    "/heroes/{first}_0",
    "/heroes/%20{first}",
    "/heroes/%D9%A1",  # ARABIC-INDIC DIGIT ONE: a digit to str.isdigit(), not to an id
    "/heroes/1e3",
    f"/heroes/{ID_MAX}",
    f"/heroes/{ID_MAX + 1}",
    "/heroes/99999999999999999999999",
    "/heroes/abc",
]
PAGES = [
    "/heroes/",
    "/heroes/?offset=1&limit=2",
    "/heroes/?limit=2&offset=1",
    "/heroes/?limit=0",
    "/heroes/?limit=100",
    "/heroes/?limit=101",
    "/heroes/?offset=-1",
    "/heroes/?offset=01",
    f"/heroes/?offset={ID_MAX}",
    f"/heroes/?offset={ID_MAX + 1}",
    "/heroes/?limit=2&limit=1",
    "/heroes/?offset=1&unknown=2",
    "/heroes/?limit=",
    "/heroes/?limit",
    "/heroes/?offset=1&",
    "/heroes/?OFFSET=1",
    "/heroes/?limit=%31",
    "/heroes/?limit=1%26offset=2",
]
# The same for users and items, whose lists page by `skip`.
OTHERS = [
    "/users/{user}",
    "/users/{missing}",
    "/users/0{user}",
    "/users/0",
    "/users/abc",
    "/users/",
    "/users/?skip=1&limit=1",
    "/users/?skip=-1",
    "/users/?limit=101",
    "/users/?offset=1",
    "/users/?skip=1&skip=2",
    "/items/{item}",
    "/items/{missing}",
    "/items/+{item}",
    f"/items/{ID_MAX + 1}",
    "/items/",
    "/items/?skip=2&limit=2",
    "/items/?limit=2&skip=01",
    "/items/?limit=",
    "/items/?title_prefix=P",
]


@pytest.fixture
def heroes(client: TestClient) -> dict[str, int]:
    ids = [
        client.post("/heroes/", json={"name": f"Hero {n}", "secret_name": "s", "age": n}).json()[
            "id"
        ]
        for n in range(3)
    ]
    return {"first": ids[0], "last": ids[-1], "missing": ids[-1] + 1000}


@pytest.fixture
def accounts(client: TestClient) -> dict[str, int]:
    """Two users, the first with three items (one without a description)."""
    first, _ = add_users(client, ["one@example.com", "two@example.com"])
    item_ids = add_items(client, first, ["Portal Gun", "Plumbus", "Meeseeks Box"])
    return {"user": first, "item": item_ids[1], "missing": 10**6}


def _without_fast_answers(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, FastAPI handles every request of the app's routes with a fast answer."""
    app: FastAPI = client.app  # type: ignore[assignment]
    for route in app.router.routes:
        if isinstance(route, Route) and route.fast is not None:
            monkeypatch.setattr(route, "fast", None)


def _seen(response: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [(name, value) for name, value in response.headers.raw if name != b"x-request-id"]
    return response.status_code, headers, response.content


@pytest.fixture
def fastapi_calls(client: TestClient) -> list[str]:
    """Paths of the requests that reached FastAPI's own handling of a route with a fast answer."""
    calls: list[str] = []
    app: FastAPI = client.app  # type: ignore[assignment]
    routes = [route for route in app.router.routes if isinstance(route, Route) and route.fast]
    assert {route.fast for route in routes} == set(FAST_ANSWERS)
    for route in routes:

        def counted(handled: Any) -> Any:
            async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
                calls.append(scope["path"] + "?" + scope["query_string"].decode())
                await handled(scope, receive, send)

            return asgi

        route.app = counted(route.app)
    return calls


def test_plain_reads_skip_fastapis_handling_and_the_rest_do_not(
    client: TestClient, heroes: dict[str, int], fastapi_calls: list[str]
) -> None:
    first = heroes["first"]
    for path in (f"/heroes/{first}", "/heroes/", "/heroes/?offset=1&limit=2", "/heroes/?limit=0"):
        assert client.get(path).status_code == 200, path
        assert client.head(path).status_code == 200, path
    assert fastapi_calls == []
    assert client.get(f"/heroes/0{first}").json()["id"] == first
    assert client.get(f"/heroes/{heroes['missing']}").status_code == 404
    assert client.get("/heroes/?limit=101").status_code == 422
    assert client.delete(f"/heroes/{first}").status_code == 200  # another route, same path
    assert fastapi_calls == [
        f"/heroes/0{first}?",
        f"/heroes/{heroes['missing']}?",
        "/heroes/?limit=101",
    ]


def test_plain_reads_of_users_and_items_skip_fastapis_handling_too(
    client: TestClient, accounts: dict[str, int], fastapi_calls: list[str]
) -> None:
    user, item = accounts["user"], accounts["item"]
    for path in (f"/users/{user}", "/users/", f"/items/{item}", "/items/?skip=1&limit=2"):
        assert client.get(path).status_code == 200, path
    assert fastapi_calls == []
    assert client.get(f"/items/0{item}").json()["id"] == item
    assert client.get("/users/?skip=-1").status_code == 422
    assert fastapi_calls == [f"/items/0{item}?", "/users/?skip=-1"]


def test_no_fast_answer_where_a_rule_asks_for_a_token(auth_client: TestClient) -> None:
    """In `required` mode the users' and items' reads are guarded: FastAPI handles them, with
    the guard; only the hero reads, which anyone may make there too, keep their fast answers."""
    app: FastAPI = auth_client.app  # type: ignore[assignment]
    fast = {route.fast for route in app.router.routes if isinstance(route, Route) and route.fast}
    assert fast == {fast_read_hero, fast_read_heroes}
    for path in ("/users/", "/users/1", "/items/", "/items/1"):
        assert auth_client.get(path).status_code == 401, path


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_every_read_answers_as_fastapi_itself_would(
    client: TestClient,
    heroes: dict[str, int],
    accounts: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    method: str,
) -> None:
    """On every backend: status, headers (in order) and body, whichever way a request goes."""
    paths = [path.format(**heroes) for path in ONE_HERO] + PAGES
    paths += [path.format(**accounts) for path in OTHERS]
    direct = [_seen(client.request(method, path)) for path in paths]
    _without_fast_answers(client, monkeypatch)
    for path, seen in zip(paths, direct, strict=True):
        assert seen == _seen(client.request(method, path)), path
    assert {status for status, _, _ in direct} == {200, 404, 422}


def test_a_database_failure_is_answered_as_fastapi_would(
    client: TestClient, heroes: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(*_: Any, **__: Any) -> None:
        raise DatabaseUnavailable("connection refused")

    for name in ("get_hero", "get_item", "get_user_with_items"):
        monkeypatch.setattr(crud, name, unavailable)
    for listing in (crud.HEROES, crud.USERS, crud.ITEMS):
        monkeypatch.setattr(listing, "read", unavailable)
    paths = [f"/heroes/{heroes['first']}", "/heroes/", "/users/1", "/users/", "/items/1", "/items/"]
    direct = [_seen(client.get(path)) for path in paths]
    _without_fast_answers(client, monkeypatch)
    assert direct == [_seen(client.get(path)) for path in paths]
    assert {status for status, _, _ in direct} == {503}


def test_a_fast_answer_refuses_dependencies() -> None:
    async def dependency() -> None:
        return None

    route = Route("/heroes/{hero_id}", read_hero, dependencies=[Depends(dependency)])
    with pytest.raises(TypeError, match="dependencies"):
        route.configure(fast=fast_read_hero, refused_over=None)


@pytest.mark.parametrize(
    "fast", [answer for answer in FAST_ANSWERS if isinstance(answer, FastList)]
)
def test_the_page_rules_are_the_handlers_own(fast: FastList) -> None:
    parameters = inspect.signature(FAST_ANSWERS[fast]).parameters
    assert {name: parameters[name].default for name in fast.defaults} == fast.defaults
    assert set(fast.maxima) == set(fast.defaults)


@pytest.mark.parametrize(
    ("text", "maximum", "expected"),
    [
        ("0", 10, 0),
        ("7", 10, 7),
        ("10", 10, 10),
        ("11", 10, None),
        (b"10", 10, 10),
        ("07", 10, None),
        ("", 10, None),
        ("-1", 10, None),
        ("+1", 10, None),
        (" 1", 10, None),
        ("1_0", 10, None),
        ("\u0661", 10, None),
        ("²", 10, None),
        (str(ID_MAX), ID_MAX, ID_MAX),
        (str(ID_MAX + 1), ID_MAX, None),
        ("1" * 4000, ID_MAX, None),  # refused before int() is asked to read it
    ],
)
def test_plain_int(text: str | bytes, maximum: int, expected: int | None) -> None:
    assert plain_int(text, maximum) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", {"offset": 0, "limit": 100}),
        (b"limit=5", {"offset": 0, "limit": 5}),
        (b"offset=3&limit=5", {"offset": 3, "limit": 5}),
        (b"limit=5&limit=5", None),
        (b"limit=5&", None),
        (b"&limit=5", None),
        (b"limit", None),
        (b"limit=", None),
        (b"limit=101", None),
        (b"page=1", None),
        (b"limit=%35", None),
        (b"li%6Dit=5", None),
    ],
)
def test_plain_query(query: bytes, expected: dict[str, int] | None) -> None:
    assert plain_query(query, PAGE_DEFAULTS, PAGE_MAXIMA) == expected


def test_a_route_tells_a_path_is_not_its_own_as_its_pattern_would(client: TestClient) -> None:
    """`Route.matches` compares the text before the first parameter first: the same answer as
    FastAPI's own matching, for every route and every path, with or without a root path."""
    app: FastAPI = client.app  # type: ignore[assignment]
    routes = [route for route in app.router.routes if isinstance(route, Route)]
    paths = [route.path.replace("{", "7{").split("{")[0] + "7" for route in routes]
    paths += [route.path.replace("{hero_id}", "x").replace("{user_id}", "1") for route in routes]
    paths += ["/", "/heroes", "/heroes/1/", "/users/me/", "/items", "/items/1/x", "/heroesx/"]
    for path in paths:
        for root_path in ("", "/api"):
            for method in ("GET", "POST", "DELETE"):
                scope = {
                    "type": "http",
                    "path": root_path + path,
                    "root_path": root_path,
                    "method": method,
                }
                for route in routes:
                    assert route.matches(scope) == APIRoute.matches(route, scope), (path, route)

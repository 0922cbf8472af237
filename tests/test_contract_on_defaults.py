"""The tutorial's contract on default settings, over HTTP, at the volume and concurrency that one
real client produces.

Each backend's server is `heroapi serve` as a user starts it (`server_on_defaults`): nothing in
its environment but `DATABASE_URL`, so every limit is its default. Every answer is compared with
the tutorial's apps' (status, body, error text), exactly. Each test is one client: all its
requests come from one loopback address of its own (`client_address`), as those of a seeding
script, an admin tool or a backend registering users for browsers do.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

import httpx2 as httpx
import pytest

from tests.server import LiveServer, client_address, client_from

# Also through a transaction-pooling PgBouncer (tests/pooler.py).
THROUGH_POOLER = True

pytestmark = pytest.mark.processes  # every test here talks to `heroapi serve`

T = TypeVar("T")
Json = Any

# What one client has in flight at once: a seeding script's worker pool, a browser's connections.
AT_ONCE = 16
REGISTRATIONS = 1000
# What one client registering users may expect: 1,000 in a minute. Each costs an Argon2 hash,
# ~20 ms of one core: on a quiet 2-core machine the 1,000 take about 8 s (measured).
REGISTRATIONS_WITHIN_SECONDS = 60.0
# A backstop against a hang, not a measure of speed.
REGISTRATIONS_SECONDS = 600
SCENARIO_SECONDS = 180
EMAIL_TAKEN = {"detail": "Email already registered"}
HERO_NOT_FOUND = {"detail": "Hero not found"}
USER_NOT_FOUND = {"detail": "User not found"}


def run(
    server: LiveServer,
    scenario: Callable[[httpx.AsyncClient], Coroutine[Any, Any, None]],
    seconds: float = SCENARIO_SECONDS,
) -> None:
    """`scenario(client)`: one client, at one address of its own, for at most `seconds`."""

    async def bounded() -> None:
        async with client_from(server, client_address(), connections=AT_ONCE) as client:
            await asyncio.wait_for(scenario(client), seconds)

    asyncio.run(bounded())


async def at_once(requests: Iterable[Awaitable[T]], limit: int = AT_ONCE) -> list[T]:
    """The answers to `requests`, sent with up to `limit` in flight."""
    in_flight = asyncio.Semaphore(limit)

    async def one(request: Awaitable[T]) -> T:
        async with in_flight:
            return await request

    return await asyncio.gather(*(one(request) for request in requests))


async def ok(request: Awaitable[httpx.Response]) -> Json:
    response = await request
    assert response.status_code == 200, described(response)
    return response.json()


def described(response: httpx.Response) -> str:
    """A refusal as a message: its status, body, and the limit it names if any."""
    policy = response.headers.get("ratelimit-policy", "")
    return f"{response.status_code} {response.text} {policy}".strip()


def answer(response: httpx.Response) -> tuple[int, Json]:
    return response.status_code, response.json()


async def every_row(client: httpx.AsyncClient, path: str, start: str) -> list[Json]:
    """A whole list, page after page of 100, as a tutorial client walks it."""
    rows: list[Json] = []
    for _ in range(1000):
        page = await ok(client.get(path, params={start: len(rows), "limit": 100}))
        if not page:
            return rows
        rows += page
    raise AssertionError(f"{path} has more than 100,000 rows")


def password_of(email: str) -> str:
    return f"{email} password"


async def register(client: httpx.AsyncClient, email: str) -> Json:
    user = await ok(client.post("/users/", json={"email": email, "password": password_of(email)}))
    assert user == {"email": email, "id": user["id"], "is_active": True, "items": []}
    return user


async def register_all(client: httpx.AsyncClient, emails: list[str]) -> list[Json]:
    """Register `emails`, AT_ONCE at a time; stop at the first answer that is not a 200."""
    users: dict[str, Json] = {}
    refused: list[str] = []
    queue = iter(enumerate(emails, 1))

    async def registrar() -> None:
        for number, email in queue:
            if refused:
                return
            body = {"email": email, "password": password_of(email)}
            response = await client.post("/users/", json=body)
            if response.status_code != 200:
                refused.append(f"registration {number} of {len(emails)}: {described(response)}")
                return
            users[email] = response.json()

    await asyncio.gather(*(registrar() for _ in range(AT_ONCE)))
    assert not refused, refused[0]
    for email, user in users.items():
        assert user == {"email": email, "id": user["id"], "is_active": True, "items": []}
    assert len({user["id"] for user in users.values()}) == len(emails)
    return [users[email] for email in emails]


async def add_items(client: httpx.AsyncClient, users: list[Json]) -> None:
    """0, 1 or 2 items for each of `users` (in turn), added to each one's `items`."""
    wanted = []
    for number, user in enumerate(users):
        for index in range(number % 3):
            item: Json = {"title": f"item {number}.{index}"}
            if index:  # the tutorial's `description` is optional
                item["description"] = f"item {index} of user {number}"
            wanted.append((user, item))
    created = await at_once(
        ok(client.post(f"/users/{user['id']}/items/", json=item)) for user, item in wanted
    )
    for (user, item), answer_ in zip(wanted, created, strict=True):
        assert answer_ == {
            "title": item["title"],
            "description": item.get("description"),
            "id": answer_["id"],
            "owner_id": user["id"],
        }
        user["items"].append(answer_)
    for user in users:
        user["items"].sort(key=lambda item: item["id"])


async def check_users_and_items(
    client: httpx.AsyncClient, users: list[Json], items_before: list[Json]
) -> None:
    """Every way the tutorial reads users and items gives `users` (with their items) back."""
    users = sorted(users, key=lambda user: user["id"])
    stored = await every_row(client, "/users/", "skip")
    assert [user["id"] for user in stored] == sorted(user["id"] for user in stored)
    mine = {user["id"] for user in users}
    assert [user for user in stored if user["id"] in mine] == users
    total = len(stored)
    # Pages at several depths, each asked for once, in an order no cache can anticipate
    # (the first page first, then a deeper one: a page's nested items are its own).
    for skip in (0, 37, total // 2, total - 10, 3, total - 1, total, total + 100):
        page = await ok(client.get("/users/", params={"skip": skip, "limit": 10}))
        assert page == stored[skip : skip + 10], f"skip={skip}"
    assert await ok(client.get("/users/")) == stored[:100]  # the defaults: skip 0, limit 100
    for user in users[:: max(1, len(users) // 20)]:
        assert await ok(client.get(f"/users/{user['id']}")) == user
    items = await every_row(client, "/items/", "skip")
    new_items = sorted((item for user in users for item in user["items"]), key=lambda i: i["id"])
    assert items == items_before + new_items
    for skip in (0, len(items) // 3, len(items) - 1):
        page = await ok(client.get("/items/", params={"skip": skip, "limit": 7}))
        assert page == items[skip : skip + 7], f"skip={skip}"


def test_a_thousand_users_from_one_address(server_on_defaults: LiveServer) -> None:
    """1,000 registrations from one client, 16 at a time, then their items, duplicates of
    them, and every page of them read back."""

    async def scenario(client: httpx.AsyncClient) -> None:
        items_before = await every_row(client, "/items/", "skip")
        emails = [f"seeded-{number}@example.com" for number in range(REGISTRATIONS)]
        started = time.monotonic()
        users = await register_all(client, emails)
        took = time.monotonic() - started
        assert took <= REGISTRATIONS_WITHIN_SECONDS, f"{REGISTRATIONS} registrations: {took:.1f} s"
        await add_items(client, users)
        again = await at_once(
            client.post("/users/", json={"email": email, "password": "another password"})
            for email in emails[::61]
        )
        assert [answer(response) for response in again] == [(400, EMAIL_TAKEN)] * len(again)
        await check_users_and_items(client, users, items_before)

    run(server_on_defaults, scenario, REGISTRATIONS_SECONDS)


def test_40_registrations_one_after_another_from_one_address(
    server_on_defaults: LiveServer,
) -> None:
    """A client that registers users one at a time, as a signup form's backend does."""

    async def scenario(client: httpx.AsyncClient) -> None:
        for number in range(40):
            try:
                await register(client, f"one-by-one-{number}@example.com")
            except AssertionError as refused:
                raise AssertionError(f"registration {number + 1} of 40: {refused}") from None

    run(server_on_defaults, scenario)


def test_users_registered_by_several_clients(server_on_defaults: LiveServer) -> None:
    """48 users from 8 clients (at 8 addresses, one request at a time each), their items, and
    every page of them read back: the lists on defaults, whatever limits one address has."""

    async def scenario(client: httpx.AsyncClient) -> None:
        items_before = await every_row(client, "/items/", "skip")

        async def one_client(number: int) -> list[Json]:
            async with client_from(server_on_defaults, client_address(), connections=1) as own:
                emails = [f"client-{number}-{index}@example.com" for index in range(6)]
                return [await register(own, email) for email in emails]

        registered = await asyncio.gather(*(one_client(number) for number in range(8)))
        users = sorted((user for users in registered for user in users), key=lambda u: u["id"])
        await add_items(client, users)
        await check_users_and_items(client, users, items_before)

    run(server_on_defaults, scenario)


def test_16_concurrent_registrations_of_one_new_email(server_on_defaults: LiveServer) -> None:
    """The tutorial's answer to a race for one email: one 200, every other one a 400."""

    async def scenario(client: httpx.AsyncClient) -> None:
        body = {"email": "racer@example.com", "password": "correct horse battery"}
        responses = await at_once(client.post("/users/", json=body) for _ in range(AT_ONCE))
        answers = sorted((answer(response) for response in responses), key=lambda a: a[0])
        statuses = [status for status, _ in answers]
        assert statuses == [200] + [400] * 15, answers
        user = answers[0][1]
        expected = {"email": "racer@example.com", "id": user["id"], "is_active": True}
        assert answers == [(200, expected | {"items": []})] + [(400, EMAIL_TAKEN)] * 15
        stored = await every_row(client, "/users/", "skip")
        assert [user for user in stored if user["email"] == "racer@example.com"] == [user]

    run(server_on_defaults, scenario)


def test_16_concurrent_logins_of_16_users_from_one_address(server_on_defaults: LiveServer) -> None:
    """16 people logging in at once behind one address (a NAT, a backend): all get in."""

    async def scenario(client: httpx.AsyncClient) -> None:
        emails = [f"colleague-{number}@example.com" for number in range(AT_ONCE)]
        users = [await register(client, email) for email in emails]
        responses = await at_once(
            client.post(
                "/login/access-token", data={"username": email, "password": password_of(email)}
            )
            for email in emails
        )
        tokens = []
        for response in responses:
            assert response.status_code == 200, described(response)
            token = response.json()
            assert token == {
                "access_token": token["access_token"],
                "token_type": "bearer",
                "expires_in": 15 * 60,
                "refresh_token": token["refresh_token"],
            }
            tokens.append(token["access_token"])
        mine = await at_once(
            ok(client.get("/users/me", headers={"Authorization": f"Bearer {token}"}))
            for token in tokens
        )
        assert mine == users

    run(server_on_defaults, scenario)


def test_bursts_of_16_hero_requests(server_on_defaults: LiveServer) -> None:
    """16 creates, reads, patches and deletes at once, each answered as the tutorial does."""

    async def scenario(client: httpx.AsyncClient) -> None:
        bodies = [
            {"name": f"Burst Hero {number}", "secret_name": f"Burst {number}", "age": number}
            for number in range(AT_ONCE)
        ]
        heroes = await at_once(ok(client.post("/heroes/", json=body)) for body in bodies)
        assert heroes == [
            {"name": body["name"], "age": body["age"], "id": hero["id"]}
            for body, hero in zip(bodies, heroes, strict=True)
        ]
        assert len({hero["id"] for hero in heroes}) == AT_ONCE
        paths = [f"/heroes/{hero['id']}" for hero in heroes]
        assert await at_once(ok(client.get(path)) for path in paths) == heroes

        patched = [hero | {"name": hero["name"] + " II", "age": None} for hero in heroes]
        renames = (
            ok(client.patch(path, json={"name": hero["name"], "age": None}))
            for path, hero in zip(paths, patched, strict=True)
        )
        assert await at_once(renames) == patched
        # 16 patches of one hero at once: each is answered, and one of them is what stays.
        ages = await at_once(
            ok(client.patch(paths[0], json={"age": age})) for age in range(100, 116)
        )
        assert ages == [patched[0] | {"age": age} for age in range(100, 116)]
        final = await ok(client.get(paths[0]))
        assert final in ages

        deleted = await at_once(client.delete(path) for path in paths)
        assert [answer(response) for response in deleted] == [(200, {"ok": True})] * AT_ONCE
        for gone in (
            await at_once(client.get(path) for path in paths),
            await at_once(client.patch(path, json={"age": 1}) for path in paths),
            await at_once(client.delete(path) for path in paths),
        ):
            assert [answer(response) for response in gone] == [(404, HERO_NOT_FOUND)] * AT_ONCE

        # 16 deletes of one hero at once: it is deleted once; the others find no hero.
        hero = await ok(client.post("/heroes/", json=bodies[0]))
        path = f"/heroes/{hero['id']}"
        answers = [
            answer(response) for response in await at_once(client.delete(path) for _ in paths)
        ]
        assert (
            sorted(answers, key=lambda a: a[0])
            == [(200, {"ok": True})] + [(404, HERO_NOT_FOUND)] * 15
        )

    run(server_on_defaults, scenario)


def test_the_hero_tutorial(server_on_defaults: LiveServer) -> None:
    """The Hero API as the tutorial walks through it: create, read, list, update, delete."""

    async def scenario(client: httpx.AsyncClient) -> None:
        before = await every_row(client, "/heroes/", "offset")
        bodies: list[Json] = [
            {"name": "Deadpond", "secret_name": "Dive Wilson"},
            {"name": "Spider-Boy", "secret_name": "Pedro Parqueador"},
            {"name": "Rusty-Man", "secret_name": "Tommy Sharp", "age": 48},
            {"name": "Tarantula", "secret_name": "Natalia Roman-on", "age": 32},
            {"name": "Black Lion", "secret_name": "Trevor Challa", "age": 35},
        ]
        heroes = []
        for body in bodies:
            hero = await ok(client.post("/heroes/", json=body | {"id": 1}))  # `id` is not taken
            assert hero == {"name": body["name"], "age": body.get("age"), "id": hero["id"]}
            heroes.append(hero)
        assert [hero["id"] for hero in heroes] == sorted(hero["id"] for hero in heroes)
        for hero in heroes:
            assert await ok(client.get(f"/heroes/{hero['id']}")) == hero

        start = len(before)
        for offset, limit in ((start, 2), (start + 2, 2), (start + 4, 2), (start, 100)):
            page = await ok(client.get("/heroes/", params={"offset": offset, "limit": limit}))
            assert page == heroes[offset - start : offset - start + limit]
        assert await ok(client.get("/heroes/", params={"offset": start + 5})) == []
        assert await ok(client.get("/heroes/", params={"limit": 0})) == []
        assert await ok(client.get("/heroes/")) == (before + heroes)[:100]

        rusty = f"/heroes/{heroes[2]['id']}"
        for changes, expected in (
            ({"age": 49}, heroes[2] | {"age": 49}),
            ({"name": "Rusty-Man II"}, heroes[2] | {"name": "Rusty-Man II", "age": 49}),
            ({"secret_name": "Tommy Sharper"}, heroes[2] | {"name": "Rusty-Man II", "age": 49}),
            ({}, heroes[2] | {"name": "Rusty-Man II", "age": 49}),
            ({"age": None}, heroes[2] | {"name": "Rusty-Man II", "age": None}),
        ):
            assert await ok(client.patch(rusty, json=changes)) == expected
            assert await ok(client.get(rusty)) == expected

        assert answer(await client.delete(rusty)) == (200, {"ok": True})
        assert answer(await client.get(rusty)) == (404, HERO_NOT_FOUND)
        assert answer(await client.patch(rusty, json={"age": 1})) == (404, HERO_NOT_FOUND)
        assert answer(await client.delete(rusty)) == (404, HERO_NOT_FOUND)
        remaining = heroes[:2] + heroes[3:]
        assert await ok(client.get("/heroes/", params={"offset": start})) == remaining

        assert answer(await client.get("/heroes/", params={"limit": 101})) == (
            422,
            {
                "detail": [
                    {
                        "type": "less_than_equal",
                        "loc": ["query", "limit"],
                        "msg": "Input should be less than or equal to 100",
                        "input": "101",
                        "ctx": {"le": 100},
                    }
                ]
            },
        )
        assert answer(await client.get("/heroes/Deadpond")) == (
            422,
            {
                "detail": [
                    {
                        "type": "int_parsing",
                        "loc": ["path", "hero_id"],
                        "msg": "Input should be a valid integer, unable to parse string as an "
                        "integer",
                        "input": "Deadpond",
                    }
                ]
            },
        )

    run(server_on_defaults, scenario)


def test_the_users_and_items_tutorial(server_on_defaults: LiveServer) -> None:
    """The older tutorial's Users/Items API: register, read, items, lists, missing users."""

    async def scenario(client: httpx.AsyncClient) -> None:
        users_before = await every_row(client, "/users/", "skip")
        items_before = await every_row(client, "/items/", "skip")
        body = {"email": "deadpool@example.com", "password": "chimichangas4life"}
        user = await ok(client.post("/users/", json=body))
        assert user == {"email": body["email"], "id": user["id"], "is_active": True, "items": []}
        assert answer(await client.post("/users/", json=body)) == (400, EMAIL_TAKEN)
        assert await ok(client.get(f"/users/{user['id']}")) == user
        missing = max(other["id"] for other in [*users_before, user]) + 1000
        assert answer(await client.get(f"/users/{missing}")) == (404, USER_NOT_FOUND)

        path = f"/users/{user['id']}/items/"
        gun = await ok(client.post(path, json={"title": "Portal Gun"}))
        assert gun == {"title": "Portal Gun", "description": None, "id": gun["id"]} | {
            "owner_id": user["id"]
        }
        body = {"title": "Plumbus", "description": "A regular plumbus"}
        plumbus = await ok(client.post(path, json=body))
        assert plumbus == body | {"id": plumbus["id"], "owner_id": user["id"]}
        user["items"] = [gun, plumbus]
        assert await ok(client.get(f"/users/{user['id']}")) == user
        skip = len(users_before)
        assert await ok(client.get("/users/", params={"skip": skip})) == [user]
        skip = len(items_before)
        assert await ok(client.get("/items/", params={"skip": skip})) == [gun, plumbus]
        assert answer(await client.get("/users/deadpool")) == (
            422,
            {
                "detail": [
                    {
                        "type": "int_parsing",
                        "loc": ["path", "user_id"],
                        "msg": "Input should be a valid integer, unable to parse string as an "
                        "integer",
                        "input": "deadpool",
                    }
                ]
            },
        )

    run(server_on_defaults, scenario)

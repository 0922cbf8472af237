"""Lists (issue 17) over HTTP, on every backend: GET /heroes/, /users/ and /items/ filtered,
sorted by `order=` and counted (`Prefer: count=...`), and how the OpenAPI document declares it.
Paging by cursor and the `Link` headers are in test_cursors.py; what the lists refuse, in
test_list_refusals.py."""

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Connection, text

from heroapi import crud
from heroapi.config import parse_database_url
from heroapi.db import Database
from tests.conftest import app_database
from tests.databases import run_sync
from tests.support import (
    PASSWORD,
    SECOND,
    T0,
    Params,
    add_heroes,
    add_items,
    add_users,
    listed,
    login,
    make_superuser,
    set_times,
    varies_by_prefer,
)

# ---------------------------------------------------------------------------- hero filters

HEROES: list[tuple[str, int | None]] = [
    ("Deadpond", None),
    ("Deadpond ", 30),  # trailing space: a different name
    ("Spider-Boy", None),
    ("Rusty-Man", 48),
    ("Spider-Youngster", 16),
    ("spider-woman", 16),
    ("50% Man", 30),
    ("500 Man", 30),
    ("A_b", 20),
    ("Axb", 20),
    ("Z\U0010ffff tail", 1),
    ("Za", 2),
    ("\U0010ffff\U0010ffff", 3),
]


@pytest.fixture
def heroes(client: TestClient) -> dict[str, int]:
    """HEROES in the database: id by name."""
    return dict(zip([name for name, _ in HEROES], add_heroes(client, HEROES), strict=True))


def heroes_where(heroes: dict[str, int], *names: str) -> list[int]:
    return sorted(heroes[name] for name in names)


HERO_FILTER_CASES: list[tuple[dict[str, str | int], list[str]]] = [
    ({"name": "Deadpond"}, ["Deadpond"]),
    ({"name": "deadpond"}, []),  # case-sensitive
    ({"name": "Deadpond "}, ["Deadpond "]),
    ({"name": "Spider"}, []),
    ({"name_prefix": "Spider-"}, ["Spider-Boy", "Spider-Youngster"]),
    ({"name_prefix": "spider"}, ["spider-woman"]),
    ({"name_prefix": "Deadpond"}, ["Deadpond", "Deadpond "]),
    ({"name_prefix": "50%"}, ["50% Man"]),  # `%` and `_` are characters, not wildcards
    ({"name_prefix": "A_"}, ["A_b"]),
    ({"name_prefix": "Z\U0010ffff"}, ["Z\U0010ffff tail"]),  # the range's end is "["
    ({"name_prefix": "\U0010ffff"}, ["\U0010ffff\U0010ffff"]),  # a range with no end
    ({"age": 16}, ["Spider-Youngster", "spider-woman"]),
    ({"age": 17}, []),
    ({"age_gte": 30}, ["Deadpond ", "Rusty-Man", "50% Man", "500 Man"]),
    ({"age_lte": 2}, ["Z\U0010ffff tail", "Za"]),
    ({"age_gte": 16, "age_lte": 20}, ["Spider-Youngster", "spider-woman", "A_b", "Axb"]),
    ({"age_null": "true"}, ["Deadpond", "Spider-Boy"]),
    ({"age_null": "false", "age_lte": 3}, ["Z\U0010ffff tail", "Za", "\U0010ffff\U0010ffff"]),
    ({"name_prefix": "Spider", "age_null": "false"}, ["Spider-Youngster"]),
    ({"name_prefix": "Spider", "age": 16, "age_null": "true"}, []),
    ({"name": "Deadpond", "age_null": "false"}, []),
]


@pytest.mark.parametrize(
    ("params", "names"),
    HERO_FILTER_CASES,
    ids=[
        "&".join(f"{name}={value}" for name, value in params.items())
        for params, _ in HERO_FILTER_CASES
    ],
)
def test_hero_filters(
    client: TestClient, heroes: dict[str, int], params: Params, names: list[str]
) -> None:
    assert listed(client, "/heroes/", params) == heroes_where(heroes, *names)


def test_filters_with_order_offset_and_count(client: TestClient, heroes: dict[str, int]) -> None:
    """Filters apply to the ordered list, its offset pages and its count alike."""
    params: dict[str, str | int] = {"age_gte": 16, "order": "-age,name"}
    expected = [heroes[name] for name in ("Rusty-Man", "50% Man", "500 Man", "Deadpond ")]
    expected += [heroes[name] for name in ("A_b", "Axb", "Spider-Youngster", "spider-woman")]
    assert listed(client, "/heroes/", params) == expected
    exact = {"Prefer": "count=exact"}
    for offset in range(0, 9, 3):
        page = client.get("/heroes/", params=params | {"offset": offset, "limit": 3}, headers=exact)
        assert [row["id"] for row in page.json()] == expected[offset : offset + 3]
        assert page.headers["x-total-count"] == "8"


# ---------------------------------------------------------------------------- time filters


def test_created_filters_are_strict_and_read_naive_times_as_utc(
    client: TestClient, database_url: str
) -> None:
    first, second, third = add_heroes(client, [("First", 1), ("Second", 2), ("Third", 3)])
    set_times(database_url, "hero", "created_at", {first: T0, second: T0 + SECOND})
    set_times(database_url, "hero", "created_at", {third: T0 + 2 * SECOND})
    half_ms = timedelta(microseconds=500)

    def created(**params: str) -> list[int]:
        return listed(client, "/heroes/", params)

    assert created(created_after="2020-01-01T00:00:00") == [second, third]  # naive: UTC
    assert created(created_after="2020-01-01T00:00:00Z") == [second, third]
    assert created(created_after="2020-01-01T01:00:00+01:00") == [second, third]
    assert created(created_after="2019-12-31T19:00:00-05:00") == [second, third]
    assert created(created_after="2020-01-01T00:00:00+01:00") == [first, second, third]
    assert created(created_after=(T0 - half_ms).isoformat()) == [first, second, third]
    assert created(created_after=(T0 + half_ms).isoformat()) == [second, third]
    assert created(created_before="2020-01-01T00:00:02") == [first, second]
    assert created(created_before=(T0 + 2 * SECOND + half_ms).isoformat()) == [
        first,
        second,
        third,
    ]
    assert created(created_before=(T0 + half_ms).isoformat()) == [first]
    assert created(created_before=T0.isoformat()) == []
    between = {"created_after": "2020-01-01T00:00:00", "created_before": "2020-01-01T00:00:02"}
    assert created(**between) == [second]
    # Moments far from the stored ones, which compare as times (not as text, nor clipped to a
    # TIMESTAMP's range).
    for early in ("0001-01-01T00:00:00", "0999-06-01T00:00:00", "1969-12-31T23:59:59Z"):
        assert created(created_after=early) == [first, second, third], early
        assert created(created_before=early) == [], early
    for late in ("2106-02-08T00:00:00", "9999-12-31T23:59:59.999"):
        assert created(created_before=late) == [first, second, third], late
        assert created(created_after=late) == [], late


def test_updated_after_finds_the_row_just_patched(client: TestClient, database_url: str) -> None:
    ids = add_heroes(client, [("First", 1), ("Second", 2), ("Third", 3)])
    set_times(database_url, "hero", "updated_at", dict.fromkeys(ids, T0))
    assert client.patch(f"/heroes/{ids[1]}", json={"age": 20}).status_code == 200
    moment = T0.isoformat()
    assert listed(client, "/heroes/", {"updated_after": moment}) == [ids[1]]
    assert listed(client, "/heroes/", {"updated_before": moment}) == []
    later = (T0 + SECOND).isoformat()
    assert listed(client, "/heroes/", {"updated_before": later}) == [ids[0], ids[2]]
    # With the other filters, an order and a count.
    params: dict[str, str | int] = {"updated_after": moment, "age_gte": 2, "order": "-updated_at"}
    response = client.get("/heroes/", params=params, headers={"Prefer": "count=exact"})
    assert [row["id"] for row in response.json()] == [ids[1]]
    assert response.headers["x-total-count"] == "1"


def test_every_list_filters_by_its_timestamps(client: TestClient, database_url: str) -> None:
    owner, other = add_users(client, ["old@example.com", "new@example.com"])
    set_times(database_url, "users", "created_at", {owner: T0, other: T0 + SECOND})
    old_item, new_item = add_items(client, owner, ["Old", "New"])
    set_times(database_url, "items", "created_at", {old_item: T0, new_item: T0 + SECOND})
    set_times(database_url, "items", "updated_at", {old_item: T0, new_item: T0 + SECOND})
    moment = "2020-01-01T00:00:00.5"
    assert listed(client, "/users/", {"created_after": moment}) == [other]
    assert listed(client, "/users/", {"created_before": moment}) == [owner]
    assert listed(client, "/items/", {"created_after": moment}) == [new_item]
    assert listed(client, "/items/", {"created_before": moment}) == [old_item]
    assert listed(client, "/items/", {"updated_after": moment}) == [new_item]
    assert listed(client, "/items/", {"updated_before": moment}) == [old_item]
    response = client.patch(f"/items/{old_item}", json={"title": "Old, renamed"})
    assert response.status_code == 200, response.text
    assert listed(client, "/items/", {"updated_after": moment}) == [old_item, new_item]


# ---------------------------------------------------------------------------- users and items


def test_user_filters(client: TestClient) -> None:
    someone, other, inactive = add_users(
        client, ["someone@example.com", "Other@Example.org", "gone@example.com"]
    )

    async def deactivate(database: Database) -> None:
        changed = await crud.update_user(
            database=database, user_id=inactive, changes={"is_active": False}
        )
        assert changed is not None

    app_database(client, deactivate)
    # Compared as the login compares it.
    assert listed(client, "/users/", {"email": "someone@example.com"}) == [someone]
    assert listed(client, "/users/", {"email": "Someone@Example.COM"}) == [someone]
    assert listed(client, "/users/", {"email": "other@example.org"}) == [other]
    assert listed(client, "/users/", {"email": "someone@example.co"}) == []
    exact = {"Prefer": "count=exact"}
    for address in ("not-an-email", "", "someone@"):
        response = client.get("/users/", params={"email": address}, headers=exact)
        assert response.status_code == 200, response.text
        assert response.json() == []
        assert response.headers["x-total-count"] == "0"
    assert listed(client, "/users/", {"is_active": "true"}) == [someone, other]
    assert listed(client, "/users/", {"is_active": "false"}) == [inactive]
    assert listed(client, "/users/", {"is_active": "false", "email": "gone@example.com"}) == [
        inactive
    ]
    assert listed(client, "/users/", {"is_active": "true", "email": "gone@example.com"}) == []
    by_email = listed(client, "/users/", {"order": "email", "is_active": "true"})
    assert by_email == [other, someone]  # "O" before "s", by code point


def test_item_filters(client: TestClient) -> None:
    alice, bob = add_users(client, ["alice@example.com", "bob@example.com"])
    gun, gunk, pig = add_items(client, alice, ["Portal Gun", "Portal Gunk", "pig"])
    bobs = add_items(client, bob, ["Portal Gun", "Bag_of holding"])
    assert listed(client, "/items/", {"owner_id": alice}) == [gun, gunk, pig]
    assert listed(client, "/items/", {"owner_id": bob}) == bobs
    assert listed(client, "/items/", {"owner_id": bob + 1000}) == []
    assert listed(client, "/items/", {"title_prefix": "Portal Gun"}) == [gun, gunk, bobs[0]]
    assert listed(client, "/items/", {"title_prefix": "Portal Gunk"}) == [gunk]
    assert listed(client, "/items/", {"title_prefix": "portal"}) == []
    assert listed(client, "/items/", {"title_prefix": "Bag_"}) == [bobs[1]]
    assert listed(client, "/items/", {"title_prefix": "Portal", "owner_id": bob}) == [bobs[0]]
    ordered = listed(client, "/items/", {"order": "-owner_id,title"})
    assert ordered == [bobs[1], bobs[0], gun, gunk, pig]


def test_required_mode_keeps_the_owner_rule_under_filters(auth_client: TestClient) -> None:
    client = auth_client
    admin = make_superuser(client, "admin@example.com")
    ids = []
    for name in ("alice", "bob"):
        body = {"email": f"{name}@example.com", "password": PASSWORD}
        response = client.post("/users/", json=body, headers=admin)
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    alice_id, bob_id = ids
    alices = add_items(client, alice_id, ["Alice's"])
    bobs = add_items(client, bob_id, ["Bob's", "Bob's too"])
    alice = login(client, "alice@example.com")
    exact = {"Prefer": "count=exact"}

    def seen(headers: dict[str, str], params: Params) -> tuple[list[int], str]:
        response = client.get("/items/", params=params, headers=headers | exact)
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()], response.headers["x-total-count"]

    assert seen(alice, {"owner_id": bob_id}) == ([], "0")
    assert seen(alice, {"title_prefix": "Bob"}) == ([], "0")
    assert seen(alice, {"owner_id": alice_id}) == (alices, "1")
    assert seen(alice, {"order": "-id"}) == (alices, "1")
    assert seen(admin, {"owner_id": bob_id}) == (bobs, "2")
    assert seen(admin, {"order": "-id", "limit": 1}) == ([bobs[1]], "3")


# ---------------------------------------------------------------------------- order


def test_order_by_age_descending_then_name(client: TestClient) -> None:
    heroes: list[tuple[str, int | None]] = [
        ("b", 30),
        ("a", None),
        ("c", 30),
        ("a", 30),
        ("b", None),
        ("a", 10),
        ("a", None),
        ("z", 40),
    ]
    ids = add_heroes(client, heroes)
    rows = [(hero_id, name, age) for hero_id, (name, age) in zip(ids, heroes, strict=True)]

    def by(key: Any) -> list[int]:
        return [hero_id for hero_id, _, _ in sorted(rows, key=key)]

    # Descending age with NULL last, then name, then id ascending (the last field's direction).
    expected = by(lambda row: (row[2] is None, -(row[2] or 0), row[1], row[0]))
    assert listed(client, "/heroes/", {"order": "-age,name"}) == expected
    # Ascending age: NULL first; ties by id ascending.
    assert listed(client, "/heroes/", {"order": "age"}) == by(
        lambda row: (row[2] is not None, row[2] or 0, row[0])
    )
    # Descending alone: NULL last, ties by id descending.
    assert listed(client, "/heroes/", {"order": "-age"}) == by(
        lambda row: (row[2] is None, -(row[2] or 0), -row[0])
    )
    assert listed(client, "/heroes/", {"order": "name,-age"}) == by(
        lambda row: (row[1], row[2] is None, -(row[2] or 0), -row[0])
    )
    assert listed(client, "/heroes/", {"order": "-id"}) == sorted(ids, reverse=True)
    assert listed(client, "/heroes/", {"order": " -age , name "}) == expected
    # An order naming id ends there.
    assert listed(client, "/heroes/", {"order": "id,name"}) == sorted(ids)


def test_names_sort_by_code_point(client: TestClient) -> None:
    """The same on every backend (MariaDB needs the binary collation of migration 0005)."""
    names = ["é", "a", "Z", "b", "B", "ä", "Zz", "z", "É", "a "]
    ids = dict(zip(names, add_heroes(client, [(name, None) for name in names]), strict=True))
    expected = [ids[name] for name in sorted(names)]  # Python compares by code point
    assert listed(client, "/heroes/", {"order": "name"}) == expected
    assert listed(client, "/heroes/", {"order": "-name"}) == expected[::-1]
    assert listed(client, "/heroes/", {"name": "a"}) == [ids["a"]]
    assert listed(client, "/heroes/", {"name": "e"}) == []
    assert listed(client, "/heroes/", {"name_prefix": "Z"}) == [ids["Z"], ids["Zz"]]


# ---------------------------------------------------------------------------- counts


def test_counts(client: TestClient) -> None:
    ids = add_heroes(client, [(f"Hero {number}", number % 3 or None) for number in range(12)])
    filters = {"age_null": "false"}  # 8 of the 12

    def answer(params: Params, prefer: str | None) -> Response:
        headers = {} if prefer is None else {"Prefer": prefer}
        response = client.get("/heroes/", params=params, headers=headers)
        assert response.status_code == 200, response.text
        assert varies_by_prefer(response)
        return response

    exact = answer(filters | {"limit": 3}, "count=exact")
    assert exact.headers["x-total-count"] == "8"
    assert len(exact.json()) == 3
    assert exact.headers["preference-applied"] == "count=exact"
    assert (
        answer(filters | {"offset": 6, "limit": 3}, "count=exact").headers["x-total-count"] == "8"
    )
    assert answer({"limit": 1}, "count=exact").headers["x-total-count"] == "12"
    assert answer({"offset": 0, "limit": 1}, "count=exact").headers["x-total-count"] == "12"
    assert answer({"name": "nobody"}, "count=exact").headers["x-total-count"] == "0"
    estimated = answer(filters, "count=estimated")
    assert estimated.headers["preference-applied"] == "count=estimated"
    assert int(estimated.headers["x-total-count"]) >= 0
    none = answer(filters, "count=none")
    assert "x-total-count" not in none.headers
    assert none.headers["preference-applied"] == "count=none"
    for prefer in (None, "count=bogus", "return=minimal", "countless=exact"):
        for params in ({}, {"offset": 0, "limit": 2}, filters):
            response = answer(params, prefer)
            assert "x-total-count" not in response.headers
            assert "preference-applied" not in response.headers
    # Among other preferences, any case, quoted, in a second header line.
    for prefer in ("respond-async, count=exact", 'COUNT="exact"', "count=exact; strict"):
        assert answer(filters, prefer).headers["x-total-count"] == "8"
    response = client.get(
        "/heroes/", headers=[("Prefer", "return=minimal"), ("Prefer", "count=exact")]
    )
    assert response.headers["x-total-count"] == "12"
    # Users and items: the same headers.
    owner = add_users(client, ["counted@example.com"])[0]
    add_items(client, owner, ["One", "Two"])
    for path, total in (("/users/", "1"), ("/items/", "2")):
        response = client.get(path, params={"limit": 1}, headers={"Prefer": "count=exact"})
        assert response.headers["x-total-count"] == total
        assert response.headers["preference-applied"] == "count=exact"
        assert varies_by_prefer(response)
        assert "x-total-count" not in client.get(path).headers
    assert listed(client, "/heroes/", {}) == ids


def test_estimated_count(client: TestClient, database_url: str) -> None:
    """Exact on SQLite's small tables; elsewhere the planner's figure, near after ANALYZE."""
    backend = parse_database_url(database_url).backend
    rows = 400

    def load(connection: Connection) -> None:
        connection.execute(
            text("INSERT INTO hero (name, secret_name, age) VALUES (:name, 'x', :age)"),
            [{"name": f"Hero {number}", "age": number % 50} for number in range(rows)],
        )
        if backend == "postgresql":
            connection.execute(text("ANALYZE hero"))
        elif backend == "mysql":
            connection.execute(text("ANALYZE TABLE hero"))

    run_sync(parse_database_url(database_url), load)
    estimated = {"Prefer": "count=estimated"}
    whole = client.get("/heroes/", params={"limit": 1}, headers=estimated)
    assert whole.headers["preference-applied"] == "count=estimated"
    figure = int(whole.headers["x-total-count"])
    filtered = client.get("/heroes/", params={"age_lte": 9}, headers=estimated)
    part = int(filtered.headers["x-total-count"])
    if backend == "sqlite":
        assert (figure, part) == (rows, 80)
    else:
        assert rows / 4 <= figure <= rows * 4
        assert part >= 0
    # A page long enough to be compressed still says it varies by Prefer.
    compressed = client.get("/heroes/", headers={"Accept-Encoding": "gzip"})
    assert compressed.headers["content-encoding"] == "gzip"
    assert varies_by_prefer(compressed)
    assert len(compressed.json()) == 100


# ---------------------------------------------------------------------------- OpenAPI

FILTER_TYPES = {
    "/heroes/": {
        "name": "string",
        "name_prefix": "string",
        "age": "integer",
        "age_gte": "integer",
        "age_lte": "integer",
        "age_null": "boolean",
    },
    "/users/": {"email": "string", "is_active": "boolean"},
    "/items/": {"owner_id": "integer", "title_prefix": "string"},
}
TIME_FILTERS = ("created_after", "created_before", "updated_after", "updated_before")


def test_openapi_declares_each_filter_order_and_cursor(client: TestClient) -> None:
    """Every parameter of a list, typed; the `Prefer` header; and the headers of its answer
    (so Swagger UI can ask for a count, and a generated client has an argument and a field)."""
    document = client.get("/openapi.json").json()
    for path, filters in FILTER_TYPES.items():
        declared = {
            parameter["name"]: parameter
            for parameter in document["paths"][path]["get"]["parameters"]
        }
        offset = "offset" if path == "/heroes/" else "skip"
        expected = [offset, "limit", *filters, *TIME_FILTERS, "order", "cursor", "prefer"]
        assert sorted(declared) == sorted(expected), path
        for name, parameter in declared.items():
            assert parameter["in"] == ("header" if name == "prefer" else "query")
            assert parameter["required"] is False
            assert parameter["description"], (path, name)
        answered = document["paths"][path]["get"]["responses"]["200"]
        assert set(answered["headers"]) >= {
            "Link",
            "X-Total-Count",
            "X-Total-Count-At-Least",
            "Preference-Applied",
        }, path
        assert answered["headers"]["X-Total-Count"]["schema"]["type"] == "integer"
        assert "schema" in answered["content"]["application/json"], path
        for name in [*filters, *TIME_FILTERS, "order", "cursor"]:
            schema = declared[name]["schema"]
            assert schema["anyOf"][1] == {"type": "null"}, (path, name)
            typed = schema["anyOf"][0]
            if name in TIME_FILTERS:
                assert typed == {"type": "string", "format": "date-time"}, (path, name)
            else:
                assert typed["type"] == filters.get(name, "string"), (path, name)
        # The tutorial's paging parameters, as they were before the filters came.
        for name, maximum, default in ((offset, 2**63 - 1, 0), ("limit", 100, 100)):
            schema = declared[name]["schema"]
            assert schema["type"] == "integer"
            assert (schema["minimum"], schema["maximum"], schema["default"]) == (
                0,
                maximum,
                default,
            )
    heroes = {
        parameter["name"]: parameter["schema"]["anyOf"][0]
        for parameter in document["paths"]["/heroes/"]["get"]["parameters"]
        if "anyOf" in parameter["schema"]
    }
    assert (heroes["age"]["minimum"], heroes["age"]["maximum"]) == (-(2**31), 2**31 - 1)
    assert heroes["name_prefix"]["minLength"] == 1
    assert heroes["name"]["maxLength"] == 255

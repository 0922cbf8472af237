"""Paging lists (issue 17) over HTTP, on every backend: `Link` headers (RFC 8288) to offset
pages for a request with an offset, to cursor pages for any other; walking a list by cursor
in any order, forwards and back, while rows come and go; and the cursors it refuses."""

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from tests.support import (
    SECOND,
    T0,
    Params,
    add_heroes,
    add_items,
    add_users,
    get_ok,
    link_query,
    links,
    listed,
    row_ids,
    set_times,
    varies_by_prefer,
)

# Bounds for every walk through a list: pages, and seconds.
MAX_PAGES = 60
WALK_SECONDS = 30


def walk(client: TestClient, url: str, relation: str = "next") -> list[Response]:
    """Follow `relation` links from `url` until a page has none (bounded)."""
    pages = [get_ok(client, url)]
    deadline = time.monotonic() + WALK_SECONDS
    while relation in links(pages[-1]):
        assert len(pages) < MAX_PAGES, "the walk does not end"
        assert time.monotonic() < deadline, "the walk does not end"
        pages.append(get_ok(client, links(pages[-1])[relation]))
    return pages


def assert_walks_both_ways(
    client: TestClient, path: str, params: Params, expected: list[int]
) -> None:
    """Next links from the first page visit `expected` (more than one page of it) in order,
    each row once; prev links from the last page give the same pages back, in reverse."""
    forward = walk(client, f"{path}?{urlencode(params)}")
    assert len(forward) > 1
    assert [hero for page in forward for hero in row_ids(page)] == expected
    assert "prev" not in links(forward[0])
    assert "next" not in links(forward[-1])
    assert all(page.json() for page in forward)
    backward = walk(client, links(forward[-1])["prev"], "prev")
    assert [row_ids(page) for page in backward] == [row_ids(page) for page in forward[-2::-1]]
    assert [page.json() for page in backward] == [page.json() for page in forward[-2::-1]]
    assert "next" in links(backward[-1])


# ---------------------------------------------------------------------------- offset links


def test_offset_links_keep_the_other_parameters(client: TestClient) -> None:
    ids = add_heroes(client, [(f"Hero {number}", number) for number in range(7)])
    params: dict[str, str | int] = {"age_gte": 1, "order": "-age,name", "limit": 2}
    expected = sorted(ids[1:], reverse=True)

    first = get_ok(client, "/heroes/", params | {"offset": 0})
    assert row_ids(first) == expected[:2]
    assert set(links(first)) == {"next"}
    next_query = link_query(links(first)["next"])
    assert next_query == {
        "age_gte": ["1"],
        "order": ["-age,name"],
        "limit": ["2"],
        "offset": ["2"],
    }
    assert urlsplit(links(first)["next"]).path == "/heroes/"

    middle = get_ok(client, links(first)["next"])
    assert row_ids(middle) == expected[2:4]
    assert link_query(links(middle)["next"])["offset"] == ["4"]
    assert link_query(links(middle)["prev"])["offset"] == ["0"]
    assert link_query(links(middle)["prev"])["order"] == ["-age,name"]

    last = get_ok(client, links(middle)["next"])
    assert row_ids(last) == expected[4:]
    assert set(links(last)) == {"prev"}  # exactly `limit` rows were left: no next
    assert link_query(links(last)["prev"])["offset"] == ["2"]

    # A prev link never goes below 0; past the end, only prev.
    odd = get_ok(client, "/heroes/", params | {"offset": 1})
    assert link_query(links(odd)["prev"])["offset"] == ["0"]
    beyond = get_ok(client, "/heroes/", params | {"offset": 50})
    assert beyond.json() == []
    assert set(links(beyond)) == {"prev"}
    assert link_query(links(beyond)["prev"])["offset"] == ["48"]


def test_offset_links_on_users_and_items_use_skip(client: TestClient) -> None:
    owner, *_ = add_users(client, ["a@example.com", "b@example.com", "c@example.com"])
    add_items(client, owner, ["Portal Gun", "Portal Gunk", "Potion"])
    for path, params in (("/users/", {"order": "-id"}), ("/items/", {"title_prefix": "Portal"})):
        total = len(listed(client, path, params))
        first = get_ok(client, path, params | {"skip": 0, "limit": 1})
        assert set(links(first)) == {"next"}
        query = link_query(links(first)["next"])
        assert query["skip"] == ["1"]
        assert "offset" not in query
        assert all(query[name] == [str(value)] for name, value in params.items())
        pages = walk(client, f"{path}?{urlencode(params | {'skip': 0, 'limit': 1})}")
        assert [hero for page in pages for hero in row_ids(page)] == listed(client, path, params)
        assert len(pages) == total
        assert link_query(links(pages[-1])["prev"])["skip"] == [str(total - 2)]


def test_the_tutorials_page_keeps_its_body(client: TestClient) -> None:
    created = [
        client.post("/heroes/", json={"name": name, "secret_name": "x", "age": age})
        for name, age in (("Deadpond", None), ("Rusty-Man", 48), ("Spider-Boy", None))
    ]
    # Exactly the bytes as before: the rows, as each one reads alone, in a JSON list.
    body = b"[" + b",".join(response.content for response in created) + b"]"
    for url in ("/heroes/", "/heroes/?offset=0&limit=100", "/heroes/?limit=100&offset=0"):
        response = get_ok(client, url)
        assert response.content == body
        assert response.headers["content-type"] == "application/json"
        assert varies_by_prefer(response)
        assert "link" not in response.headers
    paged = get_ok(client, "/heroes/?offset=0&limit=2")
    assert paged.content == b"[" + b",".join(r.content for r in created[:2]) + b"]"
    assert link_query(links(paged)["next"]) == {"limit": ["2"], "offset": ["2"]}


def test_limit_zero_has_no_links(client: TestClient) -> None:
    add_heroes(client, [("Deadpond", None), ("Rusty-Man", 48)])
    for url in ("/heroes/?limit=0", "/heroes/?offset=1&limit=0", "/heroes/?limit=0&order=-age"):
        response = get_ok(client, url)
        assert response.json() == []
        assert "link" not in response.headers
    for path in ("/users/?limit=0", "/items/?skip=1&limit=0"):
        assert "link" not in get_ok(client, path).headers


# ---------------------------------------------------------------------------- cursor walks

# Names and ages with repeats, and NULL ages: ties only `id` breaks.
WALKED: list[tuple[str, int | None]] = [
    ("b", 30),
    ("a", None),
    ("c", 30),
    ("a", 10),
    ("b", None),
    ("z", 40),
    ("a", 30),
    ("c", 10),
    ("b", None),
    ("a", 20),
    ("c", 30),
    ("a", 30),
    ("b", 30),
    ("d", None),
    ("a", 20),
    ("é", 20),
]


@pytest.fixture
def walked(client: TestClient, database_url: str) -> list[tuple[int, str, int | None, int]]:
    """WALKED in the database, created at four moments (many rows share one): (id, name, age,
    the second of the moment it was created)."""
    ids = add_heroes(client, WALKED)
    moments = {hero_id: index % 4 for index, hero_id in enumerate(ids)}
    set_times(
        database_url,
        "hero",
        "created_at",
        {hero_id: T0 + moment * SECOND for hero_id, moment in moments.items()},
    )
    return [
        (hero_id, name, age, moments[hero_id])
        for hero_id, (name, age) in zip(ids, WALKED, strict=True)
    ]


def ordered(rows: Sequence[tuple[int, str, int | None, int]], key: Any) -> list[int]:
    return [row[0] for row in sorted(rows, key=key)]


def null_last_descending(age: int | None) -> tuple[bool, int]:
    return (age is None, -(age or 0))


ORDERS: dict[str, Any] = {
    "": lambda row: row[0],
    "-age,name": lambda row: (*null_last_descending(row[2]), row[1], row[0]),
    "age": lambda row: (row[2] is not None, row[2] or 0, row[0]),
    "-age": lambda row: (*null_last_descending(row[2]), -row[0]),
    "name,-age": lambda row: (row[1], *null_last_descending(row[2]), -row[0]),
    "created_at": lambda row: (row[3], row[0]),
    "-created_at,age": lambda row: (-row[3], row[2] is not None, row[2] or 0, row[0]),
    "-id": lambda row: -row[0],
    # An id direction given explicitly, against the last field's: the cursors must keep it.
    "name,-id": lambda row: (row[1], -row[0]),
    "-age,id": lambda row: (*null_last_descending(row[2]), row[0]),
}


@pytest.mark.parametrize("order", list(ORDERS), ids=[order or "default" for order in ORDERS])
def test_cursor_links_walk_every_row_once_both_ways(
    client: TestClient, walked: list[tuple[int, str, int | None, int]], order: str
) -> None:
    params: dict[str, str | int] = {"limit": 4}
    if order:
        params["order"] = order
    expected = ordered(walked, ORDERS[order])
    assert_walks_both_ways(client, "/heroes/", params, expected)
    # With a filter: the same, over the rows it matches.
    matching = [row for row in walked if row[2] is not None and row[2] >= 20]
    assert_walks_both_ways(
        client, "/heroes/", params | {"age_gte": 20, "limit": 3}, ordered(matching, ORDERS[order])
    )


def test_next_link_of_an_order_with_its_own_id_direction_is_followed(
    client: TestClient,
) -> None:
    """Three heroes named "A" by `order=name,-id`, one a page: each `next` link is accepted
    and gives the next id down; the same cursor sent without `order=` gives the same page."""
    ids = add_heroes(client, [("A", None)] * 3)
    first = get_ok(client, "/heroes/", {"order": "name,-id", "limit": 1})
    second = get_ok(client, links(first)["next"])
    third = get_ok(client, links(second)["next"])
    assert [row_ids(page) for page in (first, second, third)] == [[ids[2]], [ids[1]], [ids[0]]]
    assert "next" not in links(third)
    cursor = link_query(links(first)["next"])["cursor"][0]
    assert row_ids(get_ok(client, "/heroes/", {"cursor": cursor, "limit": 1})) == [ids[1]]


def test_cursor_links_keep_filters_order_and_limit(
    client: TestClient, walked: list[tuple[int, str, int | None, int]]
) -> None:
    params: dict[str, str | int] = {"name_prefix": "a", "order": "-age,name", "limit": 2}
    first = get_ok(client, "/heroes/", params)
    assert set(links(first)) == {"next"}
    query = link_query(links(first)["next"])
    assert set(query) == {"name_prefix", "order", "limit", "cursor"}
    assert (query["name_prefix"], query["order"], query["limit"]) == (["a"], ["-age,name"], ["2"])
    # The cursor carries its order: a link without `order=` reads the same page.
    second = get_ok(client, links(first)["next"])
    bare = get_ok(
        client, "/heroes/", {"name_prefix": "a", "limit": 2, "cursor": query["cursor"][0]}
    )
    assert row_ids(bare) == row_ids(second)
    # Counted, a cursor page still says how many rows the whole filtered list has.
    counted = client.get(links(first)["next"], headers={"Prefer": "count=exact"})
    a_rows = sum(1 for _, name, _, _ in walked if name == "a")
    assert counted.headers["x-total-count"] == str(a_rows)
    assert counted.headers["preference-applied"] == "count=exact"
    assert row_ids(counted) == row_ids(second)
    # A page that happens to end the list has no next link; an empty list has no links at all.
    assert "next" not in links(get_ok(client, "/heroes/", {"name": "d", "limit": 1}))
    assert "link" not in get_ok(client, "/heroes/", {"name": "nobody"}).headers


def test_cursors_of_the_longest_values_are_followed(client: TestClient) -> None:
    """A cursor holds its row's sort values: the longest name, of characters JSON escapes, still
    makes a cursor the list takes back."""
    names = ["\x01" * 255, '"' * 255, "\U0010ffff" * 255, "\\" * 255]
    ids = add_heroes(client, [(name, None) for name in names])
    expected = [hero for _, hero in sorted(zip(names, ids, strict=True))]
    for order in ("name", "-name", "name,-created_at,updated_at,age"):
        pages = walk(client, f"/heroes/?limit=1&order={order}")
        seen = [hero for page in pages for hero in row_ids(page)]
        assert seen == (expected[::-1] if order == "-name" else expected), order


def test_users_and_items_walk_by_cursor(client: TestClient) -> None:
    users = add_users(client, [f"user{number}@example.com" for number in range(5)])
    items: dict[int, list[dict[str, Any]]] = {}
    for number, user in enumerate(users):
        made = add_items(client, user, [f"Item {user}.{index}" for index in range(number % 3)])
        items[user] = [
            {"title": f"Item {user}.{index}", "description": None, "id": item_id, "owner_id": user}
            for index, item_id in enumerate(made)
        ]
    pages = walk(client, "/users/?limit=2&order=-email")
    assert [user for page in pages for user in row_ids(page)] == users[::-1]
    backward = walk(client, links(pages[-1])["prev"], "prev")
    assert [page.json() for page in backward] == [page.json() for page in pages[-2::-1]]
    for page in [*pages, *backward]:  # each user with their own items, on every page
        for user in page.json():
            assert user["items"] == items[user["id"]]
    all_items = [item["id"] for user in users for item in items[user]]
    assert_walks_both_ways(client, "/items/", {"limit": 2}, all_items)
    assert_walks_both_ways(
        client,
        "/items/",
        {"limit": 2, "order": "-owner_id"},
        [item["id"] for user in users[::-1] for item in items[user][::-1]],
    )


def test_a_cursor_stays_a_place_in_the_order(client: TestClient) -> None:
    """The row a cursor was made at may go: the next page is still the rows after its place."""
    ids = add_heroes(client, [(f"Hero {number}", 10 * number) for number in range(6)])
    first = get_ok(client, "/heroes/", {"limit": 2, "order": "-age"})
    assert row_ids(first) == [ids[5], ids[4]]
    for hero_id in (ids[4], ids[3]):
        assert client.delete(f"/heroes/{hero_id}").status_code == 200
    assert client.patch(f"/heroes/{ids[0]}", json={"age": 45}).status_code == 200
    second = get_ok(client, links(first)["next"])
    assert row_ids(second) == [ids[2], ids[1]]
    # Before it: the rows ahead of its place now, the changed one among them.
    assert row_ids(get_ok(client, links(second)["prev"])) == [ids[5], ids[0]]


# ---------------------------------------------------------------------------- concurrent paging


def paged_while_changing(
    client: TestClient, start: str, doomed: list[int], survivors: set[int]
) -> tuple[list[dict[str, Any]], list[int]]:
    """Walk next links from `start` while, between pages, heroes are added (at the start, the
    middle and the end of the orders walked) and heroes in `doomed` deleted: the two first
    still there, and the page's last row if it is doomed. The rows seen, and those deleted."""
    seen: list[dict[str, Any]] = []
    deleted: list[int] = []
    response = get_ok(client, start)
    deadline = time.monotonic() + WALK_SECONDS
    for step in range(MAX_PAGES):
        assert time.monotonic() < deadline, "the walk does not end"
        page = response.json()
        seen += page
        if "next" not in links(response):
            return seen, deleted
        add_heroes(client, [(f"New {step:02d}", 99), (f"New {step:02d}", None), ("Mid", 35)])
        targets = [hero for hero in doomed if hero not in deleted][:2]
        if page and page[-1]["id"] not in survivors and page[-1]["id"] not in deleted:
            targets.append(page[-1]["id"])
        for hero_id in targets:
            assert client.delete(f"/heroes/{hero_id}").status_code == 200
            deleted.append(hero_id)
        response = get_ok(client, links(response)["next"])
    raise AssertionError("the walk does not end")


def sort_key(order: str, hero: dict[str, Any]) -> tuple[Any, ...]:
    if order == "-age,name":
        return (*null_last_descending(hero["age"]), hero["name"], hero["id"])
    return (hero["id"],)


def changing_list(client: TestClient, order: str) -> tuple[set[int], list[int]]:
    """60 heroes (ages with repeats and NULLs); the half that will survive the changes, and the
    others in the list's order, to delete front first (rows a walk has passed, mostly)."""
    initial = [
        (f"Hero {number:02d}", None if number % 5 == 0 else 20 + number % 7) for number in range(60)
    ]
    ids = add_heroes(client, initial)
    survivors = set(ids[::2])
    in_order = listed(client, "/heroes/", {"order": order} if order else {})
    return survivors, [hero for hero in in_order if hero not in survivors]


CHANGED_ORDERS = pytest.mark.parametrize("order", ["", "-age,name"], ids=["default", "-age,name"])


@CHANGED_ORDERS
def test_cursor_paging_under_concurrent_changes(client: TestClient, order: str) -> None:
    """Every row there from start to end is seen exactly once, and no row twice, while rows are
    added and deleted between the pages, in the order asked for."""
    survivors, doomed = changing_list(client, order)
    query = f"&order={order}" if order else ""
    seen, deleted = paged_while_changing(client, f"/heroes/?limit=7{query}", doomed, survivors)
    seen_ids = [hero["id"] for hero in seen]
    assert len(deleted) >= 20  # the changes happened, before and at the cursors' rows
    assert len(seen_ids) == len(set(seen_ids)), "a row was seen twice"
    assert survivors <= set(seen_ids), f"survivors never seen: {survivors - set(seen_ids)}"
    keys = [sort_key(order, hero) for hero in seen]
    assert keys == sorted(keys), "the pages went out of order"


@CHANGED_ORDERS
def test_offset_paging_under_the_same_changes_skips_or_repeats(
    client: TestClient, order: str
) -> None:
    """Why the test above means something: under the same changes, rows shift under the
    offsets, so an offset walk misses survivors (or sees rows twice)."""
    survivors, doomed = changing_list(client, order)
    query = f"&order={order}" if order else ""
    seen, _ = paged_while_changing(client, f"/heroes/?offset=0&limit=7{query}", doomed, survivors)
    seen_ids = [hero["id"] for hero in seen]
    missed = survivors - set(seen_ids)
    repeated = len(seen_ids) - len(set(seen_ids))
    assert missed or repeated

"""What bounds a list request's cost on every backend, on default settings: counts read at most
HEROAPI_COUNT_LIMIT rows and say "at least" past it; an offset under an order other than id is
bounded (HEROAPI_MAX_SORTED_OFFSET), the tutorial's id order is not; and a list with a scope (an
auth rule's owner) is counted from its own rows, never from the planner's figures of the table.
"""

from typing import Final

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from tests.conftest import make_settings, running_app
from tests.rows import add_many_heroes, add_many_items
from tests.support import PASSWORD, add_heroes, login, make_superuser

COUNT_LIMIT: Final = 10_000  # the default
SORTED_OFFSET: Final = 5_000  # the default


def _counted(response: Response) -> tuple[str | None, str | None, str | None]:
    assert response.status_code == 200, response.text
    headers = response.headers
    return (
        headers.get("x-total-count"),
        headers.get("x-total-count-at-least"),
        headers.get("preference-applied"),
    )


def test_a_count_past_the_limit_says_at_least(client: TestClient) -> None:
    add_many_heroes(client, 2 * COUNT_LIMIT)
    exact = {"Prefer": "count=exact"}
    # More rows than the limit: how many at least, and no preference applied (RFC 7240: the
    # exact count was not given).
    at_least = (None, str(COUNT_LIMIT + 1), None)
    assert _counted(client.get("/heroes/", params={"limit": 1}, headers=exact)) == at_least
    assert _counted(client.get("/heroes/", params={"age_gte": 1}, headers=exact)) == at_least
    # Up to the limit, exact (ages are n % 100: 200 rows of each).
    assert _counted(client.get("/heroes/", params={"age": 7}, headers=exact)) == (
        "200",
        None,
        "count=exact",
    )
    # The same page with the count as without it.
    plain = client.get("/heroes/", params={"order": "-age", "limit": 5})
    counted = client.get("/heroes/", params={"order": "-age", "limit": 5}, headers=exact)
    assert counted.json() == plain.json()
    assert counted.headers["link"] == plain.headers["link"]


def test_an_offset_under_another_order_than_id_is_bounded(client: TestClient) -> None:
    add_heroes(client, [("Hero", 1), ("Hero", 2)])
    for order in ("name", "-age", "-age,name", "created_at,-id"):
        allowed = client.get("/heroes/", params={"order": order, "offset": SORTED_OFFSET})
        assert allowed.status_code == 200, allowed.text
        refused = client.get("/heroes/", params={"order": order, "offset": SORTED_OFFSET + 1})
        assert refused.status_code == 422, refused.text
        (error,) = refused.json()["detail"]
        assert error["loc"] == ["query", "offset"]
        assert "HEROAPI_MAX_SORTED_OFFSET" in error["msg"]
        assert "cursor" in error["msg"]
    # The tutorial's order stays unbounded, asked for or not.
    for params in ({}, {"order": "id"}, {"order": "-id"}, {"age_gte": 1}):
        deep = client.get("/heroes/", params={**params, "offset": 10**9})
        assert (deep.status_code, deep.json()) == (200, []), params
    for path, order in (("/users/", "email"), ("/items/", "title")):
        refused = client.get(path, params={"order": order, "skip": SORTED_OFFSET + 1})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["query", "skip"]
        assert client.get(path, params={"skip": 10**9}).json() == []


@pytest.mark.parametrize("unbounded", ["none", "None", ""])
def test_the_sorted_offset_bound_can_be_lifted(database_url: str, unbounded: str) -> None:
    settings = make_settings(database_url, max_sorted_offset=unbounded)
    assert settings.max_sorted_offset is None
    with running_app(settings) as client:
        add_heroes(client, [("Hero", 1)])
        deep = client.get("/heroes/", params={"order": "name", "offset": 10**9})
        assert (deep.status_code, deep.json()) == (200, []), deep.text


def test_a_users_count_depends_on_their_own_rows_only(auth_client: TestClient) -> None:
    """In `required` mode a user's item list is scoped to their own items: no count of it,
    estimated or exact, may depend on anyone else's (a planner's figure is the table's)."""
    client = auth_client
    admin = make_superuser(client, "admin@example.com")
    ids = {}
    for name in ("alice", "bob"):
        body = {"email": f"{name}@example.com", "password": PASSWORD}
        ids[name] = client.post("/users/", json=body, headers=admin).json()["id"]
    bob = login(client, "bob@example.com")
    add_many_items(client, ids["bob"], "note", COUNT_LIMIT + 50)
    add_many_items(client, ids["bob"], "memo", 30)

    def bobs_counts() -> list[tuple[str | None, str | None, str | None]]:
        return [
            _counted(
                client.get("/items/", params=params, headers=bob | {"Prefer": f"count={mode}"})
            )
            for mode in ("estimated", "exact")
            for params in ({"title_prefix": "secret"}, {"title_prefix": "memo"}, {})
        ]

    before = bobs_counts()
    # Bob's own rows: none titled "secret", 30 "memo", more than the limit in all.
    own = [("0", None, "count=exact"), ("30", None, "count=exact"), (None, "10001", None)]
    assert before == own * 2
    add_many_items(client, ids["alice"], "secret", 2_000)
    assert bobs_counts() == before

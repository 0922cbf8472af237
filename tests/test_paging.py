"""Offset paging limits: HEROAPI_MAX_OFFSET caps how deep an offset page may go."""

from typing import Any

from heroapi.config import Settings
from tests.conftest import make_settings, running_app


def assert_offset_refused(response: Any, name: str, maximum: int) -> None:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["type"] == "less_than_equal"
    assert error["loc"] == ["query", name]
    assert error["ctx"] == {"le": maximum}
    assert "HEROAPI_MAX_OFFSET" in error["msg"]


def capped(database_url: str, maximum: int) -> Settings:
    return make_settings(database_url, max_offset=maximum)


def test_max_offset_refuses_deeper_pages_on_every_list(database_url: str) -> None:
    with running_app(capped(database_url, 5)) as client:
        for number in range(3):
            client.post("/heroes/", json={"name": f"h{number}", "secret_name": "s"})
        # At the cap: answered (the direct path and FastAPI's agree).
        assert client.get("/heroes/", params={"offset": 5}).json() == []
        assert client.get("/heroes/", params={"offset": 1, "limit": 1}).json()[0]["name"] == "h1"
        assert client.get("/users/", params={"skip": 5}).status_code == 200
        assert client.get("/items/", params={"skip": 5}).status_code == 200
        # Past it: 422 naming the parameter, on the direct path's query shape too.
        assert_offset_refused(client.get("/heroes/", params={"offset": 6}), "offset", 5)
        assert_offset_refused(client.get("/heroes/", params={"offset": 6, "limit": 2}), "offset", 5)
        assert_offset_refused(client.get("/users/", params={"skip": 6}), "skip", 5)
        assert_offset_refused(client.get("/items/", params={"skip": 6}), "skip", 5)


def test_without_max_offset_any_offset_is_a_page(database_url: str) -> None:
    """The tutorial's behaviour, the default: a deep offset is an empty page, not an error."""
    with running_app(make_settings(database_url)) as client:
        assert client.get("/heroes/", params={"offset": 10**9}).json() == []
        assert client.get("/users/", params={"skip": 10**9}).json() == []

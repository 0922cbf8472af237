"""`Link` URLs are absolute, so a client follows them as they are (`requests.get(url)`), also
behind a trusted proxy (`X-Forwarded-Proto`, `X-Forwarded-Host`) and under a root path; a peer
that is not a trusted proxy cannot choose them."""

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
import requests
from fastapi.testclient import TestClient

from heroapi.main import create_app
from tests.conftest import make_settings, running_app
from tests.server import live_server
from tests.support import add_heroes


def _links(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {str(relation): link["url"] for relation, link in response.links.items()}


def test_links_are_absolute(client: TestClient) -> None:
    add_heroes(client, [(f"Hero {number}", number) for number in range(5)])
    by_offset = _links(client.get("/heroes/", params={"offset": 2, "limit": 2}))
    assert by_offset == {
        "next": "http://testserver/heroes/?limit=2&offset=4",
        "prev": "http://testserver/heroes/?limit=2&offset=0",
    }
    by_cursor = _links(client.get("/heroes/", params={"order": "-age", "limit": 2}))
    assert by_cursor["next"].startswith("http://testserver/heroes/?order=-age&limit=2&cursor=")
    # The plain request the direct route answers, and a port in the Host header.
    plain = client.get("/heroes/?limit=2", headers={"Host": "api.example:8443"})
    assert _links(plain)["next"].startswith("http://api.example:8443/heroes/?limit=2&cursor=")


def test_forwarded_headers_of_a_trusted_proxy_only(database_url: str) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}
    settings = make_settings(database_url, trusted_proxies=["10.0.0.0/8"])
    with running_app(settings) as client:
        add_heroes(client, [("A", 1), ("B", 2)])
    for peer, expected in (
        ("10.1.2.3", "https://api.example/heroes/?limit=1&cursor="),
        ("::ffff:10.1.2.3", "https://api.example/heroes/?limit=1&cursor="),
        ("192.0.2.1", "http://testserver/heroes/?limit=1&cursor="),
    ):
        with TestClient(create_app(settings), client=(peer, 4000)) as proxied:
            response = proxied.get("/heroes/?limit=1", headers=forwarded)
            assert _links(response)["next"].startswith(expected), peer
    # Without trusted proxies, nobody's forwarded headers count.
    with TestClient(create_app(make_settings(database_url)), client=("10.1.2.3", 4000)) as plain:
        response = plain.get("/heroes/?limit=1", headers=forwarded)
        assert _links(response)["next"].startswith("http://testserver/heroes/?")


@pytest.mark.parametrize("host", ["evil.example>; rel=x", "a b", "", "ex ample:80"])
def test_a_host_no_url_can_carry_is_not_echoed(client: TestClient, host: str) -> None:
    add_heroes(client, [("A", 1), ("B", 2)])
    response = client.get("/heroes/?limit=1", headers={"Host": host})
    assert _links(response)["next"].startswith("http://testserver/heroes/?limit=1&cursor=")


def test_links_under_a_root_path(database_url: str) -> None:
    settings = make_settings(database_url)
    with running_app(settings) as client:
        add_heroes(client, [("A", 1), ("B", 2)])
    with TestClient(create_app(settings), root_path="/api") as mounted:
        response = mounted.get("/api/heroes/?limit=1")
        url = _links(response)["next"]
        assert url.startswith("http://testserver/api/heroes/?limit=1&cursor=")
        following = mounted.get(url)
        assert [hero["name"] for hero in following.json()] == ["B"]


# ----------------------------------------------------------------- real clients, real server


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """`heroapi serve` on a new SQLite file, with 250 heroes; its URL."""
    with live_server(f"sqlite:///{tmp_path / 'links.db'}", tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for number in range(250):
                body = {"name": f"Hero {number:03d}", "secret_name": "s", "age": number % 7}
                assert http.post("/heroes/", json=body).status_code == 200
        yield server.url


@pytest.mark.processes
@pytest.mark.parametrize("start", ["/heroes/?limit=40", "/heroes/?order=-age,name&limit=40"])
def test_requests_and_httpx_follow_next_links(served: str, start: str) -> None:
    def walk_with_requests() -> list[int]:
        ids: list[int] = []
        response = requests.get(served + start, timeout=10)
        for _ in range(20):
            assert response.status_code == 200, response.text
            ids += [hero["id"] for hero in response.json()]
            if "next" not in response.links:
                return ids
            response = requests.get(response.links["next"]["url"], timeout=10)
        raise AssertionError("more pages than rows")

    def walk_with_httpx() -> list[int]:
        ids: list[int] = []
        response = httpx.get(served + start, timeout=10)
        for _ in range(20):
            assert response.status_code == 200, response.text
            ids += [hero["id"] for hero in response.json()]
            if "next" not in response.links:
                return ids
            response = httpx.get(response.links["next"]["url"], timeout=10)
        raise AssertionError("more pages than rows")

    walked = walk_with_requests()
    assert sorted(walked) == list(range(1, 251))
    assert walk_with_httpx() == walked


@pytest.mark.processes
def test_behind_a_trusted_proxy_with_heroapi_serve(tmp_path: Path) -> None:
    """As a proxy in front of `heroapi serve` sends them: the public host in `Host` or in
    `X-Forwarded-Host` (with `X-Forwarded-For` too, as nginx is commonly set up: the app reads
    the forwarded headers itself, so it still knows the proxy sent them), the scheme in
    `X-Forwarded-Proto`; the access log names the client, not the proxy."""
    settings = {"trusted_proxies": "127.0.0.1"}
    with live_server(f"sqlite:///{tmp_path / 'proxied.db'}", tmp_path, settings=settings) as live:
        for name in ("A", "B"):
            body = {"name": name, "secret_name": "s"}
            assert httpx.post(f"{live.url}/heroes/", json=body, timeout=10).status_code == 200
        for headers in (
            {"Host": "api.example", "X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.7"},
            {"X-Forwarded-Host": "api.example", "X-Forwarded-Proto": "https"},
            {
                "X-Forwarded-Host": "api.example",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-For": "203.0.113.9, 192.0.2.7",
            },
        ):
            response = httpx.get(f"{live.url}/heroes/?limit=1", headers=headers, timeout=10)
            assert _links(response)["next"].startswith("https://api.example/heroes/?limit=1&")
        client = '"client":"192.0.2.7"'
        assert client in live.log_once_it_has(client)

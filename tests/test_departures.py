"""Each departure from the tutorial on default settings (README, "Departures from the tutorial"),
shown over HTTP against `heroapi serve` as a user starts it (`server_on_defaults`)."""

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy.engine import make_url

from tests.proxy import proxy_to
from tests.server import LiveServer, client_address, live_server
from tests.support import HERO

pytestmark = pytest.mark.processes  # every test here talks to `heroapi serve`

MAX_BIGINT = 2**63 - 1


@pytest.fixture
def client(server_on_defaults: LiveServer) -> Iterator[httpx.Client]:
    """A client of the server on defaults, at an address of its own."""
    transport = httpx.HTTPTransport(local_address=client_address())
    with httpx.Client(base_url=server_on_defaults.url, transport=transport, timeout=60) as http:
        yield http


def answer(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json()


def error_at(response: httpx.Response) -> tuple[int, list[Any]]:
    """A 422's status and the `loc` of each of its errors."""
    return response.status_code, [error["loc"] for error in response.json()["detail"]]


def new_email() -> str:
    return f"someone-{uuid.uuid4().hex[:12]}@example.com"


def new_user(client: httpx.Client) -> Any:
    response = client.post("/users/", json={"email": new_email(), "password": "password"})
    assert response.status_code == 200, response.text
    return response.json()


def test_departure_password_length(client: httpx.Client) -> None:
    for password in ("", "seven77", "x" * 129):
        body = {"email": new_email(), "password": password}
        assert error_at(client.post("/users/", json=body)) == (422, [["body", "password"]])
    for password in ("8 chars!", "x" * 128):
        body = {"email": new_email(), "password": password}
        assert client.post("/users/", json=body).status_code == 200


def test_departure_emails_are_validated_and_normalized(client: httpx.Client) -> None:
    for email in ("not-an-email", "@example.com", "someone@", "a" * 300 + "@example.com"):
        body = {"email": email, "password": "password"}
        assert error_at(client.post("/users/", json=body)) == (422, [["body", "email"]])
    local = f"Someone-{uuid.uuid4().hex[:12]}"
    user = client.post("/users/", json={"email": f"{local}@Example.COM", "password": "password"})
    assert answer(user)[1]["email"] == f"{local}@example.com"  # the domain in its IDNA form
    again = {"email": f"{local.lower()}@example.com", "password": "password"}
    assert answer(client.post("/users/", json=again)) == (
        400,
        {"detail": "Email already registered"},
    )


def test_departure_item_for_a_missing_user(client: httpx.Client) -> None:
    items = client.get("/items/", params={"limit": 100, "order": "-id"}).json()
    missing = new_user(client)["id"] + 1000
    response = client.post(f"/users/{missing}/items/", json={"title": "orphan"})
    assert answer(response) == (404, {"detail": "User not found"})
    assert client.get("/items/", params={"limit": 100, "order": "-id"}).json() == items


def test_departure_values_the_tutorial_would_store(client: httpx.Client) -> None:
    for changes, field in (
        ({"age": -1}, "age"),
        ({"age": 2**31}, "age"),
        ({"name": "x" * 256}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"secret_name": "x" * 256}, "secret_name"),
    ):
        response = client.post("/heroes/", json=HERO | changes)
        assert error_at(response) == (422, [["body", field]])
    hero = client.post("/heroes/", json=HERO | {"name": "x" * 255, "age": 2**31 - 1})
    assert hero.status_code == 200
    owner = new_user(client)["id"]
    for item, field in (
        ({"title": "x" * 256}, "title"),
        ({"title": "Portal Gun", "description": "x" * 2001}, "description"),
    ):
        response = client.post(f"/users/{owner}/items/", json=item)
        assert error_at(response) == (422, [["body", field]])


def test_departure_422_where_the_tutorial_answers_500(client: httpx.Client) -> None:
    hero = client.post("/heroes/", json=HERO).json()
    for field in ("name", "secret_name"):
        response = client.patch(f"/heroes/{hero['id']}", json={field: None})
        assert error_at(response) == (422, [["body", field]])
    for path in ("/heroes", "/users"):
        response = client.get(f"{path}/{MAX_BIGINT + 1}")
        assert response.status_code == 404, response.text
    start = {"/heroes/": "offset", "/users/": "skip", "/items/": "skip"}
    for path, name in start.items():
        for value in (-1, MAX_BIGINT + 1):
            response = client.get(path, params={name: value})
            assert error_at(response) == (422, [["query", name]])


def test_departure_list_limits(client: httpx.Client) -> None:
    for path in ("/heroes/", "/users/", "/items/"):
        for limit in (-1, 101):
            response = client.get(path, params={"limit": limit})
            assert error_at(response) == (422, [["query", "limit"]])
        assert client.get(path, params={"limit": 100}).status_code == 200


def test_departure_list_parameters(client: httpx.Client) -> None:
    name = f"Filtered {uuid.uuid4().hex[:8]}"
    hero = client.post("/heroes/", json=HERO | {"name": name}).json()
    assert client.get("/heroes/", params={"name": name}).json() == [hero]
    response = client.get("/heroes/", params={"age_gt": 3})
    assert error_at(response) == (422, [["query", "age_gt"]])
    # Parameters that read as no filter are still ignored, as in the tutorial.
    assert client.get("/heroes/", params={"name": name, "utm_source": "x"}).json() == [hero]


def test_departure_lists_in_id_order(client: httpx.Client) -> None:
    heroes = [client.post("/heroes/", json=HERO).json() for _ in range(4)]
    for hero in heroes[:2]:  # on PostgreSQL an update moves the row to the end of its table
        hero |= client.patch(f"/heroes/{hero['id']}", json={"age": 30}).json()
    listed: list[Any] = []
    while page := client.get("/heroes/", params={"offset": len(listed)}).json():
        listed += page
    assert [hero["id"] for hero in listed] == sorted(hero["id"] for hero in listed)
    assert [hero for hero in listed if hero in heroes] == heroes


def test_departure_ids_are_never_reused(client: httpx.Client) -> None:
    newest = client.post("/heroes/", json=HERO).json()
    assert client.delete(f"/heroes/{newest['id']}").json() == {"ok": True}
    assert client.post("/heroes/", json=HERO).json()["id"] > newest["id"]


def test_departure_422_does_not_echo_secrets(client: httpx.Client) -> None:
    response = client.post("/heroes/", json={"name": "Deadpond"})
    assert response.json()["detail"][0]["input"] == "[redacted]"  # the body, for `secret_name`
    response = client.post("/users/", json={"email": new_email(), "password": "short"})
    assert response.json()["detail"][0]["input"] == "[redacted]"
    response = client.post("/heroes/", json=HERO | {"name": "x" * 1000})
    assert response.json()["detail"][0]["input"] == "x" * 300 + "...[truncated]"


def test_departure_response_headers(client: httpx.Client) -> None:
    hero = client.post("/heroes/", json=HERO).json()
    client.post("/heroes/", json=HERO)
    for response in (
        client.get("/heroes/", params={"limit": 1}),
        client.get(f"/heroes/{hero['id']}"),
        client.get("/heroes/0"),
        client.post("/heroes/", json={}),
    ):
        assert len(response.headers["x-request-id"]) == 32
        assert not any(name.startswith("access-control-") for name in response.headers)
    page = client.get("/heroes/", params={"limit": 1})
    assert page.headers["vary"] == "Prefer"
    assert 'rel="next"' in page.headers["link"]
    assert client.get(f"/heroes/{hero['id']}").headers["last-modified"].endswith(" GMT")


def test_departure_gzip(server_on_defaults: LiveServer) -> None:
    headers = {"Accept-Encoding": "gzip"}
    response = httpx.get(f"{server_on_defaults.url}/openapi.json", headers=headers)
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.json()["openapi"]  # decoded by the client, as every HTTP client does
    small = httpx.get(f"{server_on_defaults.url}/heroes/0", headers=headers)
    assert "content-encoding" not in small.headers


def test_departure_head(client: httpx.Client) -> None:
    hero = client.post("/heroes/", json=HERO).json()
    for path in (f"/heroes/{hero['id']}", "/heroes/", "/users/", "/items/"):
        get, head = client.get(path), client.head(path)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == str(len(get.content))


def test_departure_body_limit(client: httpx.Client) -> None:
    body = {"name": "Deadpond", "secret_name": "Dive Wilson", "notes": "x" * 1024 * 1024}
    response = client.post("/heroes/", json=body)
    assert answer(response) == (413, {"detail": "Request body over 1048576 bytes"})


def test_departure_added_routes(client: httpx.Client) -> None:
    me = client.get("/users/me")
    assert answer(me) == (401, {"detail": "Not authenticated"})
    assert me.headers["www-authenticate"] == "Bearer"
    owner = new_user(client)["id"]
    item = client.post(f"/users/{owner}/items/", json={"title": "Portal Gun"}).json()
    assert client.get(f"/items/{item['id']}").json() == item
    patched = client.patch(f"/items/{item['id']}", json={"description": "green"}).json()
    assert patched == item | {"description": "green"}
    assert answer(client.delete(f"/items/{item['id']}")) == (200, {"ok": True})
    assert answer(client.get(f"/items/{item['id']}")) == (404, {"detail": "Item not found"})
    assert client.get("/health/live").status_code == 200


@pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
def test_departure_database_unavailable_is_503(empty_database_url: str, tmp_path: Path) -> None:
    """The database server going away (here: its connections cut, new ones refused)."""
    database = make_url(empty_database_url)
    with proxy_to(database.host or "127.0.0.1", database.port or 5432) as proxy:
        through_proxy = database.set(host="127.0.0.1", port=proxy.port)
        url = through_proxy.render_as_string(hide_password=False)
        with (
            live_server(url, tmp_path) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            assert client.get("/heroes/").status_code == 200
            proxy.cut("refuse")
            started = time.monotonic()
            for response in (client.get("/heroes/"), client.post("/heroes/", json=HERO)):
                assert answer(response) == (
                    503,
                    {"detail": "The database is unavailable; retry later"},
                )
                assert response.headers["retry-after"] == "1"
            assert time.monotonic() - started < 20  # at once, not after a timeout


def test_every_departure_in_the_readme_names_a_test_that_exists() -> None:
    """The README's list of departures and the tests that show them cannot drift apart: each
    entry names at least one test, and each test named is defined in the suite."""
    root = Path(__file__).resolve().parent
    readme = (root.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Departures from the tutorial\n", 1)[1].split("\n## ", 1)[0]
    entries = ["- " + entry for entry in section.split("\n- ")[1:]]
    assert len(entries) >= 10, "the section lists the departures as bullets"
    defined = {
        name
        for module in root.glob("test_*.py")
        for name in re.findall(r"^def (test_\w+)\(", module.read_text("utf-8"), re.MULTILINE)
    }
    for entry in entries:
        named = re.findall(r"`(test_\w+)`", entry)
        assert named, f"no test named for: {entry[:80]}"
        assert set(named) <= defined, (set(named) - defined, entry[:80])

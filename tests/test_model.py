"""A model-based test of the whole API: random sequences of writes and reads of heroes, users and
items, sent over HTTP to `heroapi serve` on default settings (only `DATABASE_URL` set), each
answer compared with an in-memory model (tests/api_model.py), on every backend.

Writes: creates, patches and deletes of heroes and items, registrations, and deletions of users
(logged in as themselves; their items go with them). Reads: single rows (missing ones: the exact
404), pages at any `offset`/`skip` and `limit` (past the end too), with filters, `order=` and
`Prefer: count=exact`, the `Link` headers each page should have, and walks that follow `next`
links to the end and `prev` links back, from an offset page or by cursors (also with `order=`
taken out of the links: the cursor holds it). Names and titles come from a tiny alphabet, so
equal names, shared prefixes and ties are common.

Bounded: one server per backend for the module; every example starts from empty tables (the
rows deleted through a connection of the test's own, the throttle's counters with them) and
registers at most a few users, one at a time. Examples run in batches of `BATCH`, each batch
from a seed: 0, 1, 2, ... by default (the same examples every run), starting batches for
`DEFAULT_SECONDS`; `pytest --model-seconds=600` runs random seeds for that long instead (a long
local run).
"""

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    get_state_machine_test,
    initialize,
    precondition,
    rule,
)
from sqlalchemy import Connection, create_engine, delete, pool, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from heroapi import migrate
from heroapi.config import parse_database_url
from heroapi.models import app_secrets_table, metadata
from tests.api_model import (
    HEROES,
    ITEMS,
    RESOURCES,
    TIMESTAMPS,
    USERS,
    Model,
    Resource,
    Row,
    parse_order,
)
from tests.server import LiveServer

pytestmark = pytest.mark.processes  # a server per backend

T = TypeVar("T")

DEFAULT_SECONDS = 40  # per backend, besides starting the server; CI's bound is 60 s
BATCH = 10  # examples of one seed
MAX_EXAMPLES = 100_000
STEPS = 20
# Registration attempts and logins per example: each costs an Argon2 hash, and registrations
# are throttled per address (the counters are emptied between examples).
MAX_REGISTRATIONS = 4
MAX_LOGINS = 1
PASSWORD = "model-password"
NEVER_ID = 2**62  # an id the server never gives out in a test
LINK = re.compile(r'<([^>]*)>;\s*rel="([^"]+)"')

ALPHABET = "aAbé "  # code point order: " " < "A" < "a" < "b" < "é"
TEXTS = st.text(ALPHABET, max_size=2)
PREFIXES = st.text(ALPHABET, min_size=1, max_size=2)
AGES = st.none() | st.integers(0, 3)
LOCAL_PARTS_FIRST = ("a", "b", "c")
LOCAL_PARTS = st.sampled_from([*LOCAL_PARTS_FIRST, "ab"])
HEROES_CREATED = st.tuples(TEXTS, AGES)  # (name, age)
ITEMS_CREATED = st.tuples(TEXTS, st.none() | TEXTS)  # (title, description)
PICKS = st.integers(0, 7)  # which row (live ones first, then deleted ones, then one never made)
# Past the end too, but within the bound on offsets under another order than id (5,000).
OFFSETS = st.sampled_from([None, 0, 0, 1, 2, 3, 5, 1000, 3000])
WALK_LIMITS = st.sampled_from([1, 1, 1, 2])
BY_OFFSET, BY_CURSOR, WITHOUT_ORDER = "offset", "cursor", "cursor, links without order="
PAGING = st.sampled_from([BY_OFFSET, BY_CURSOR, WITHOUT_ORDER])
LIMITS = st.none() | st.integers(0, 4) | st.just(100)


# ------------------------------------------------------------------------- list requests


@dataclass(frozen=True)
class ListRequest:
    """A list's filters and order (`owner_pick`: the items' `owner_id` filter, as a pick)."""

    path: str
    filters: tuple[tuple[str, Any], ...]
    order: str | None

    @property
    def resource(self) -> Resource:
        return RESOURCES[self.path]


FILTERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    HEROES.path: {
        "name": TEXTS,
        "name_prefix": PREFIXES,
        "age": st.integers(0, 3),
        "age_gte": st.integers(0, 3),
        "age_lte": st.integers(0, 3),
        "age_null": st.booleans(),
    },
    USERS.path: {
        "email": st.builds(
            lambda local, upper: (
                f"{local}@example.com".upper() if upper else f"{local}@example.com"
            ),
            LOCAL_PARTS,
            st.booleans(),
        ),
        "is_active": st.booleans(),
    },
    ITEMS.path: {"owner_pick": PICKS, "title_prefix": PREFIXES},
}


@st.composite
def orders(draw: st.DrawFn, resource: Resource) -> str | None:
    """None, or up to two sortable fields, each either way, and sometimes `id` with its own
    direction (`name,-id`)."""
    if draw(st.booleans()):
        return None
    names = draw(st.lists(st.sampled_from(resource.sortable + TIMESTAMPS), max_size=2, unique=True))
    if not names or draw(st.booleans()):
        names.append("id")
    return ",".join(("-" if draw(st.booleans()) else "") + name for name in names)


@st.composite
def list_requests(draw: st.DrawFn, path: str) -> ListRequest:
    offered = FILTERS[path]
    size = draw(st.sampled_from((0, 0, 1, 2)))  # the tutorial's plain request most often
    names = draw(
        st.lists(st.sampled_from(sorted(offered)), min_size=size, max_size=size, unique=True)
    )
    filters = tuple((name, draw(offered[name])) for name in names)
    return ListRequest(path, filters, draw(orders(RESOURCES[path])))


def query_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def links(response: httpx.Response) -> dict[str, str]:
    header = response.headers.get("link")
    return {} if header is None else {relation: url for url, relation in LINK.findall(header)}


def without_order(url: str) -> str:
    parts = urlsplit(url)
    query = "&".join(part for part in parts.query.split("&") if not part.startswith("order="))
    return urlunsplit(parts._replace(query=query))


# ------------------------------------------------------------------------- the database


class DirectDatabase:
    """A connection of the test's own to the server's database, beside heroapi's."""

    def __init__(self, url: str) -> None:
        self.database = parse_database_url(url)
        address = migrate.sqlalchemy_url(self.database)
        self.runner: asyncio.Runner | None = None
        self.engine: AsyncEngine | None = None
        if self.database.backend == "sqlite":
            self.sync_engine = create_engine(address, poolclass=pool.NullPool)
        else:
            self.runner = asyncio.Runner()
            arguments = migrate.connect_arguments(self.database)
            self.engine = create_async_engine(address, pool_size=1, connect_args=arguments)

    def run(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)`, committed."""
        if self.runner is None:
            with self.sync_engine.begin() as connection:
                return work(connection)
        engine = self.engine
        assert engine is not None

        async def run() -> T:
            async with engine.begin() as connection:
                return await connection.run_sync(work)

        return self.runner.run(run())

    def empty(self) -> None:
        """Every table's rows but the signing key's (which the server keeps in memory): heroes,
        users, items, tokens, the throttle's counters."""

        def work(connection: Connection) -> None:
            for table in reversed(metadata.sorted_tables):
                if table is not app_secrets_table:
                    connection.execute(delete(table))

        self.run(work)

    def times(self, table: str) -> dict[int, tuple[Any, Any]]:
        """Every row's (created_at, updated_at), as the database holds them."""

        def work(connection: Connection) -> dict[int, tuple[Any, Any]]:
            rows = connection.execute(text(f"SELECT id, created_at, updated_at FROM {table}"))
            return {row[0]: (row[1], row[2]) for row in rows}

        return self.run(work)

    def close(self) -> None:
        if self.runner is not None:
            assert self.engine is not None
            self.runner.run(self.engine.dispose())
            self.runner.close()


@dataclass
class ModelRun:
    """What the examples of one backend share: the client, the database, and counts."""

    client: httpx.Client
    database: DirectDatabase
    examples: int = 0
    requests: int = 0
    walks: list[int] = field(default_factory=list)  # pages of each walk

    def new_example(self) -> "APIMachine":
        self.examples += 1
        self.database.empty()
        return APIMachine(self)


# ------------------------------------------------------------------------- the machine


class APIMachine(RuleBasedStateMachine):
    def __init__(self, run: ModelRun) -> None:
        super().__init__()
        self.run = run
        self.model = Model()
        self.registrations = 0
        self.logins = 0

    # -- checks

    def check(self, condition: bool, response: httpx.Response, expected: Any) -> None:
        if not condition:
            request = response.request
            raise AssertionError(
                f"{request.method} {request.url}\n  expected: {expected}\n"
                f"  answered: {response.status_code} {response.text}\n  headers: "
                f"{dict(response.headers)}"
            )

    def send(self, method: str, url: str, **arguments: Any) -> httpx.Response:
        self.run.requests += 1
        return self.run.client.request(method, url, **arguments)

    def expect(self, response: httpx.Response, status: int, body: Any) -> None:
        matches = response.status_code == status and response.json() == body
        self.check(matches, response, f"{status} {body!r}")

    def pick(self, resource: Resource, pick: int) -> int:
        """A live row's id for a small pick, else a deleted one's, else one never made."""
        table = self.model.table(resource)
        candidates = [*sorted(table), *sorted(self.model.gone[resource.name]), NEVER_ID]
        return candidates[pick % len(candidates)]

    def answer_for(self, resource: Resource, row_id: int) -> tuple[int, Any]:
        row = self.model.table(resource).get(row_id)
        if row is None:
            return 404, {"detail": resource.not_found}
        return 200, self.model.public(resource, row)

    # -- rows to start from

    @initialize(
        heroes=st.lists(HEROES_CREATED, max_size=6),
        users=st.sampled_from([0, 1, 3, 3]),  # three: pages of one beyond the second
        items=st.lists(st.tuples(st.integers(0, 2), ITEMS_CREATED), max_size=6),
    )
    def populate(
        self,
        heroes: list[tuple[str, int | None]],
        users: int,
        items: list[tuple[int, tuple[str, str | None]]],
    ) -> None:
        """Rows to start from (each example starts from empty tables): heroes, `users` users
        (a@, b@, c@example.com), items of theirs."""
        self.create_heroes(heroes)
        for local in LOCAL_PARTS_FIRST[:users]:
            self.register_user(local)
        for owner, item in items:
            if self.model.users:
                self.add_items(sorted(self.model.users)[owner % len(self.model.users)], [item])

    # -- heroes

    @rule(heroes=st.lists(HEROES_CREATED, min_size=1, max_size=4))
    def create_heroes(self, heroes: list[tuple[str, int | None]]) -> None:
        for name, age in heroes:
            body = {"name": name, "secret_name": "s", "age": age}
            response = self.send("POST", "/heroes/", json=body)
            hero_id = response.json().get("id") if response.status_code == 200 else None
            self.expect(response, 200, {"id": hero_id, "name": name, "age": age})
            assert isinstance(hero_id, int)
            self.model.heroes[hero_id] = {"id": hero_id, "name": name, "age": age}

    @rule(
        pick=PICKS,
        changes=st.fixed_dictionaries(
            {}, optional={"name": TEXTS, "age": AGES, "secret_name": st.just("t")}
        ),
    )
    def patch_hero(self, pick: int, changes: dict[str, Any]) -> None:
        hero_id = self.pick(HEROES, pick)
        response = self.send("PATCH", f"/heroes/{hero_id}", json=changes)
        hero = self.model.heroes.get(hero_id)
        if hero is not None:
            hero.update({key: value for key, value in changes.items() if key in hero})
        self.expect(response, *self.answer_for(HEROES, hero_id))

    @rule(pick=PICKS)
    def delete_hero(self, pick: int) -> None:
        self.delete_row(HEROES, self.pick(HEROES, pick))

    def delete_row(self, resource: Resource, row_id: int) -> None:
        response = self.send("DELETE", f"{resource.path}{row_id}")
        if row_id in self.model.table(resource):
            self.model.remove(resource, row_id)
            self.expect(response, 200, {"ok": True})
        else:
            self.expect(response, 404, {"detail": resource.not_found})

    # -- users

    @precondition(lambda self: self.registrations < MAX_REGISTRATIONS)
    @rule(local=LOCAL_PARTS)
    def register(self, local: str) -> None:
        self.register_user(local)

    def register_user(self, local: str) -> None:
        self.registrations += 1
        email = f"{local}@example.com"
        response = self.send("POST", "/users/", json={"email": email, "password": PASSWORD})
        if any(user["email"] == email for user in self.model.users.values()):
            self.expect(response, 400, {"detail": "Email already registered"})
            return
        user_id = response.json().get("id") if response.status_code == 200 else None
        user = {"email": email, "id": user_id, "is_active": True}
        self.expect(response, 200, user | {"items": []})
        assert isinstance(user_id, int)
        self.model.users[user_id] = user

    @precondition(lambda self: self.model.users and self.logins < MAX_LOGINS)
    @rule(pick=PICKS)
    def delete_user(self, pick: int) -> None:
        """As itself (in `open` mode an account may delete only itself)."""
        self.logins += 1
        user = self.model.users[sorted(self.model.users)[pick % len(self.model.users)]]
        form = {"username": user["email"], "password": PASSWORD}
        login = self.send("POST", "/login/access-token", data=form)
        self.check(login.status_code == 200, login, "200 and a token")
        token = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        response = self.send("DELETE", f"/users/{user['id']}", headers=headers)
        self.model.remove(USERS, user["id"])
        self.expect(response, 200, {"message": "User deleted"})

    # -- items

    @rule(pick=PICKS, items=st.lists(ITEMS_CREATED, min_size=1, max_size=3))
    def create_items(self, pick: int, items: list[tuple[str, str | None]]) -> None:
        self.add_items(self.pick(USERS, pick), items)

    def add_items(self, owner_id: int, items: list[tuple[str, str | None]]) -> None:
        for title, description in items:
            body = {"title": title, "description": description}
            response = self.send("POST", f"/users/{owner_id}/items/", json=body)
            if owner_id not in self.model.users:
                self.expect(response, 404, {"detail": "User not found"})
                return
            item_id = response.json().get("id") if response.status_code == 200 else None
            item = body | {"id": item_id, "owner_id": owner_id}
            self.expect(response, 200, item)
            assert isinstance(item_id, int)
            self.model.items[item_id] = item

    @rule(
        pick=PICKS,
        changes=st.fixed_dictionaries(
            {}, optional={"title": TEXTS, "description": st.none() | TEXTS}
        ),
    )
    def patch_item(self, pick: int, changes: dict[str, Any]) -> None:
        item_id = self.pick(ITEMS, pick)
        response = self.send("PATCH", f"/items/{item_id}", json=changes)
        if item_id in self.model.items:
            self.model.items[item_id].update(changes)
        self.expect(response, *self.answer_for(ITEMS, item_id))

    @rule(pick=PICKS)
    def delete_item(self, pick: int) -> None:
        self.delete_row(ITEMS, self.pick(ITEMS, pick))

    # -- reads

    @rule(path=st.sampled_from(list(RESOURCES)), pick=PICKS)
    def read_row(self, path: str, pick: int) -> None:
        resource = RESOURCES[path]
        row_id = self.pick(resource, pick)
        self.expect(self.send("GET", f"{path}{row_id}"), *self.answer_for(resource, row_id))

    def expected_rows(self, request: ListRequest, order: str | None = None) -> list[Row]:
        resource = request.resource
        return self.model.listed(
            resource,
            dict(self.filters(request)),
            parse_order(request.order if order is None else order),
            lambda: self.run.database.times(resource.name),
        )

    def filters(self, request: ListRequest) -> list[tuple[str, Any]]:
        """The request's filters, an owner pick made an `owner_id`."""
        return [
            ("owner_id", self.pick(USERS, value)) if name == "owner_pick" else (name, value)
            for name, value in request.filters
        ]

    def params(self, request: ListRequest) -> list[tuple[str, str]]:
        params = [(name, query_value(value)) for name, value in self.filters(request)]
        return params + ([("order", request.order)] if request.order is not None else [])

    @rule(request=list_requests(HEROES.path), offset=OFFSETS, limit=LIMITS, count=st.booleans())
    def read_heroes(
        self, request: ListRequest, offset: int | None, limit: int | None, count: bool
    ) -> None:
        self.read_page(request, offset, limit, count)

    @rule(request=list_requests(USERS.path), offset=OFFSETS, limit=LIMITS, count=st.booleans())
    def read_users(
        self, request: ListRequest, offset: int | None, limit: int | None, count: bool
    ) -> None:
        self.read_page(request, offset, limit, count)

    @rule(request=list_requests(ITEMS.path), offset=OFFSETS, limit=LIMITS, count=st.booleans())
    def read_items(
        self, request: ListRequest, offset: int | None, limit: int | None, count: bool
    ) -> None:
        self.read_page(request, offset, limit, count)

    def read_page(
        self, request: ListRequest, offset: int | None, limit: int | None, count: bool
    ) -> None:
        """One page, its `Link` headers (offset links exactly; cursor links by relation) and
        its count."""
        resource = request.resource
        params = self.params(request)
        if offset is not None:
            params.append((resource.offset_param, str(offset)))
        if limit is not None:
            params.append(("limit", str(limit)))
        headers = {"Prefer": "count=exact"} if count else {}
        response = self.send("GET", request.path, params=params, headers=headers)
        rows = self.expected_rows(request)
        start, size = offset or 0, 100 if limit is None else limit
        self.expect(response, 200, rows[start : start + size])
        self.check("Prefer" in response.headers.get("vary", ""), response, "Vary: Prefer")
        total = response.headers.get("x-total-count")
        self.check(total == (str(len(rows)) if count else None), response, f"{len(rows)} rows")
        expected: dict[str, list[tuple[str, str]] | None] = {}
        if size > 0 and offset is not None:
            kept = [pair for pair in params if pair[0] != resource.offset_param]
            if start + size < len(rows):
                expected["next"] = [*kept, (resource.offset_param, str(start + size))]
            if start > 0:
                expected["prev"] = [*kept, (resource.offset_param, str(max(0, start - size)))]
        elif size > 0 and rows and len(rows) > size:
            expected["next"] = None  # a cursor link
        found = links(response)
        self.check(set(found) == set(expected), response, f"links {sorted(expected)}")
        for relation, query in expected.items():
            target = parse_qsl(urlsplit(found[relation]).query, keep_blank_values=True)
            if query is None:
                names = [name for name, _ in target]
                query = [*params, ("cursor", dict(target).get("cursor", ""))]
                self.check(names.count("cursor") == 1, response, f"{relation}: one cursor")
            self.check(sorted(target) == sorted(query), response, f"{relation}: {query}")

    @rule(request=list_requests(HEROES.path), limit=WALK_LIMITS, paging=PAGING)
    def walk_heroes(self, request: ListRequest, limit: int, paging: str) -> None:
        self.walk(request, limit, paging)

    @rule(request=list_requests(USERS.path), limit=WALK_LIMITS, paging=PAGING)
    def walk_users(self, request: ListRequest, limit: int, paging: str) -> None:
        self.walk(request, limit, paging)

    @rule(request=list_requests(ITEMS.path), limit=WALK_LIMITS, paging=PAGING)
    def walk_items(self, request: ListRequest, limit: int, paging: str) -> None:
        self.walk(request, limit, paging)

    def walk(self, request: ListRequest, limit: int, paging: str) -> None:
        """Follow `next` from the first page to the end, then `prev` back to the start: from
        `offset=0` (`skip=0`) by offset links, or from the first page by cursor links (with
        `order=` taken out of each link, where `paging` says so: the cursor holds it)."""
        rows = self.expected_rows(request)
        follow = without_order if paging == WITHOUT_ORDER else (lambda url: url)
        params = [*self.params(request), ("limit", str(limit))]
        if paging == BY_OFFSET:
            params.append((request.resource.offset_param, "0"))
        response = self.send("GET", request.path, params=params)
        start, pages = 0, 1
        while True:
            page = rows[start : start + limit]
            self.expect(response, 200, page)
            found = set(links(response))
            wanted = {"next"} if start + limit < len(rows) else set()
            wanted |= {"prev"} if page and start > 0 else set()
            self.check(found == wanted, response, f"links {sorted(wanted)} at row {start}")
            if "next" not in found:
                break
            response = self.send("GET", follow(links(response)["next"]))
            start, pages = start + limit, pages + 1
        while "prev" in links(response):
            response = self.send("GET", follow(links(response)["prev"]))
            start, pages = start - limit, pages + 1
            self.expect(response, 200, rows[start : start + limit])
            wanted = {"next", "prev"} if start > 0 else {"next"}
            self.check(set(links(response)) == wanted, response, f"links {sorted(wanted)}")
        self.check(start == 0, response, "the walk back to end at the first row")
        self.run.walks.append(pages)


# ------------------------------------------------------------------------- the test


def test_every_answer_is_the_models(
    server_on_defaults: LiveServer, request: pytest.FixtureRequest
) -> None:
    """Batches of examples while the next one should end in time (seeds 0, 1, 2, ... by
    default: the same examples every run, as many as the machine manages)."""
    server, url = server_on_defaults, server_on_defaults.database_url
    seconds: float | None = request.config.getoption("model_seconds")
    long_run = seconds is not None
    started = time.monotonic()
    deadline = started + (seconds or DEFAULT_SECONDS)
    database = DirectDatabase(url)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        run = ModelRun(client, database)
        batch_settings = settings(
            max_examples=BATCH,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            # A failure is shrunk (each try is a whole sequence over HTTP), not explained.
            phases=(Phase.explicit, Phase.generate, Phase.shrink),
            report_multiple_bugs=False,
        )
        try:
            longest = 0.0
            for batch in range(MAX_EXAMPLES // BATCH):
                begun = time.monotonic()
                if begun + longest > deadline:
                    break
                # Typed for a class, documented for any factory (as run_state_machine_as_test).
                examples = get_state_machine_test(
                    run.new_example,  # type: ignore[arg-type]
                    settings=batch_settings,
                )
                (examples if long_run else seed(batch)(examples))()
                longest = max(longest, time.monotonic() - begun)
        finally:
            database.close()
    print(
        f"model: {run.examples} examples, {run.requests} requests, {len(run.walks)} walks "
        f"(up to {max(run.walks, default=0)} pages) in {time.monotonic() - started:.1f} s"
    )
    assert run.examples >= 2 * BATCH, "too few examples ran to mean anything"
    assert "Traceback" not in server.log_text()

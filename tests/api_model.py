"""The in-memory model of heroapi that tests/test_model.py compares every answer with: heroes,
users and their items as dicts, and the lists' semantics as the README states them.

- Filters: `name` exact, `name_prefix`, `age`, `age_gte`, `age_lte`, `age_null`; `owner_id`,
  `title_prefix`; `email` (compared as the login compares it), `is_active`. A row without an
  age matches no age comparison.
- `order=`: fields, `-` for descending, up to an `id` (which ends it); `id` breaks ties in the
  direction of the last field unless given. Text compares by code point; a missing value is
  first ascending and last descending.
"""

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]
Order = list[tuple[str, bool]]  # (field, descending), ending with id


@dataclass(frozen=True)
class Resource:
    """One list of the API: its paths, paging parameter, 404 text and sortable fields."""

    name: str  # the table
    path: str  # the list's path; a row's is path + id
    offset_param: str
    not_found: str
    sortable: tuple[str, ...]


HEROES = Resource("hero", "/heroes/", "offset", "Hero not found", ("name", "age"))
USERS = Resource("users", "/users/", "skip", "User not found", ("email",))
ITEMS = Resource("items", "/items/", "skip", "Item not found", ("title", "owner_id"))
RESOURCES = {resource.path: resource for resource in (HEROES, USERS, ITEMS)}
# Sortable everywhere; their values are the database's own, read when an order needs them.
TIMESTAMPS = ("created_at", "updated_at")


def parse_order(text: str | None) -> Order:
    """`-age,name` as [("age", True), ("name", False), ("id", False)]."""
    if text is None:
        return [("id", False)]
    keys: Order = []
    for part in text.split(","):
        name = part.removeprefix("-")
        keys.append((name, part.startswith("-")))
        if name == "id":
            break
    if keys[-1][0] != "id":
        keys.append(("id", keys[-1][1]))
    return keys


def _compare(first: Row, second: Row, order: Order) -> int:
    for name, descending in order:
        one, other = first[name], second[name]
        if one == other:
            continue
        # None below every value: first ascending, last descending.
        below = one is None or (other is not None and one < other)
        return (1 if below else -1) if descending else (-1 if below else 1)
    return 0


def sort_rows(rows: list[Row], order: Order) -> list[Row]:
    def compare(first: Row, second: Row) -> int:
        return _compare(first, second, order)

    return sorted(rows, key=functools.cmp_to_key(compare))


def _matches(row: Row, param: str, value: Any) -> bool:
    """Whether `row` passes one filter (`value` as the test sent it)."""
    if param.endswith("_prefix"):
        return bool(row[param.removesuffix("_prefix")].startswith(value))
    if param == "age_null":
        return bool((row["age"] is None) == value)
    if param in ("age_gte", "age_lte"):
        if row["age"] is None:
            return False
        return bool(row["age"] >= value if param == "age_gte" else row["age"] <= value)
    if param == "email":
        return bool(row["email"].lower() == value.lower())
    return bool(row[param] == value)


@dataclass
class Model:
    """What the database should hold: rows by id, per table, as the API returns them (users
    without their items), and each user's password."""

    heroes: dict[int, Row] = field(default_factory=dict)
    users: dict[int, Row] = field(default_factory=dict)
    items: dict[int, Row] = field(default_factory=dict)
    passwords: dict[int, str] = field(default_factory=dict)
    # Ids the server gave out that no longer exist: reads of them are 404s.
    gone: dict[str, set[int]] = field(
        default_factory=lambda: {"hero": set(), "users": set(), "items": set()}
    )

    def table(self, resource: Resource) -> dict[int, Row]:
        return {"hero": self.heroes, "users": self.users, "items": self.items}[resource.name]

    def public(self, resource: Resource, row: Row) -> Row:
        """A row as the API returns it (a user with its items, by id)."""
        if resource is not USERS:
            return dict(row)
        owned = [item for item in self.items.values() if item["owner_id"] == row["id"]]
        return row | {"items": sorted(owned, key=lambda item: item["id"])}

    def remove(self, resource: Resource, row_id: int) -> None:
        del self.table(resource)[row_id]
        self.gone[resource.name].add(row_id)
        if resource is USERS:
            for item_id in [i for i, item in self.items.items() if item["owner_id"] == row_id]:
                self.remove(ITEMS, item_id)

    def listed(
        self,
        resource: Resource,
        filters: Mapping[str, Any],
        order: Order,
        times: Callable[[], Mapping[int, tuple[Any, Any]]],
    ) -> list[Row]:
        """Every row the filters match, in `order`, as the API returns them. `times` gives the
        rows' (created_at, updated_at), read from the database only for an order that needs
        them."""
        rows = [
            row
            for row in self.table(resource).values()
            if all(_matches(row, param, value) for param, value in filters.items())
        ]
        if any(name in TIMESTAMPS for name, _ in order):
            stamps = times()
            rows = [row | dict(zip(TIMESTAMPS, stamps[row["id"]], strict=True)) for row in rows]
        ordered = sort_rows(rows, order)
        return [
            self.public(resource, {key: row[key] for key in row if key not in TIMESTAMPS})
            for row in ordered
        ]

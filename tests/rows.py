"""Many rows, made fast by the database itself (one INSERT ... SELECT over a number series), not
through the API: for tests of what lists cost and count at volume."""

from typing import Final

from fastapi.testclient import TestClient
from sqlalchemy import text

from heroapi.db import Database
from tests.conftest import app_database

# Numbers 1..{rows} as `n`, then what is made of each, per backend.
_SERIES: Final = {
    "sqlite": "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {rows})"
    " INSERT INTO {table} SELECT {values} FROM seq",
    "postgresql": "INSERT INTO {table} SELECT {values} FROM generate_series(1, {rows}) AS n",
    "mysql": "INSERT INTO {table} SELECT {values} FROM (SELECT seq AS n FROM seq_1_to_{rows}) AS s",
}
# Hero n: named "Hero " and a six-digit number (a permutation of n: names in another order
# than ids), aged n % 100.
_HERO_NAME: Final = {
    "sqlite": "printf('Hero %06d', (n * 7919) % {rows})",
    "postgresql": "format('Hero %s', lpad(((n * 7919) % {rows})::text, 6, '0'))",
    "mysql": "CONCAT('Hero ', LPAD((n * 7919) % {rows}, 6, '0'))",
}
_TITLE: Final = {
    "sqlite": "'{prefix}' || n",
    "postgresql": "'{prefix}' || n",
    "mysql": "CONCAT('{prefix}', n)",
}
_ANALYZE: Final = {
    "sqlite": "ANALYZE",
    "postgresql": "ANALYZE {table}",
    "mysql": "ANALYZE TABLE {table}",
}


def _insert(client: TestClient, table: str, values: dict[str, str], rows: int) -> None:
    async def fill(database: Database) -> None:
        backend = database.url.backend
        statement = _SERIES[backend].format(
            table=f"{table} ({', '.join(values)})",
            values=", ".join(values.values()),
            rows=rows,
        )
        async with database.transaction() as connection:
            await connection.execute(text(statement), {})
        async with database.connection() as connection:
            await connection.execute(text(_ANALYZE[backend].format(table=table)), {})

    app_database(client, fill)


def add_many_heroes(client: TestClient, rows: int) -> None:
    """`rows` heroes, named `Hero 000000`... in another order than their ids, aged n % 100."""
    backend = client.app.state.settings.database.backend  # type: ignore[attr-defined]
    name = _HERO_NAME[backend].format(rows=rows)
    _insert(client, "hero", {"name": name, "age": "n % 100", "secret_name": "'s'"}, rows)


def add_many_items(client: TestClient, owner_id: int, prefix: str, rows: int) -> None:
    """`rows` items of `owner_id`, titled `prefix` and a number (`prefix` is plain letters)."""
    assert prefix.isalpha()
    backend = client.app.state.settings.database.backend  # type: ignore[attr-defined]
    title = _TITLE[backend].format(prefix=prefix)
    _insert(client, "items", {"title": title, "owner_id": str(int(owner_id))}, rows)

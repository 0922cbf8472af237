"""The data layer: one small async interface over each backend's fastest driver.

`crud` runs statements through the verbs `fetch_one`, `fetch_all`, `fetch_values`,
`fetch_all_values`, `execute` and `write`, on the `Database` (one statement on its own, in
autocommit), on `Database.connection()` (autocommit, one statement at a time) or on
`Database.transaction()`. Statements are SQLAlchemy Core, compiled once per dialect and cached
(`Database.compile`); rows come back as dicts, or as their values in column order where a hot
path renders them itself. Why not the ORM or an `AsyncSession`: see docs/performance.md.

Each verb is one call of `run(statement, params, verb)`, and `run` is the one method each layer
overrides: a backend's connection answers each verb with its driver, and the layers above it
pass the statement on (where a new verb goes: `statements.Verb`).

- `statements.py`: `Statement`, the verbs, and what they answer; `errors.py`: what fails;
- `database.py`: `Database`, `Connection`, and the verbs on both (`StatementRunner`);
- `sqlite/`: the stdlib `sqlite3` module, one connection per process, called directly from the
  event loop (a statement takes microseconds; a thread hop would cost more than the query);
  one-row writes that arrive together are committed together, and a lock another process
  holds is waited for on the event loop, never inside SQLite;
- `pool.py` and `pooled.py`: the server databases' own pool (no reset when a connection comes
  back), their checkouts and transactions, and the one retry of a first round trip (a
  statement, a BEGIN) that found its idle connection closed;
- `postgres.py`: PostgreSQL through asyncpg (a pooler in transaction mode detected; the
  connections in `asyncpg_connections.py`), its statements under `watchdog.py`'s timeout;
  `mysql.py`: MySQL/MariaDB through asyncmy;
- `replicas.py`: PostgreSQL with read replicas, reads outside a transaction sent to a replica
  that is up and not too far behind. Only created when replicas are configured: the other
  paths pay nothing for it.

A backend's module is imported when a database of its kind is created (`create_database`).

Driver errors are translated into `DatabaseUnavailable` (connection refused or lost, pool exhausted,
no answer in time (`DatabaseTimeout`), a lock conflict (`TransactionConflict`): the client may
retry), `IntegrityViolation` (a constraint said no) and `DataRejected` (a value the database
refused).
"""

from heroapi.config import Settings
from heroapi.db.database import Connection, Database, ReplicaState
from heroapi.db.errors import (
    DatabaseError,
    DatabaseTimeout,
    DatabaseUnavailable,
    DataRejected,
    IntegrityViolation,
    TransactionConflict,
)
from heroapi.db.statements import (
    SQL,
    ExecuteResult,
    Params,
    Row,
    Statement,
    Values,
    Verb,
    as_dicts,
    compile_statement,
)

__all__ = [
    "SQL",
    "Connection",
    "DataRejected",
    "Database",
    "DatabaseError",
    "DatabaseTimeout",
    "DatabaseUnavailable",
    "ExecuteResult",
    "IntegrityViolation",
    "Params",
    "ReplicaState",
    "Row",
    "Statement",
    "TransactionConflict",
    "Values",
    "Verb",
    "as_dicts",
    "compile_statement",
    "create_database",
]


def create_database(settings: Settings) -> Database:
    """The `Database` for `settings.database_url`; call `connect()` before use.

    Each backend's module (and its driver) is imported here, when it is used: a process on
    SQLite never loads asyncpg or asyncmy.
    """
    url = settings.database
    if url.backend == "postgresql":
        if settings.database_replica_urls:
            from heroapi.db.replicas import ReplicatedDatabase

            return ReplicatedDatabase(url, settings)
        from heroapi.db.postgres import PostgresDatabase

        return PostgresDatabase(url, settings)
    if url.backend == "mysql":
        from heroapi.db.mysql import MySQLDatabase

        return MySQLDatabase(url, settings)
    from heroapi.db.sqlite import SQLiteDatabase

    return SQLiteDatabase(url, settings)

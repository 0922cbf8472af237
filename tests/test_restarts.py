"""The server databases restarting, hanging or holding locks under heroapi's connections.

- Connections the server closed while idle (a restart, a failover, an idle timeout) cost no
  request: the first round trip that finds one closed is sent again on a new connection.
- A database that is really down is still a fast 503: one new connection is tried, no more.
- MariaDB: every round trip (BEGIN, COMMIT, ROLLBACK too) fails after the command timeout; a
  lock wait timeout or a deadlock is a 503 with Retry-After, and a statement of its own that
  lost a deadlock is sent again.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncmy
import asyncpg
import httpx2 as httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from heroapi.db import (
    Database,
    DatabaseTimeout,
    DatabaseUnavailable,
    TransactionConflict,
    create_database,
)
from heroapi.db.pooled import PooledDatabase
from tests.conftest import make_settings, running_app
from tests.proxy import Proxy, proxy_to
from tests.server import live_server

servers = pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
mariadb = pytest.mark.parametrize("backend", ["mysql"], indirect=True)


async def mysql_session(url: str) -> Any:
    """A plain asyncmy connection (autocommit) to the database of `url`, beside heroapi's."""
    parsed = make_url(url)
    return await asyncmy.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        database=parsed.database,
        autocommit=True,
    )


async def sql(session: Any, statement: str) -> list[Any]:
    async with session.cursor() as cursor:
        await cursor.execute(statement)
        return list(await cursor.fetchall())


async def close_heroapi_connections(url: str) -> int:
    """Close every connection heroapi holds to the database of `url`, from the server's side,
    as a restart or an idle timeout does; returns how many there were."""
    database_name = make_url(url).database
    if url.startswith("postgresql"):
        session = await asyncpg.connect(url)
        try:
            closed = await session.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name = 'heroapi'",
                database_name,
            )
        finally:
            await session.close()
        return len(closed)
    session = await mysql_session(url)
    try:
        ids = await sql(
            session,
            "SELECT id FROM information_schema.processlist"
            f" WHERE db = '{database_name}' AND id <> CONNECTION_ID()",
        )
        for (connection_id,) in ids:
            await sql(session, f"KILL CONNECTION {connection_id}")
    finally:
        session.close()
    return len(ids)


@pytest.mark.processes
@servers
def test_connections_the_server_closed_while_idle_cost_no_request(
    empty_database_url: str, tmp_path: Path
) -> None:
    settings = {"database_pool_size": "4"}
    with live_server(empty_database_url, tmp_path, settings=settings) as server:

        async def scenario() -> int:
            limits = httpx.Limits(max_connections=16)
            async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
                hero = {"secret_name": "s"}
                created = await asyncio.gather(
                    *(client.post("/heroes/", json=hero | {"name": f"h{n}"}) for n in range(16))
                )
                ids = [response.json()["id"] for response in created]
                closed = await close_heroapi_connections(empty_database_url)
                await asyncio.sleep(0.2)  # the servers' closes reach heroapi's sockets
                # As many requests at once as the pool had connections, and more: each of
                # the closed ones is taken by one of them.
                requests = [client.get("/heroes/")]
                requests += [client.get(f"/heroes/{hero_id}") for hero_id in ids[:8]]
                requests += [
                    client.post("/heroes/", json=hero | {"name": "after"}),
                    client.patch(f"/heroes/{ids[8]}", json={"age": 30}),  # MariaDB: a transaction
                    client.delete(f"/heroes/{ids[9]}"),
                    client.get("/health/ready"),
                ]
                answers = await asyncio.gather(*requests)
                assert [answer.status_code for answer in answers] == [200] * len(requests), [
                    answer.text for answer in answers if answer.status_code != 200
                ]
                return closed

        closed = asyncio.run(scenario())
        assert closed >= 2  # several of the pool's idle connections were closed under it
        log = server.log_text()
    assert "Traceback" not in log
    assert "database unavailable" not in log


def through_proxy(url: str, proxy: Proxy) -> str:
    return (
        make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    )


@asynccontextmanager
async def connected(url: str, **settings: Any) -> AsyncIterator[PooledDatabase[Any]]:
    database = create_database(make_settings(url, **settings))
    assert isinstance(database, PooledDatabase)
    await database.connect()
    try:
        yield database
    finally:
        await database.close()


def count_opens(database: PooledDatabase[Any]) -> list[int]:
    """Count the pool's attempts to open a connection (into the returned list's one item)."""
    opens = [0]
    pool = database._pool
    open_connection = pool._open

    async def counted() -> Any:
        opens[0] += 1
        return await open_connection()

    pool._open = counted
    return opens


@servers
def test_a_database_that_is_down_is_a_fast_503_after_one_new_connection(
    empty_database_url: str,
) -> None:
    real = make_url(empty_database_url)
    with proxy_to(real.host or "127.0.0.1", real.port or 0) as proxy:

        async def scenario() -> None:
            async with connected(through_proxy(empty_database_url, proxy)) as database:
                opens = count_opens(database)
                proxy.cut("refuse")  # its connections closed, new ones refused
                for attempt in (autocommit_values, transaction_values):
                    started = time.monotonic()
                    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
                        await attempt(database)
                    assert time.monotonic() - started < 1
                # The idle connection's failure let one new connection be tried; the second
                # request found the pool empty: one more. No loop.
                assert opens == [2]

        asyncio.run(scenario())


Closer = Callable[[], Awaitable[None]]


async def second_statement(database: Database, close: Closer) -> None:
    async with database.connection() as connection:
        await connection.fetch_values(text("SELECT 1"), {})
        await close()
        await connection.fetch_values(text("SELECT 2"), {})


async def statement_after_begin(database: Database, close: Closer) -> None:
    async with database.transaction() as connection:
        await close()
        await connection.fetch_values(text("SELECT 3"), {})


async def commit_after_statement(database: Database, close: Closer) -> None:
    async with database.transaction() as connection:
        await connection.fetch_values(text("SELECT 4"), {})
        await close()


@servers
def test_only_a_first_round_trip_is_sent_again(empty_database_url: str) -> None:
    """A later statement of a checkout, or a COMMIT, may follow writes the database kept: when
    their connection is lost, the request fails (503) rather than run anything twice."""

    async def close() -> None:
        assert await close_heroapi_connections(empty_database_url) == 1
        await asyncio.sleep(0.2)  # the server's close reaches heroapi's socket

    async def scenario() -> None:
        async with connected(empty_database_url) as database:
            opens = count_opens(database)
            for body in (second_statement, statement_after_begin, commit_after_statement):
                with pytest.raises(DatabaseUnavailable, match="lost"):
                    await body(database, close)
            assert opens == [2]  # one for each transaction, none to send anything again

    asyncio.run(scenario())


@servers
def test_a_first_statement_with_no_answer_is_not_sent_again(empty_database_url: str) -> None:
    """A statement that got no answer within the command timeout may still be running (or have
    run): its request fails, and it is not sent on another connection."""
    sleep = "pg_sleep" if empty_database_url.startswith("postgresql") else "SLEEP"

    async def scenario() -> None:
        async with connected(empty_database_url, database_command_timeout=1) as database:
            opens = count_opens(database)
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable, match="did not answer within 1 s"):
                await database.fetch_values(text(f"SELECT {sleep}(3)"), {})
            assert time.monotonic() - started < 1.9
            assert opens == [0]

    asyncio.run(scenario())


async def autocommit_values(database: Database) -> Any:
    return await database.fetch_values(text("SELECT 1"), {})


async def transaction_values(database: Database) -> Any:
    async with database.transaction() as connection:
        return await connection.fetch_values(text("SELECT 1"), {})


async def begin(database: Database, cut: Callable[[], None]) -> None:
    await database.fetch_values(text("SELECT 1"), {})  # an idle connection, for the BEGIN
    cut()
    async with database.transaction():
        pass


async def commit(database: Database, cut: Callable[[], None]) -> None:
    async with database.transaction() as connection:
        await connection.fetch_values(text("SELECT 1"), {})
        cut()


async def rollback(database: Database, cut: Callable[[], None]) -> None:
    async with database.transaction() as connection:
        await connection.fetch_values(text("SELECT 1"), {})
        cut()
        raise RuntimeError("the request failed")


async def first_statement(database: Database, cut: Callable[[], None]) -> None:
    await database.fetch_values(text("SELECT 1"), {})
    cut()
    await database.fetch_values(text("SELECT 2"), {})


@mariadb
def test_mariadb_round_trips_with_no_answer_fail_after_the_command_timeout(
    empty_database_url: str,
) -> None:
    real = make_url(empty_database_url)
    with proxy_to(real.host or "127.0.0.1", real.port or 3306) as proxy:
        url = through_proxy(empty_database_url, proxy)

        async def scenario() -> None:
            settings = {"database_command_timeout": 1, "database_connect_timeout": 1}
            async with connected(url, **settings) as database:
                opens = count_opens(database)
                opens_at_cut = -1

                def cut() -> None:
                    nonlocal opens_at_cut
                    proxy.cut("blackhole")
                    opens_at_cut = opens[0]

                for body in (begin, commit, rollback, first_statement):
                    started = time.monotonic()
                    with pytest.raises(DatabaseTimeout, match="did not answer within 1 s"):
                        await asyncio.wait_for(body(database, cut), 10)  # else: a hang
                    assert time.monotonic() - started < 1.8, body.__name__
                    # Discarded, and no new connection tried: what was sent may have run.
                    assert (database._pool._opened, opens[0]) == (0, opens_at_cut), body
                    proxy.restore()
                assert await database.fetch_values(text("SELECT 3"), {}) == (3,)

        asyncio.run(scenario())


COUNTERS = "CREATE TABLE counters (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB"
FILL = "INSERT INTO counters SELECT seq, 0 FROM seq_1_to_50"


async def wait_for_lock_wait(session: Any, connection_id: int) -> None:
    """Until the connection `connection_id` waits for a row lock (at most 5 s)."""
    deadline = time.monotonic() + 5
    query = (
        "SELECT COUNT(*) FROM information_schema.innodb_trx"
        f" WHERE trx_state = 'LOCK WAIT' AND trx_mysql_thread_id = {connection_id}"
    )
    while (await sql(session, query))[0][0] == 0:
        assert time.monotonic() < deadline, "the statement never waited for the lock"
        # InnoDB refreshes this table only once it has not been read for 0.1 s.
        await asyncio.sleep(0.15)


async def deadlocks(session: Any) -> int:
    return int((await sql(session, "SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'"))[0][1])


@mariadb
def test_mariadb_deadlocked_statement_of_its_own_is_sent_again(empty_database_url: str) -> None:
    async def scenario() -> None:
        other = await mysql_session(empty_database_url)
        try:
            await sql(other, COUNTERS)
            await sql(other, FILL)
            async with connected(empty_database_url) as database:
                deadlocks_before = await deadlocks(other)
                # The other transaction changes many rows (InnoDB makes the lighter one the
                # deadlock's victim: heroapi's), then locks row 2.
                await sql(other, "BEGIN")
                await sql(other, "UPDATE counters SET n = n + 1 WHERE id >= 3")
                await sql(other, "UPDATE counters SET n = n + 1 WHERE id = 2")

                async def add_ten() -> int:
                    async with database.connection() as connection:
                        row = await connection.fetch_values(text("SELECT CONNECTION_ID()"), {})
                        assert row is not None
                        heroapi_id.set_result(row[0])
                        # Locks row 1, then waits for row 2.
                        statement = text("UPDATE counters SET n = n + 10 WHERE id IN (1, 2)")
                        return (await connection.execute(statement, {})).rowcount

                heroapi_id: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                update = asyncio.create_task(add_ten())
                await wait_for_lock_wait(other, await heroapi_id)
                # Row 1 now: a cycle. heroapi's statement is rolled back and sent again; it
                # waits for the other transaction, which goes on and commits.
                await sql(other, "UPDATE counters SET n = n + 1 WHERE id = 1")
                await sql(other, "COMMIT")
                assert await asyncio.wait_for(update, 10) == 2
                assert await deadlocks(other) > deadlocks_before
                rows = await sql(other, "SELECT id, n FROM counters WHERE id <= 3 ORDER BY id")
                assert rows == [(1, 11), (2, 11), (3, 1)]
        finally:
            other.close()

    asyncio.run(scenario())


@mariadb
def test_mariadb_deadlock_in_a_transaction_is_a_conflict_and_keeps_the_connection(
    empty_database_url: str,
) -> None:
    async def scenario() -> None:
        other = await mysql_session(empty_database_url)
        try:
            await sql(other, COUNTERS)
            await sql(other, FILL)
            async with connected(empty_database_url) as database:
                await sql(other, "BEGIN")
                await sql(other, "UPDATE counters SET n = n + 1 WHERE id >= 3")
                await sql(other, "UPDATE counters SET n = n + 1 WHERE id = 2")
                first_statement_done: asyncio.Future[int] = (
                    asyncio.get_running_loop().create_future()
                )

                async def rows_one_then_two() -> None:
                    async with database.transaction() as connection:
                        row = await connection.fetch_values(text("SELECT CONNECTION_ID()"), {})
                        assert row is not None
                        await connection.execute(
                            text("UPDATE counters SET n = n + 10 WHERE id = 1"), {}
                        )
                        first_statement_done.set_result(row[0])
                        await connection.execute(
                            text("UPDATE counters SET n = n + 10 WHERE id = 2"), {}
                        )

                transaction = asyncio.create_task(rows_one_then_two())
                heroapi_id = await first_statement_done
                await wait_for_lock_wait(other, heroapi_id)
                await sql(other, "UPDATE counters SET n = n + 1 WHERE id = 1")
                await sql(other, "COMMIT")
                # Only the whole block could be sent again: the caller gets the conflict.
                with pytest.raises(TransactionConflict, match="Deadlock"):
                    await asyncio.wait_for(transaction, 10)
                rows = await sql(other, "SELECT id, n FROM counters WHERE id <= 2 ORDER BY id")
                assert rows == [(1, 1), (2, 1)]  # nothing of heroapi's transaction stayed
                # Its connection was sound: kept, and it is the one the next request gets.
                after = await database.fetch_values(text("SELECT CONNECTION_ID()"), {})
                assert after == (heroapi_id,)
        finally:
            other.close()

    asyncio.run(scenario())


@mariadb
def test_mariadb_lock_wait_timeout_is_a_503_with_retry_after(database_url: str) -> None:
    # heroapi's sessions wait for a lock one second less than the command timeout.
    settings = make_settings(database_url, database_command_timeout=2)
    with running_app(settings) as client:
        hero = client.post("/heroes/", json={"name": "Locked", "secret_name": "s"}).json()
        assert client.portal is not None

        async def hold_row_lock() -> Any:
            session = await mysql_session(database_url)
            await sql(session, "BEGIN")
            await sql(session, f"SELECT * FROM hero WHERE id = {hero['id']} FOR UPDATE")
            return session

        async def release(session: Any) -> None:
            await sql(session, "ROLLBACK")
            session.close()

        holder = client.portal.call(hold_row_lock)
        try:
            started = time.monotonic()
            response = client.patch(f"/heroes/{hero['id']}", json={"age": 3})
            waited = time.monotonic() - started
        finally:
            client.portal.call(release, holder)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.json() == {"detail": "A concurrent change held up this request; retry"}
        assert 1 <= waited < 1.9  # InnoDB's lock wait ended it, before the command timeout
        retried = client.patch(f"/heroes/{hero['id']}", json={"age": 3})
        assert retried.status_code == 200
        assert retried.json()["age"] == 3


postgresql = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@postgresql
def test_postgresql_deadlock_in_a_transaction_is_a_conflict_and_keeps_the_connection(
    empty_database_url: str,
) -> None:
    """PostgreSQL gives up on one side of a deadlock (40P01): heroapi's side is a
    TransactionConflict (503 with Retry-After), nothing of it stays, its connection is kept."""

    async def scenario() -> None:
        other = await asyncpg.connect(empty_database_url)
        try:
            await other.execute("CREATE TABLE counters (id INT PRIMARY KEY, n INT NOT NULL)")
            await other.execute("INSERT INTO counters SELECT g, 0 FROM generate_series(1, 2) g")
            # The other session looks for deadlocks only after 10 s: heroapi's (1 s) finds it.
            await other.execute("SET deadlock_timeout = '10s'")
            async with connected(empty_database_url) as database:
                await other.execute("BEGIN")
                await other.execute("UPDATE counters SET n = n + 1 WHERE id = 2")
                first_statement_done: asyncio.Future[int] = (
                    asyncio.get_running_loop().create_future()
                )

                async def rows_one_then_two() -> None:
                    async with database.transaction() as connection:
                        row = await connection.fetch_values(text("SELECT pg_backend_pid()"), {})
                        assert row is not None
                        await connection.execute(
                            text("UPDATE counters SET n = n + 10 WHERE id = 1"), {}
                        )
                        first_statement_done.set_result(row[0])
                        await connection.execute(
                            text("UPDATE counters SET n = n + 10 WHERE id = 2"), {}
                        )

                transaction = asyncio.create_task(rows_one_then_two())
                heroapi_pid = await first_statement_done
                blocked = asyncio.create_task(
                    other.execute("UPDATE counters SET n = n + 1 WHERE id = 1")
                )
                with pytest.raises(TransactionConflict, match="deadlock"):
                    await asyncio.wait_for(transaction, 10)
                await blocked
                await other.execute("COMMIT")
                rows = await other.fetch("SELECT id, n FROM counters ORDER BY id")
                assert [tuple(row) for row in rows] == [(1, 1), (2, 1)]
                after = await database.fetch_values(text("SELECT pg_backend_pid()"), {})
                assert after is not None
                assert after[0] == heroapi_pid
        finally:
            await other.close()

    asyncio.run(scenario())

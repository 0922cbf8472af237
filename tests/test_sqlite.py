"""SQLite set up for a server: WAL, busy_timeout, foreign keys, and writes that cannot deadlock."""

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import bindparam, select, text

from heroapi import migrate
from heroapi.config import Settings
from heroapi.db import IntegrityViolation, create_database
from heroapi.db.sqlite import NetworkFilesystem, SQLiteDatabase
from heroapi.db.sqlite.filesystem import (
    NETWORK_FILESYSTEMS,
    mount_holding,
    parse_mountinfo,
    refuse_network_filesystem,
)
from heroapi.models import hero_table
from tests.conftest import make_settings, running_app
from tests.server import without_settings


def migrated_sqlite(tmp_path: Path, **overrides: Any) -> Settings:
    settings = make_settings(f"sqlite:///{tmp_path / 'server.db'}", **overrides)
    migrate.upgrade(settings.database, sqlite_page_size=settings.sqlite_page_size)
    return settings


def test_connection_pragmas(tmp_path: Path) -> None:
    settings = migrated_sqlite(tmp_path, sqlite_busy_timeout=7.5)

    async def read_pragmas() -> dict[str, Any]:
        database = create_database(settings)
        await database.connect()
        found: dict[str, Any] = {}
        try:
            async with database.connection() as connection:
                pragmas = (
                    "journal_mode",
                    "foreign_keys",
                    "busy_timeout",
                    "synchronous",
                    "cache_size",
                    "mmap_size",
                    "wal_autocheckpoint",
                )
                for pragma in pragmas:
                    row = await connection.fetch_one(text(f"PRAGMA {pragma}"), {})
                    assert row is not None
                    found[pragma] = next(iter(row.values()))
        finally:
            await database.close()
        return found

    assert asyncio.run(read_pragmas()) == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        # No wait inside SQLite: a lock is waited for on the event loop (test_sqlite_locking).
        "busy_timeout": 0,
        "synchronous": 1,  # NORMAL
        "cache_size": -8 * 1024,
        "mmap_size": 0,
        # The serving connection leaves checkpoints to the background task (a backstop only).
        "wal_autocheckpoint": 10_000,
    }


def page_size(path: Path) -> int:
    with sqlite3.connect(path) as raw:
        (size,) = raw.execute("PRAGMA page_size").fetchone()
    return int(size)


def test_new_database_files_take_the_configured_page_size(tmp_path: Path) -> None:
    # Made by the migrations, which take it from their caller...
    migrated_sqlite(tmp_path, sqlite_page_size=1024)
    assert page_size(tmp_path / "server.db") == 1024
    # ... `heroapi db upgrade` from the setting...
    command = [sys.executable, "-m", "heroapi", "db", "upgrade"]
    upgraded = tmp_path / "upgraded.db"
    environment = without_settings(os.environ) | {
        "DATABASE_URL": f"sqlite:///{upgraded}",
        "HEROAPI_SQLITE_PAGE_SIZE": "4096",
    }
    subprocess.run(command, env=environment, check=True, capture_output=True, timeout=120)
    assert page_size(upgraded) == 4096

    # ... or by the server's own connection, before anything migrated it.
    async def connect(settings: Settings) -> None:
        database = SQLiteDatabase(settings.database, settings)
        await database.connect()
        await database.close()

    fresh = tmp_path / "fresh.db"
    asyncio.run(connect(make_settings(f"sqlite:///{fresh}", sqlite_page_size=8192)))
    assert page_size(fresh) == 8192

    # A file that has pages keeps its size, and its data.
    asyncio.run(connect(make_settings(f"sqlite:///{fresh}", sqlite_page_size=2048)))
    assert page_size(fresh) == 8192
    assert Settings.model_fields["sqlite_page_size"].default == 2048


def test_page_size_must_be_a_power_of_two() -> None:
    for size in (1000, 256, 131072):
        with pytest.raises(ValidationError):
            make_settings("sqlite:///x.db", sqlite_page_size=size)


def test_the_log_is_checkpointed_off_the_event_loop(tmp_path: Path) -> None:
    settings = migrated_sqlite(tmp_path)
    insert = hero_table.insert().values(name=bindparam("name"), secret_name="s")

    async def write_then_wait() -> tuple[int, int]:
        database = SQLiteDatabase(settings.database, settings)
        await database.connect()
        try:
            await asyncio.sleep(0.3)
            assert database.checkpointer.rounds == 0  # nothing written: no thread woken
            async with database.connection() as connection:
                for number in range(50):
                    await connection.execute(insert, {"name": f"hero {number}"})
            during = database.checkpointer.frames_copied
            for _ in range(100):  # up to 5 s
                if database.checkpointer.frames_copied >= 50:
                    break
                await asyncio.sleep(0.05)
            return during, database.checkpointer.frames_copied
        finally:
            await database.close()

    during, after = asyncio.run(write_then_wait())
    assert during == 0  # the commits themselves copied nothing into the database file
    assert after >= 50  # the background checkpointer did, within a fraction of a second


def test_read_then_write_transactions_from_two_processes_never_fail(tmp_path: Path) -> None:
    """Two connections (as two worker processes have) each read, pause, then write in one
    transaction. A deferred BEGIN lets both read, and the second writer then fails at once with
    "database is locked" (its snapshot is stale); BEGIN IMMEDIATE makes it wait its turn."""
    settings = migrated_sqlite(tmp_path)
    select_age = select(hero_table.c.age).where(hero_table.c.id == bindparam("hero_id"))
    set_age = (
        hero_table.update()
        .where(hero_table.c.id == bindparam("hero_id"))
        .values(age=bindparam("age"))
    )
    insert = hero_table.insert().values(id=1, name="Counter", age=0, secret_name="s")
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    async def increment_once() -> None:
        database = create_database(settings)
        await database.connect()
        try:
            start.wait(10)
            async with database.transaction() as connection:
                row = await connection.fetch_one(select_age, {"hero_id": 1})
                assert row is not None
                time.sleep(0.2)  # noqa: ASYNC251  (blocks on purpose: both transactions open)
                await connection.execute(set_age, {"hero_id": 1, "age": row["age"] + 1})
        finally:
            await database.close()

    def worker() -> None:
        try:
            asyncio.run(increment_once())
        except BaseException as error:
            errors.append(error)

    async def setup_and_read(step: str) -> int:
        database = create_database(settings)
        await database.connect()
        try:
            if step == "setup":
                async with database.transaction() as connection:
                    await connection.execute(insert, {})
            async with database.connection() as connection:
                row = await connection.fetch_one(select_age, {"hero_id": 1})
                assert row is not None
                age: int = row["age"]
                return age
        finally:
            await database.close()

    asyncio.run(setup_and_read("setup"))
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert asyncio.run(setup_and_read("read")) == 2  # no lost update either


HEROES = 1500


def _sqlite_client(tmp_path: Path) -> Any:
    return running_app(make_settings(f"sqlite:///{tmp_path / 'pages.db'}", migrate_on_start=True))


def _fill(path: Path) -> None:
    with sqlite3.connect(path) as raw:
        raw.executemany(
            "INSERT INTO hero (id, name, secret_name) VALUES (?, ?, 's')",
            [(number, f"hero {number}") for number in range(1, HEROES + 1)],
        )


def _ids(client: TestClient, offset: int, limit: int = 100) -> list[int]:
    response = client.get("/heroes/", params={"offset": offset, "limit": limit})
    assert response.status_code == 200
    return [hero["id"] for hero in response.json()]


def test_deep_pages_stay_right_whoever_changes_the_table(tmp_path: Path) -> None:
    path = tmp_path / "pages.db"
    with _sqlite_client(tmp_path) as client:
        _fill(path)
        assert _ids(client, 1200, 3) == [1201, 1202, 1203]
        assert _ids(client, 1250, 3) == [1251, 1252, 1253]  # from the page before
        # This process deletes a hero before the pages: every later position moves down.
        assert client.delete("/heroes/10").status_code == 200
        assert _ids(client, 1200, 3) == [1202, 1203, 1204]
        # Another process (another connection) deletes one, then puts an old id back.
        with sqlite3.connect(path) as raw:
            raw.execute("DELETE FROM hero WHERE id = 20")
        assert _ids(client, 1200, 3) == [1203, 1204, 1205]
        with sqlite3.connect(path) as raw:
            raw.execute("INSERT INTO hero (id, name, secret_name) VALUES (10, 'back', 's')")
        assert _ids(client, 1200, 3) == [1202, 1203, 1204]
        # A new hero goes to the end: the pages before it stay as they were.
        client.post("/heroes/", json={"name": "new", "secret_name": "s"})
        assert _ids(client, 1200, 3) == [1202, 1203, 1204]
        assert _ids(client, HEROES - 2, 5) == [HEROES, HEROES + 1]
        assert _ids(client, 5000) == []


def test_a_deep_page_read_again_does_not_step_over_its_offset(tmp_path: Path) -> None:
    with _sqlite_client(tmp_path) as client:
        _fill(tmp_path / "pages.db")
        raw = client.app.state.database._raw
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        raw.set_progress_handler(count, 10)  # called every 10 virtual machine instructions
        assert _ids(client, 1400, 2) == [1401, 1402]
        first = steps
        steps = 0
        assert _ids(client, 1400, 2) == [1401, 1402]
        assert _ids(client, 1410, 2) == [1411, 1412]
        raw.set_progress_handler(None, 10)
        assert first > 1400 / 10  # the first read stepped over every row before its page
        assert steps < first / 10  # the next ones started where that page starts


# Group commit: writes that arrive together share one transaction, each still on its own.

_INSERT_NAMED = hero_table.insert().values(name=bindparam("name"), secret_name="s")


def stored_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as raw:  # another connection: sees committed rows only
        return {name for (name,) in raw.execute("SELECT name FROM hero")}


async def connected(settings: Settings) -> SQLiteDatabase:
    database = SQLiteDatabase(settings.database, settings)
    await database.connect()
    return database


def test_writes_that_arrive_together_are_committed_together(tmp_path: Path) -> None:
    settings = migrated_sqlite(tmp_path)

    async def write_together() -> tuple[list[Any], int]:
        database = await connected(settings)
        try:
            names = [f"hero {number}" for number in range(20)]
            results = await asyncio.gather(
                *(database.write(_INSERT_NAMED, {"name": name}) for name in names)
            )
            assert database.group_commit is not None
            return [result.lastrowid for result in results], database.group_commit.batches
        finally:
            await database.close()

    ids, batches = asyncio.run(write_together())
    assert batches == 1  # one transaction for all twenty
    assert len(set(ids)) == 20
    assert stored_names(tmp_path / "server.db") == {f"hero {number}" for number in range(20)}


def test_a_refused_write_fails_alone_in_its_batch(tmp_path: Path) -> None:
    settings = migrated_sqlite(tmp_path)

    async def write_together() -> list[Any]:
        database = await connected(settings)
        try:
            results = await asyncio.gather(
                database.write(_INSERT_NAMED, {"name": "first"}),
                database.write(_INSERT_NAMED, {"name": None}),  # NOT NULL
                database.write(_INSERT_NAMED, {"name": "third"}),
                return_exceptions=True,
            )
            return list(results)
        finally:
            await database.close()

    first, refused, third = asyncio.run(write_together())
    assert isinstance(refused, IntegrityViolation)
    assert first.rowcount == third.rowcount == 1
    assert stored_names(tmp_path / "server.db") == {"first", "third"}


def test_an_error_that_ends_the_transaction_fails_the_whole_batch(tmp_path: Path) -> None:
    settings = migrated_sqlite(tmp_path)

    async def write_together() -> list[Any]:
        database = await connected(settings)
        try:
            async with database.connection() as connection:
                # RAISE(ROLLBACK) ends the whole transaction, as a full disk or an I/O error can.
                await connection.execute(
                    text(
                        "CREATE TEMP TRIGGER doom BEFORE INSERT ON hero WHEN NEW.name = 'doom' "
                        "BEGIN SELECT RAISE(ROLLBACK, 'doomed'); END"
                    ),
                    {},
                )
            return await asyncio.gather(
                *(database.write(_INSERT_NAMED, {"name": name}) for name in ("a", "doom", "b")),
                return_exceptions=True,
            )
        finally:
            await database.close()

    results = asyncio.run(write_together())
    assert all(isinstance(result, IntegrityViolation) for result in results)
    assert stored_names(tmp_path / "server.db") == set()


class Abandon(Exception):
    pass


async def abandoned_transaction(database: SQLiteDatabase) -> None:
    """A request's transaction that writes, awaits something, then fails (rolled back)."""
    with contextlib.suppress(Abandon):
        async with database.transaction() as connection:
            await connection.execute(_INSERT_NAMED, {"name": "rolled back"})
            await asyncio.sleep(0.2)  # e.g. hashing a password
            raise Abandon


def test_a_write_waits_for_an_open_transaction_and_stays_out_of_it(tmp_path: Path) -> None:
    settings = migrated_sqlite(tmp_path)

    async def transaction_then_write() -> None:
        database = await connected(settings)
        try:
            transaction = asyncio.create_task(abandoned_transaction(database))
            await asyncio.sleep(0.05)
            await database.write(_INSERT_NAMED, {"name": "kept"})
            assert transaction.done()  # the write waited for the transaction to end
        finally:
            await database.close()

    asyncio.run(transaction_then_write())
    assert stored_names(tmp_path / "server.db") == {"kept"}


def test_a_read_never_sees_another_requests_open_transaction(tmp_path: Path) -> None:
    settings = migrated_sqlite(tmp_path)
    names = select(hero_table.c.name).order_by(hero_table.c.name)

    async def transaction_then_reads() -> list[Any]:
        database = await connected(settings)
        try:
            await database.write(_INSERT_NAMED, {"name": "committed"})
            transaction = asyncio.create_task(abandoned_transaction(database))
            await asyncio.sleep(0.05)
            # Same connection, but these wait for the transaction's end: no uncommitted row.
            seen = [
                await database.fetch_values(names, {}),
                await database.fetch_all_values(names, {}),
                await database.fetch_one(names, {}),
                await database.fetch_all(names, {}),
            ]
            assert transaction.done()
            # With no transaction open, they run at once.
            seen.append(await database.fetch_all_values(names, {}))
            return seen
        finally:
            await database.close()

    one, every, row, rows, later = asyncio.run(transaction_then_reads())
    assert one == ("committed",)
    assert every == later == [("committed",)]
    assert row == {"name": "committed"}
    assert rows == [{"name": "committed"}]


# A database on a network filesystem is refused at connect (WAL needs local shared memory and
# locks). The mounts come from a crafted /proc/self/mountinfo, or from the real one.

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /srv/shared\\040drive rw,relatime shared:20 - nfs4 nas:/export rw,vers=4.2
41 40 8:2 / /srv/shared\\040drive/scratch rw shared:21 - ext4 /dev/sda2 rw
42 22 0:36 / /mnt/office rw - cifs //server/office rw
43 22 0:37 / /mnt/office rw master:3 - tmpfs tmpfs rw
"""


def crafted_mountinfo(tmp_path: Path, *lines: str) -> Path:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO + "".join(lines))
    return mountinfo


@pytest.mark.parametrize(
    ("database", "refused_on"),
    [
        ("/srv/shared drive/heroapi.db", "nfs4 mounted at /srv/shared drive"),  # \040: a space
        ("/srv/shared drive/deep/down/heroapi.db", "nfs4 mounted at /srv/shared drive"),
        ("/srv/shared drive/scratch/heroapi.db", None),  # a local disk mounted inside it
        ("/srv/shared drivers/heroapi.db", None),  # a longer name, not inside it: on /
        ("/mnt/office/heroapi.db", None),  # a tmpfs mounted over the share hides it
        ("/var/lib/heroapi/heroapi.db", None),
    ],
)
def test_the_mount_holding_the_database_decides(
    tmp_path: Path, database: str, refused_on: str | None
) -> None:
    mountinfo = crafted_mountinfo(tmp_path)
    if refused_on is None:
        refuse_network_filesystem(database, mountinfo)
        return
    with pytest.raises(NetworkFilesystem) as refused:
        refuse_network_filesystem(database, mountinfo)
    message = str(refused.value)
    assert "\n" not in message
    assert f"{database} is on a network filesystem ({refused_on})" in message
    assert "WAL mode needs shared memory and file locks" in message


def test_a_database_on_a_network_filesystem_is_refused_at_connect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real tmp directory, said by a crafted mountinfo to be an NFS share: `connect()`
    refuses before SQLite makes a file there, and `heroapi serve` says why in one line."""
    share = tmp_path / "share"
    share.mkdir()
    mountinfo = crafted_mountinfo(tmp_path, f"50 22 0:40 / {share} rw - nfs nas:/x rw\n")
    settings = make_settings(f"sqlite:///{share / 'heroapi.db'}")
    database = SQLiteDatabase(settings.database, settings)
    database.mountinfo = mountinfo
    with pytest.raises(NetworkFilesystem, match=r"\(nfs mounted at "):
        asyncio.run(database.connect())
    assert list(share.iterdir()) == []

    # What someone running `heroapi serve` (HEROAPI_MIGRATE_ON_START=false) on a database file
    # copied there sees (without the file, it is told there is none: tests/test_cli.py).
    from heroapi.cli.serve import prepare_database

    (share / "heroapi.db").touch()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SQLiteDatabase, "mountinfo", mountinfo)
        with pytest.raises(typer.Exit):
            prepare_database(settings)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"heroapi: cannot reach {settings.database.render()}: ")
    assert "is on a network filesystem (nfs mounted at" in line


def test_the_real_mounts_hold_a_local_tmp_directory(tmp_path: Path) -> None:
    mountinfo = Path("/proc/self/mountinfo")
    if not mountinfo.exists():
        pytest.skip("no /proc/self/mountinfo (not Linux)")
    mount = mount_holding(str(tmp_path.resolve()), parse_mountinfo(mountinfo.read_text()))
    assert mount is not None
    assert mount.fstype not in NETWORK_FILESYSTEMS
    refuse_network_filesystem(str(tmp_path / "heroapi.db"))  # what connect() runs: no error

"""The server databases' connection pool: who gets a connection when, and what a wait costs."""

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from heroapi.db import DatabaseUnavailable
from heroapi.db.pool import Pool


class Connections:
    """Stand-ins for a driver's connections: numbered, counted, and refusable."""

    def __init__(self) -> None:
        self.numbers = itertools.count(1)
        self.closed: list[int] = []
        self.refuse = False
        self.most_open = 0  # the most connections open (or being opened) at once

    async def open(self) -> int:
        refuse = self.refuse
        number = next(self.numbers)
        self.most_open = max(self.most_open, number - len(self.closed))
        await asyncio.sleep(0)  # a real connect yields to the loop
        if refuse:
            self.closed.append(number)
            raise ConnectionRefusedError("refused")
        return number

    async def close(self, connection: int) -> None:
        self.closed.append(connection)


def run(
    test: Callable[[Pool[int], Connections], Coroutine[Any, Any, None]],
    *,
    size: int = 1,
    timeout: float = 0.5,
) -> None:
    connections = Connections()
    pool = Pool(connections.open, connections.close, size=size, timeout=timeout)
    asyncio.run(test(pool, connections))


def test_a_connection_coming_back_goes_to_the_first_in_line() -> None:
    async def scenario(pool: Pool[int], connections: Connections) -> None:
        held = await pool.acquire()
        served: list[str] = []

        async def request(name: str) -> None:
            connection = await pool.acquire()
            served.append(name)
            await asyncio.sleep(0.01)
            pool.release(connection)

        tasks = [asyncio.create_task(request(name)) for name in "abcd"]
        await asyncio.sleep(0.01)
        assert served == []  # all four wait: the pool's one connection is held
        pool.release(held)
        await asyncio.gather(*tasks)
        assert served == ["a", "b", "c", "d"]
        assert await pool.acquire() == held  # still one connection, never a second one

    run(scenario)


# The pool's timeout in the two tests of deadlines below, and how far apart their waiters come:
# a loop held up by a loaded machine for less than GAP cannot make them fail, while a waiter
# failed at another's deadline (GAP earlier or later than its own) does.
TIMEOUT = 1.0
GAP = 0.5


def test_a_wait_ends_in_unavailable_after_the_timeout_and_the_line_goes_on() -> None:
    async def scenario(pool: Pool[int], connections: Connections) -> None:
        held = await pool.acquire()
        started = time.monotonic()
        first = asyncio.create_task(pool.acquire())
        await asyncio.sleep(GAP)
        second = asyncio.create_task(pool.acquire())
        with pytest.raises(DatabaseUnavailable, match="no database connection free within"):
            await first
        assert TIMEOUT - 0.05 < time.monotonic() - started < TIMEOUT + GAP
        assert not second.done()  # its own timeout has not passed
        pool.release(held)
        assert await second == held

    run(scenario, timeout=TIMEOUT)


def test_every_waiter_times_out_on_its_own_deadline() -> None:
    async def scenario(pool: Pool[int], connections: Connections) -> None:
        await pool.acquire()
        waited: list[float] = []

        async def wait() -> None:
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable):
                await pool.acquire()
            waited.append(time.monotonic() - started)

        tasks = []
        for _ in range(3):
            tasks.append(asyncio.create_task(wait()))
            await asyncio.sleep(GAP)
        await asyncio.gather(*tasks)
        assert len(waited) == 3
        for seconds in waited:
            assert TIMEOUT - 0.05 < seconds < TIMEOUT + GAP

    run(scenario, timeout=TIMEOUT)


def test_a_cancelled_waiter_takes_nothing_with_it() -> None:
    async def scenario(pool: Pool[int], connections: Connections) -> None:
        held = await pool.acquire()
        gone = asyncio.create_task(pool.acquire())
        after = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0.01)
        pool.release(held)
        assert await after == held
        # Cancelled in the same turn its connection was handed over: it passes it on.
        late = asyncio.create_task(pool.acquire())
        last = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.01)
        pool.release(held)
        late.cancel()
        assert await last == held
        assert late.cancelled()

    run(scenario)


def test_a_closed_connection_lets_the_next_in_line_open_another() -> None:
    async def scenario(pool: Pool[int], connections: Connections) -> None:
        broken = await pool.acquire()
        waiting = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.01)
        await pool.discard(broken)
        assert await waiting == 2
        assert connections.closed == [broken]

    run(scenario)


def test_a_freed_slot_is_kept_for_the_first_in_line() -> None:
    async def scenario(pool: Pool[int], connections: Connections) -> None:
        broken = await pool.acquire()
        waiting = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.01)
        # A request the loop runs before the waiter wakes up: it must not take the slot.
        newcomer = asyncio.create_task(pool.acquire())
        await pool.discard(broken)
        assert await waiting == 2
        await asyncio.sleep(0.01)
        assert not newcomer.done()
        pool.release(2)
        assert await newcomer == 2
        assert connections.most_open == 1

    run(scenario)


def test_a_failed_connect_lets_the_next_in_line_try() -> None:
    async def scenario(pool: Pool[int], connections: Connections) -> None:
        connections.refuse = True
        first = asyncio.create_task(pool.acquire())
        second = asyncio.create_task(pool.acquire())  # waits: the one slot is being opened
        await asyncio.sleep(0)
        connections.refuse = False
        with pytest.raises(ConnectionRefusedError):
            await first
        assert await second == 2  # the refused attempt was number 1
        assert connections.most_open == 1

    run(scenario)

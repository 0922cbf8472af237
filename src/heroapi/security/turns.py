"""Turns at the password-hashing workers: fair between clients, bounded in count and time."""

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator


class HashingBusy(Exception):
    """No hashing turn came within the wait, or too many requests wait already: retry shortly."""


# A lane of waiting requests: each client's waiters in arrival order, the clients in the order
# they take their turns.
Lane = OrderedDict[str, deque["asyncio.Future[None]"]]


class Turns:
    """`slots` turns at once, handed to waiting clients in rotation.

    A client (an address, as the throttle groups them) that asks while every slot is taken waits
    its turn: each freed slot goes to the next client in the rotation, so a client with a
    hundred requests waiting gets one turn per round like a client with one. `preferred`
    clients (whose last login here succeeded) wait in a lane of their own: a request there is
    next, but the other lane still gets every other turn. At most `max_waiting` requests wait,
    each at most `max_wait` seconds: past the first, the newest waiter of the client with the
    most is dropped to make room (or, when that is the newcomer's own client, the newcomer is
    refused); past the second, `HashingBusy`.
    """

    def __init__(self, *, slots: int, max_waiting: int, max_wait: float) -> None:
        self._free = slots
        self._max_waiting = max_waiting
        self._max_wait = max_wait
        self._lanes: tuple[Lane, Lane] = (OrderedDict(), OrderedDict())  # others, preferred
        self._waiting = 0  # only touched on the event loop's thread, like everything here
        self._preferred_next = True

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextlib.asynccontextmanager
    async def turn(self, client: str, *, preferred: bool = False) -> AsyncIterator[None]:
        """Hold one slot for the block, once it is `client`'s turn."""
        await self._acquire(client, self._lanes[preferred])
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, client: str, lane: Lane) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        if self._waiting >= self._max_waiting and not self._drop_for(client):
            raise HashingBusy
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.setdefault(client, deque()).append(waiter)
        self._waiting += 1
        try:
            async with asyncio.timeout(self._max_wait):
                await waiter
        except TimeoutError:
            self._give_up(lane, client, waiter)
            raise HashingBusy from None
        except BaseException:
            self._give_up(lane, client, waiter)
            raise

    def _give_up(self, lane: Lane, client: str, waiter: "asyncio.Future[None]") -> None:
        """A waiter stops waiting (its wait ended, it was dropped, or its request cancelled)."""
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            self._release()  # its turn came just as it gave up: pass the slot on
            return
        waiters = lane.get(client)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            self._waiting -= 1
            if not waiters:
                del lane[client]

    def _drop_for(self, client: str) -> bool:
        """Make room for one more of `client`'s requests by dropping the newest waiter of the
        client with the most waiting, if that client has more waiting than `client` does."""
        if not self._waiting:
            return False
        own = sum(len(lane.get(client, ())) for lane in self._lanes)
        lane, busiest = max(
            ((lane, name) for lane in self._lanes for name in lane),
            key=lambda entry: len(entry[0][entry[1]]),
        )
        if len(lane[busiest]) <= own + 1:
            return False
        dropped = lane[busiest].pop()
        self._waiting -= 1
        dropped.set_exception(HashingBusy())
        return True

    def _release(self) -> None:
        """A slot is free: the next waiter's turn, or free for whoever asks next."""
        while self._waiting:
            lane = self._next_lane()
            client, waiters = next(iter(lane.items()))
            waiter = waiters.popleft()
            if waiters:
                lane.move_to_end(client)
            else:
                del lane[client]
            self._waiting -= 1
            if not waiter.done():  # a cancelled request's waiter may still be there
                waiter.set_result(None)
                return
        self._free += 1

    def _next_lane(self) -> Lane:
        """The preferred lane, unless its last turn was the last one given while others waited:
        a preferred request that comes is next, and the others still get every other turn."""
        others, preferred = self._lanes
        if not others or not preferred:
            lane = preferred or others
        else:
            lane = preferred if self._preferred_next else others
        self._preferred_next = lane is others
        return lane

"""Turns at the password-hashing workers (`security.Turns`): fair between clients, bounded in
how many wait and for how long."""

import asyncio

import pytest

from heroapi.security import HashingBusy, Turns


async def take_turns(
    turns: Turns, requests: list[str], *, preferred: frozenset[str] = frozenset()
) -> list[str]:
    """Each request (named by its client) asks for a turn in this order, all while the one slot
    is held; the order in which they got it."""
    order: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.turn("holder"):
            await release.wait()

    async def request(client: str) -> None:
        async with turns.turn(client, preferred=client in preferred):
            order.append(client)
            await asyncio.sleep(0)

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = []
    for client in requests:
        waiting.append(asyncio.create_task(request(client)))
        await asyncio.sleep(0)
    release.set()
    await asyncio.gather(held, *waiting)
    return order


def test_clients_take_turns_in_rotation() -> None:
    turns = Turns(slots=1, max_waiting=100, max_wait=10)
    order = asyncio.run(take_turns(turns, ["flood"] * 5 + ["a", "b"]))
    assert order == ["flood", "a", "b", "flood", "flood", "flood", "flood"]


def test_preferred_clients_are_served_every_other_turn() -> None:
    turns = Turns(slots=1, max_waiting=100, max_wait=10)
    requests = ["x", "y", "z", "known", "known"]
    order = asyncio.run(take_turns(turns, requests, preferred=frozenset({"known"})))
    assert order == ["known", "x", "known", "y", "z"]


def test_a_full_queue_drops_the_newest_waiter_of_the_busiest_client() -> None:
    async def scenario() -> list[str]:
        turns = Turns(slots=1, max_waiting=3, max_wait=10)
        outcomes: list[str] = []
        release = asyncio.Event()

        async def holder() -> None:
            async with turns.turn("holder"):
                await release.wait()

        async def request(client: str) -> None:
            try:
                async with turns.turn(client):
                    outcomes.append(f"{client} hashed")
            except HashingBusy:
                outcomes.append(f"{client} busy")

        held = asyncio.create_task(holder())
        await asyncio.sleep(0)
        tasks = []
        for client in ["flood", "flood", "flood", "other", "flood"]:
            tasks.append(asyncio.create_task(request(client)))
            await asyncio.sleep(0)
        release.set()
        await asyncio.gather(held, *tasks)
        return outcomes

    outcomes = asyncio.run(scenario())
    # "other" took the third flood waiter's place; the fifth flood request found no room.
    assert outcomes[:2] == ["flood busy", "flood busy"]
    assert sorted(outcomes[2:]) == ["flood hashed", "flood hashed", "other hashed"]


def test_a_waiter_gives_up_after_the_longest_wait_and_frees_its_place() -> None:
    async def scenario() -> tuple[float, int]:
        turns = Turns(slots=1, max_waiting=10, max_wait=0.2)
        async with turns.turn("holder"):
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(HashingBusy):
                async with turns.turn("late"):
                    pass
            waited = loop.time() - started
            still_waiting = turns.waiting
        async with turns.turn("next"):  # the slot is free again, nobody waits
            pass
        return waited, still_waiting

    waited, still_waiting = asyncio.run(scenario())
    assert 0.2 <= waited < 2
    assert still_waiting == 0


def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    async def scenario() -> list[str]:
        turns = Turns(slots=1, max_waiting=10, max_wait=10)
        order: list[str] = []
        release = asyncio.Event()

        async def holder() -> None:
            async with turns.turn("holder"):
                await release.wait()

        async def request(client: str) -> None:
            async with turns.turn(client):
                order.append(client)

        held = asyncio.create_task(holder())
        await asyncio.sleep(0)
        gone = asyncio.create_task(request("gone"))
        await asyncio.sleep(0)
        kept = asyncio.create_task(request("kept"))
        await asyncio.sleep(0)
        gone.cancel()  # its client hung up
        release.set()
        await asyncio.gather(held, kept)
        await asyncio.gather(gone, return_exceptions=True)
        assert turns.waiting == 0
        async with turns.turn("after"):  # every slot came back
            order.append("after")
        return order

    assert asyncio.run(scenario()) == ["kept", "after"]

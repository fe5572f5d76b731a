"""The scheduler's relay of a run's log to the registry: in order, batched, never blocking."""

from __future__ import annotations

import asyncio

from services.scheduler.log_relay import LogRelay


def test_chunks_arriving_during_an_append_go_together_in_order() -> None:
    stored: list[bytes] = []

    async def scenario() -> None:
        gate = asyncio.Event()

        async def append(data: bytes) -> bool:
            await gate.wait()
            stored.append(data)
            return True

        relay = LogRelay(append)
        relay.send(b"line 0\n")
        await asyncio.sleep(0)  # its append is under way now, waiting for the gate
        for i in range(1, 5):
            relay.send(b"line %d\n" % i)  # returns at once
        gate.set()
        await relay.settle()

    asyncio.run(scenario())
    assert stored == [b"line 0\n", b"line 1\nline 2\nline 3\nline 4\n"]


def test_a_failed_append_loses_its_lines_but_not_the_later_ones() -> None:
    stored: list[bytes] = []

    async def scenario() -> None:
        async def append(data: bytes) -> bool:
            if data.startswith(b"bad"):
                raise RuntimeError("registry hiccup")
            stored.append(data)
            return True

        relay = LogRelay(append)
        relay.send(b"bad\n")
        await relay.settle()
        relay.send(b"good\n")
        await relay.settle()

    asyncio.run(scenario())
    assert stored == [b"good\n"]


def test_nothing_more_is_sent_once_the_run_is_gone() -> None:
    calls: list[bytes] = []

    async def scenario() -> None:
        async def append(data: bytes) -> bool:
            calls.append(data)
            return False

        relay = LogRelay(append)
        relay.send(b"a\n")
        await relay.settle()
        relay.system("later")
        await relay.settle()

    asyncio.run(scenario())
    assert calls == [b"a\n"]

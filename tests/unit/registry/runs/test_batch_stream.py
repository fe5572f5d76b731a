"""BatchStreams, the registry's side of RecordRunStream, on its own: each batch is answered as soon
as it is stored, in the order they are stored; a registry that stops answers what it has read
before it ends the stream, and ends one opened afterwards at once; an error `answer_one` raises
ends the stream with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from services.registry.runs.batch_stream import BatchStreams

pytestmark = pytest.mark.asyncio(loop_scope="function")


class Caller:
    """The scheduler's side: batches sent when the test says, and the stream left open."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[int] = asyncio.Queue()

    async def batches(self) -> AsyncIterator[int]:
        while True:
            yield await self.sent.get()


class Store:
    """Stores batch n once the test releases n; answers n * 10."""

    def __init__(self) -> None:
        self.released: dict[int, asyncio.Event] = {}
        self.started: list[int] = []

    async def answer(self, batch: int) -> int:
        self.started.append(batch)
        await self.released.setdefault(batch, asyncio.Event()).wait()
        if batch < 0:
            raise RuntimeError("the store broke")
        return batch * 10

    def release(self, batch: int) -> None:
        self.released.setdefault(batch, asyncio.Event()).set()


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never")


async def test_batches_are_stored_together_and_answered_as_each_is_stored() -> None:
    caller, store = Caller(), Store()
    answers = BatchStreams().answer(caller.batches(), store.answer)
    for batch in (1, 2):
        caller.sent.put_nowait(batch)
    first = asyncio.ensure_future(anext(answers))
    await until(lambda: store.started == [1, 2])  # the second is read while the first is stored
    store.release(2)
    assert await first == 20
    store.release(1)
    assert await anext(answers) == 10
    await answers.aclose()


async def test_a_stopping_registry_answers_what_it_read_then_ends_the_stream() -> None:
    caller, store, streams = Caller(), Store(), BatchStreams()
    answers = streams.answer(caller.batches(), store.answer)
    caller.sent.put_nowait(1)
    pending = asyncio.ensure_future(anext(answers))
    await until(lambda: store.started == [1])
    closed = asyncio.ensure_future(streams.close(grace=30))
    await asyncio.sleep(0.01)
    caller.sent.put_nowait(2)  # sent after the stop began: never read
    assert not closed.done()  # it waits for the answer of what was read
    store.release(1)
    assert await pending == 10
    with pytest.raises(StopAsyncIteration):
        await anext(answers)
    await closed
    assert store.started == [1]
    late = [answer async for answer in streams.answer(Caller().batches(), store.answer)]
    assert late == []  # a stream opened after the stop ends at once


async def test_an_error_of_the_store_ends_the_stream_with_it() -> None:
    caller, store = Caller(), Store()
    answers = BatchStreams().answer(caller.batches(), store.answer)
    caller.sent.put_nowait(-1)
    store.release(-1)
    with pytest.raises(RuntimeError, match="the store broke"):
        await anext(answers)

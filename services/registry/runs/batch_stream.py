"""RecordRunStream's server side: the scheduler's batches of run updates on one long-lived stream.

A batch is answered on its own as soon as it is stored, and the stream reads the next one while
earlier ones are stored (as two RecordRuns calls under way at once would be): batches in flight
together may be answered in either order, so each answer names its batch. What a batch's answer is
(its outcomes, or the error of a batch that failed as a whole) is the caller's `answer_one`; this
module only keeps the stream.

Unlike a call, the stream never ends by itself, and a server stopping waits for its calls up to
its grace. So when the registry stops, `close` makes every open stream stop reading, answer the
batches it has read, and end OK; the scheduler opens a new one (on this registry's successor) for
its next batch. A batch it sent that was never read is answered by no one: the scheduler fails it
as unavailable, as it would a call the stopping server refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TypeVar

Batch = TypeVar("Batch")
Answer = TypeVar("Answer")

_END = object()


class BatchStreams:
    """The open streams of one registry, so that its stop can end them."""

    def __init__(self) -> None:
        self._closing = asyncio.Event()
        self._open = 0
        self._none_open = asyncio.Event()
        self._none_open.set()

    async def answer(
        self, batches: AsyncIterator[Batch], answer_one: Callable[[Batch], Awaitable[Answer]]
    ) -> AsyncGenerator[Answer, None]:
        """The answers to `batches`, each as soon as `answer_one` gives it, until the caller stops
        sending or the registry stops (then after the answers of what was read). An exception
        `answer_one` raises ends the stream with it."""
        if self._closing.is_set():
            return
        self._open += 1
        self._none_open.clear()
        answers: asyncio.Queue[object] = asyncio.Queue()
        reader = asyncio.create_task(self._read(batches, answer_one, answers))
        try:
            while (item := await answers.get()) is not _END:
                if isinstance(item, Exception):
                    raise item
                yield item  # type: ignore[misc]  # an Answer: put there by `_read` only
        finally:
            reader.cancel()
            self._open -= 1
            if not self._open:
                self._none_open.set()

    async def close(self, grace: float) -> None:
        """Ends every open stream once it has answered what it read; waits up to `grace` seconds
        for them. Streams opened afterwards end at once."""
        self._closing.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._none_open.wait()

    async def _read(
        self,
        batches: AsyncIterator[Batch],
        answer_one: Callable[[Batch], Awaitable[Answer]],
        answers: asyncio.Queue[object],
    ) -> None:
        under_way: set[asyncio.Task[None]] = set()

        async def one(batch: Batch) -> None:
            try:
                answers.put_nowait(await answer_one(batch))
            except Exception as exc:  # the stream ends with it (answer_one answers what it can)
                answers.put_nowait(exc)

        try:
            async for batch in self._until_closing(batches):
                task = asyncio.create_task(one(batch))
                under_way.add(task)
                task.add_done_callback(under_way.discard)
            if under_way:
                await asyncio.wait(under_way)
        except Exception as exc:  # the caller's side broke: the stream ends
            answers.put_nowait(exc)
        finally:
            for task in under_way:
                task.cancel()  # only when the stream itself was cancelled
            answers.put_nowait(_END)

    async def _until_closing(self, batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
        iterator = aiter(batches)
        closing = asyncio.ensure_future(self._closing.wait())
        following: asyncio.Future[Batch] | None = None
        try:
            while True:
                following = asyncio.ensure_future(anext(iterator))
                await asyncio.wait((following, closing), return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    return
                try:
                    batch = following.result()
                except StopAsyncIteration:
                    return
                yield batch
        finally:
            closing.cancel()
            # A read still under way when the stream is left (closing, or this generator closed
            # while it waited): cancelled, or its outcome taken, so none is left unretrieved.
            if following is not None:
                if following.done():
                    if not following.cancelled():
                        following.exception()
                else:
                    following.cancel()

"""The ledger's batches on one long-lived RecordRunStream to the registry.

A new call per batch costs more than its message: on a machine that sat idle, a RecordRuns call
round-trips in about 2 ms where a message on an open stream takes 1 ms, and a run's claim is on the
way from a trigger to an executor (docs/scaling.md). So the ledger writes each batch on one stream,
tagged with a batch id, and a reader resolves each batch by the id of its answer.

A batch gets what its RecordRuns call would have given: the results, or an AioRpcError with the
code and reason of a batch that failed as a whole. The stream opens at the first batch and again
after it ended; when it ends (the registry stopped, the connection broke), every batch still
unanswered on it fails with the stream's error, or UNAVAILABLE when it ended OK (a registry that
stops answers what it read, then ends it). A batch not sent and answered within `answer_within`
seconds fails with DEADLINE_EXCEEDED and takes the stream down with it: a stream that answers
nothing is not trusted with the next batch. A registry without RecordRunStream fails the first
batch with UNIMPLEMENTED, and the ledger falls back to RecordRuns calls.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import grpc

from services.common.errors import answered_error
from services.scheduler.clients import RegistryClient
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2


def _stream_error(code: grpc.StatusCode, message: str) -> grpc.aio.AioRpcError:
    """A failure of the stream, not of the batch: no reason, as the network's own."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), message, "")


def _unavailable(message: str) -> grpc.aio.AioRpcError:
    return _stream_error(grpc.StatusCode.UNAVAILABLE, message)


@dataclass
class _Stream:
    call: Any  # grpc.aio.StreamStreamCall
    unanswered: dict[int, asyncio.Future[pb2.RecordRunStreamResponse]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None


class RecordStream:
    def __init__(self, registry: RegistryClient, answer_within: float) -> None:
        self._registry = registry
        self._answer_within = answer_within
        self._stream: _Stream | None = None
        self._batch_ids = itertools.count(1)
        self._writing = asyncio.Lock()  # one write at a time on a stream

    async def record(self, updates: list[pb2.RunUpdate]) -> list[pb2.RunUpdateResult]:
        """The batch's results, one per update; raises AioRpcError as its RecordRuns call would."""
        stream = self._stream or self._open()
        batch_id = next(self._batch_ids)
        answered: asyncio.Future[pb2.RecordRunStreamResponse] = asyncio.get_running_loop().create_future()
        stream.unanswered[batch_id] = answered
        request = pb2.RecordRunStreamRequest(batch_id=batch_id, updates=updates)
        try:
            async with asyncio.timeout(self._answer_within):  # the write too: a stuck stream blocks it
                await self._write(stream, request)
                response = await answered
        except TimeoutError:
            silent = f"no answer on the run stream in {self._answer_within:.0f} s"
            self._ended(stream, _unavailable(silent))
            stream.call.cancel()
            raise _stream_error(grpc.StatusCode.DEADLINE_EXCEEDED, silent) from None
        if response.code:
            raise answered_error(response.code, response.message, response.reason)
        return list(response.results)

    async def _write(self, stream: _Stream, request: pb2.RecordRunStreamRequest) -> None:
        """Sends the batch; a stream found ended fails its unanswered batches, this one with them."""
        try:
            async with self._writing:
                await stream.call.write(request)
        except grpc.aio.AioRpcError as exc:  # the stream had failed: it says why
            self._ended(stream, exc)
        except asyncio.InvalidStateError:  # it had ended OK (the registry stopped)
            self._ended(stream, _unavailable("the registry ended the run stream"))

    async def close(self) -> None:
        """Ends the stream; batches still unanswered are cancelled."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        stream.call.cancel()
        for future in stream.unanswered.values():
            future.cancel()
        if stream.reader is not None:
            stream.reader.cancel()
            await asyncio.gather(stream.reader, return_exceptions=True)

    def _open(self) -> _Stream:
        stream = _Stream(self._registry.internal.RecordRunStream(metadata=self._registry.metadata))
        stream.reader = asyncio.get_running_loop().create_task(self._read(stream))
        self._stream = stream
        return stream

    async def _read(self, stream: _Stream) -> None:
        error = _unavailable("the registry ended the run stream")
        try:
            async for response in stream.call:
                answered = stream.unanswered.pop(response.batch_id, None)
                if answered is not None and not answered.done():
                    answered.set_result(response)
        except grpc.aio.AioRpcError as exc:
            error = exc
        finally:
            self._ended(stream, error)

    def _ended(self, stream: _Stream, error: grpc.aio.AioRpcError) -> None:
        """The stream is done: its unanswered batches fail with `error`; the next batch opens another."""
        if self._stream is stream:
            self._stream = None
        unanswered, stream.unanswered = stream.unanswered, {}
        for future in unanswered.values():
            if not future.done():
                future.set_exception(error)

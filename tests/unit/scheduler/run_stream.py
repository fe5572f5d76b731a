"""RecordRunStream for the scheduler's scripted registries: each batch answered as the registry's
own RecordRuns call answers it, as soon as that call ends, so the ledger's stream is what the tests
go through. A call that fails breaks the stream with its error (as a registry that failed inside a
stream's batch would end it); `available=False` plays a registry without the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2

RecordRuns = Callable[..., Awaitable[pb2.RecordRunsResponse]]


def transport(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    """A failure the network or the gRPC runtime made: no reason."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, "")


class StreamOfCalls:
    def __init__(self, record_runs: RecordRuns, available: bool = True) -> None:
        self._record_runs = record_runs
        self._available = available
        self._answers: asyncio.Queue[pb2.RecordRunStreamResponse | grpc.aio.AioRpcError] = asyncio.Queue()
        self._answering: set[asyncio.Task[None]] = set()

    async def write(self, request: pb2.RecordRunStreamRequest) -> None:
        if not self._available:
            raise transport(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        task = asyncio.ensure_future(self._answer(request))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, request: pb2.RecordRunStreamRequest) -> None:
        try:
            response = await self._record_runs(pb2.RecordRunsRequest(updates=request.updates))
        except grpc.aio.AioRpcError as exc:
            self._answers.put_nowait(exc)
            return
        self._answers.put_nowait(
            pb2.RecordRunStreamResponse(batch_id=request.batch_id, results=response.results)
        )

    def cancel(self) -> None:
        self._answers.put_nowait(transport(grpc.StatusCode.CANCELLED, "cancelled"))

    async def __aiter__(self) -> AsyncIterator[pb2.RecordRunStreamResponse]:
        if not self._available:
            raise transport(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        while True:
            answer = await self._answers.get()
            if isinstance(answer, grpc.aio.AioRpcError):
                raise answer
            yield answer


def stream_of_calls(registry: Any, available: bool = True) -> StreamOfCalls:
    """`registry.RecordRuns` as a stream (what a scripted registry's RecordRunStream returns)."""
    return StreamOfCalls(registry.RecordRuns, available)

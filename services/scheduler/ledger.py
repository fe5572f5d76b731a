"""The scheduler's hot path to the registry, batched.

Every run costs a create, a few progress reports and a finish. Sent one by one, each is an RPC and
(for create and finish) a commit; at hundreds of runs per second that is the whole budget. The
ledger queues them and sends what has gathered in one RecordRuns call (one transaction) while at
most `max_in_flight` calls are under way: an idle ledger sends at once, a busy one in batches.

Callers see the same as with the single RPCs: the response, or an AioRpcError with the code the
single call would have raised. A registry without RecordRuns (older, mid rolling upgrade) gets the
single RPCs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from services.scheduler.clients import RegistryClient
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2

log = logging.getLogger(__name__)

MAX_BATCH = 500
CALL_TIMEOUT_SECONDS = 30.0
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _error(code: int, message: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        _CODES.get(code, grpc.StatusCode.UNKNOWN), grpc.aio.Metadata(), grpc.aio.Metadata(), message, ""
    )


class RunLedger:
    def __init__(self, registry: RegistryClient, max_batch: int = MAX_BATCH, max_in_flight: int = 2) -> None:
        self._registry = registry
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[tuple[pb2.RunUpdate, asyncio.Future[pb2.RunUpdateResult]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._flush_scheduled = False
        self._batched = True

    async def create(self, request: pb2.CreateExecutionRequest) -> pb2.CreateExecutionResponse:
        return (await self._submit(pb2.RunUpdate(create=request))).create

    async def progress(self, request: pb2.ReportProgressRequest) -> pb2.ReportProgressResponse:
        return (await self._submit(pb2.RunUpdate(progress=request))).progress

    async def finish(self, request: pb2.FinishExecutionRequest) -> pb2.FinishExecutionResponse:
        return (await self._submit(pb2.RunUpdate(finish=request))).finish

    async def close(self) -> None:
        """Cancels what is under way and what waits (their callers see CancelledError)."""
        queued, self._queue = self._queue, []
        for _, future in queued:
            future.cancel()
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _submit(self, update: pb2.RunUpdate) -> pb2.RunUpdateResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[pb2.RunUpdateResult] = loop.create_future()
        self._queue.append((update, future))
        if not self._flush_scheduled:
            # After the callbacks already due: updates made in the same loop turn go together.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        result = await future
        if result.code:
            raise _error(result.code, result.message)
        return result

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._queue and len(self._in_flight) < self._max_in_flight:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._queue and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _send(self, batch: list[tuple[pb2.RunUpdate, asyncio.Future[pb2.RunUpdateResult]]]) -> None:
        try:
            results = await self._record([update for update, _ in batch])
        except Exception as exc:  # the call as a whole: every update in it gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _record(self, updates: list[pb2.RunUpdate]) -> list[pb2.RunUpdateResult]:
        if self._batched:
            try:
                response: pb2.RecordRunsResponse = await self._registry.internal.RecordRuns(
                    pb2.RecordRunsRequest(updates=updates),
                    metadata=self._registry.metadata,
                    timeout=CALL_TIMEOUT_SECONDS,
                )
                return list(response.results)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                log.warning("the registry cannot batch run updates; sending them one by one")
                self._batched = False
        return list(await asyncio.gather(*(self._single(update) for update in updates)))

    async def _single(self, update: pb2.RunUpdate) -> pb2.RunUpdateResult:
        internal, md = self._registry.internal, self._registry.metadata
        kind = update.WhichOneof("update")
        call: Any = {
            "create": internal.CreateExecution,
            "progress": internal.ReportProgress,
            "finish": internal.FinishExecution,
        }[kind]
        try:
            response = await call(getattr(update, kind), metadata=md, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            return pb2.RunUpdateResult(code=exc.code().value[0], message=exc.details() or "")
        result = pb2.RunUpdateResult()
        getattr(result, kind).CopyFrom(response)
        return result

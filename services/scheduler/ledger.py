"""The scheduler's hot path to the registry, batched.

Every run costs a create, a claim, a few progress reports, its log and a finish. Sent one by one, each is an RPC and
(for create and finish) a commit; at hundreds of runs per second that is the whole budget. The
ledger queues them and sends what has gathered in one RecordRuns call (one transaction) while at
most `max_in_flight` calls are under way: an idle ledger sends at once, a busy one in batches.
The batches travel on one long-lived stream (`record_stream.py`: a message on an open stream costs
half a new call's time on an idle machine).

Callers see the same as with the single RPCs: the response, or an AioRpcError with the code and
reason the single call would have raised. A registry without the stream (older, mid rolling
upgrade) gets RecordRuns calls, and one without RecordRuns the single RPCs.

Fires (`engine.py`), plain runs (`dispatch.py`, `executor_stream.py`) and workflow runs (`workflow_runs.py`) all record
through here, and share its rules for a run's updates: `record_fire` (a fire's run, keyed by task +
planned time; nothing when the task is gone), `report` (a failed progress report costs that report,
not the run) and `end` (the final status is retried through registry hiccups, since losing it
would leave the run to the lease reaper).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import grpc

from services.common import tracing
from services.common.errors import answered_error, reason_of
from services.common.run_params import logical_date_of
from services.common.vocabulary import ExecutionStatus as Status
from services.common.vocabulary import Trigger
from services.scheduler.clients import RegistryClient
from services.scheduler.reasons import describe, method_missing, registry_hiccup, run_is_gone, task_is_gone
from services.scheduler.record_stream import RecordStream
from services.scheduler.triggers import dedup_key
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2
from zquant.scheduler.v1 import task_pb2

log = logging.getLogger(__name__)

MAX_BATCH = 500
CALL_TIMEOUT_SECONDS = 30.0
# The final status is retried for up to about a lease (~17 s); the attempt number makes a repeat
# harmless.
END_ATTEMPTS = 12
END_FIRST_DELAY_SECONDS = 0.1
END_MAX_DELAY_SECONDS = 2.0


class RunLedger:
    def __init__(self, registry: RegistryClient, max_batch: int = MAX_BATCH, max_in_flight: int = 2) -> None:
        self._registry = registry
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        # Updates of runs under way (claims, progress, logs, ends) go before new runs' creates: in a
        # burst, thousands of creates queue at once, and the runs that already have room must not
        # wait behind them. Nothing queued depends on a create (a run's next update follows its
        # create's answer); within each queue the order holds.
        self._queue: list[tuple[pb2.RunUpdate, asyncio.Future[pb2.RunUpdateResult]]] = []
        self._creates: list[tuple[pb2.RunUpdate, asyncio.Future[pb2.RunUpdateResult]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._flush_scheduled = False
        # How batches travel: on one stream while the registry has it, else as RecordRuns calls,
        # else (older still) one call per update.
        self._stream: RecordStream | None = RecordStream(registry, answer_within=CALL_TIMEOUT_SECONDS)
        self._batched = True

    async def create(self, request: pb2.CreateExecutionRequest) -> pb2.CreateExecutionResponse:
        return (await self._submit(pb2.RunUpdate(create=request))).create

    async def record_fire(
        self,
        task: task_pb2.Task,
        planned: datetime,
        *,
        skipped_because: str = "",
        start_executor: str = "",
        note: str = "",
    ) -> pb2.CreateExecutionResponse | None:
        """The run of a scheduled fire, keyed by task + planned time (a repeat finds the first), for
        the planned time's date in the task's zone: skipped with the reason, or pending (claimed for
        `start_executor` when given), with its `note` (Execution.note). None when the task was
        deleted meanwhile."""
        task_id = task.id
        with tracing.span("fire", task_id=task_id):  # the run continues this trace (tracing on)
            traceparent = tracing.current_traceparent()
        request = pb2.CreateExecutionRequest(
            task_id=task_id,
            trigger=Trigger.SCHEDULE,
            traceparent=traceparent,
            logical_date=logical_date_of(planned, task.timezone or "UTC").isoformat(),
            status=Status.SKIPPED if skipped_because else Status.PENDING,
            error_message=skipped_because,
            dedup_key=dedup_key(task_id, planned),
            start_executor=start_executor,
            note=note,
        )
        request.scheduled_time.FromDatetime(planned)
        try:
            return await self.create(request)
        except grpc.aio.AioRpcError as exc:
            if task_is_gone(exc):
                return None
            log.error("cannot record a run", extra={"task_id": task_id, "reason": describe(exc)})
            raise

    async def start(self, request: pb2.StartExecutionRequest) -> pb2.StartExecutionResponse:
        """A run claimed for an executor (or adopted there): claims sent together are one statement
        per executor in the registry, so a burst's runs start in a few commits."""
        return (await self._submit(pb2.RunUpdate(start=request))).start

    async def answer_offer(self, offer_id: int, executor: str) -> pb2.StartExecutionResponse | None:
        """The answer to a trigger offer ("" declines), sent at once and alone: the trigger waits for
        it with its task locked. The run started on `executor`, once its trigger committed; None for
        a decline, or when batches do not travel on the stream (the offer then expires, and its run
        arrives pending). Raises the registry's error (the offer gone, the trigger refused)."""
        if self._stream is None:
            return None
        answer = pb2.OfferAnswer(offer_id=offer_id, executor=executor)
        (result,) = await self._stream.record([pb2.RunUpdate(offer_answer=answer)])
        if result.code:
            raise answered_error(result.code, result.message, result.reason)
        return result.start if result.HasField("start") else None

    async def progress(self, request: pb2.ReportProgressRequest) -> pb2.ReportProgressResponse:
        return (await self._submit(pb2.RunUpdate(progress=request))).progress

    async def finish(self, request: pb2.FinishExecutionRequest) -> pb2.FinishExecutionResponse:
        return (await self._submit(pb2.RunUpdate(finish=request))).finish

    async def append_log(self, request: pb2.AppendExecutionLogRequest) -> pb2.AppendExecutionLogResponse:
        """Lines for a run's log, stored with the batch they travel in (and before its ends)."""
        return (await self._submit(pb2.RunUpdate(log=request))).log

    async def report(self, request: pb2.ReportProgressRequest) -> pb2.ReportProgressResponse | None:
        """A progress report or heartbeat; None when the registry no longer accepts this attempt
        (reaped as lost, ended or terminated elsewhere)."""
        try:
            return await self.progress(request)
        except grpc.aio.AioRpcError as exc:
            if run_is_gone(exc):
                return None
            # A registry hiccup costs this one report: the next report or the final status follows.
            log.warning(
                "progress report failed",
                extra={"execution_id": request.execution_id, "reason": describe(exc)},
            )
            return pb2.ReportProgressResponse()

    async def end(self, request: pb2.FinishExecutionRequest) -> bool:
        """Records how a run's attempt ended, retrying through registry hiccups; a run that is gone
        meanwhile (ended, reaped, deleted) is not an error. False when the end could not be stored."""
        delay = END_FIRST_DELAY_SECONDS
        for _ in range(END_ATTEMPTS):
            try:
                await self.finish(request)
                return True
            except grpc.aio.AioRpcError as exc:
                if run_is_gone(exc):
                    return True
                if not registry_hiccup(exc):
                    raise
                log.warning(
                    "recording the end of a run failed; retrying",
                    extra={"execution_id": request.execution_id, "reason": describe(exc)},
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, END_MAX_DELAY_SECONDS)
        log.error(
            "could not record the end of a run; the lease reaper will",
            extra={"execution_id": request.execution_id},
        )
        return False

    async def close(self) -> None:
        """Cancels what is under way and what waits (their callers see CancelledError)."""
        queued, self._queue, self._creates = self._queue + self._creates, [], []
        for _, future in queued:
            future.cancel()
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._stream is not None:
            await self._stream.close()

    async def _submit(self, update: pb2.RunUpdate) -> pb2.RunUpdateResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[pb2.RunUpdateResult] = loop.create_future()
        (self._creates if update.HasField("create") else self._queue).append((update, future))
        if not self._flush_scheduled:
            # After the callbacks already due: updates made in the same loop turn go together.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        result = await future
        if result.code:
            raise answered_error(result.code, result.message, result.reason)
        return result

    def _flush(self) -> None:
        self._flush_scheduled = False
        while (self._queue or self._creates) and len(self._in_flight) < self._max_in_flight:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            room = self._max_batch - len(batch)
            batch, self._creates = batch + self._creates[:room], self._creates[room:]
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if (self._queue or self._creates) and not self._flush_scheduled:
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
        if self._stream is not None:
            try:
                return await self._stream.record(updates)
            except grpc.aio.AioRpcError as exc:
                if not method_missing(exc):
                    raise
                log.warning("the registry has no run stream; sending batches as RecordRuns calls")
                await self._stream.close()
                self._stream = None
        if self._batched:
            try:
                response: pb2.RecordRunsResponse = await self._registry.internal.RecordRuns(
                    pb2.RecordRunsRequest(updates=updates),
                    metadata=self._registry.metadata,
                    timeout=CALL_TIMEOUT_SECONDS,
                )
                return list(response.results)
            except grpc.aio.AioRpcError as exc:
                if not method_missing(exc):
                    raise
                log.warning("the registry cannot batch run updates; sending them one by one")
                self._batched = False
        return list(await asyncio.gather(*(self._single(update) for update in updates)))

    async def _single(self, update: pb2.RunUpdate) -> pb2.RunUpdateResult:
        internal, md = self._registry.internal, self._registry.metadata
        kind = update.WhichOneof("update")
        method = {
            "create": "CreateExecution",
            "start": "StartExecution",
            "progress": "ReportProgress",
            "finish": "FinishExecution",
            "log": "AppendExecutionLog",
        }[kind]
        call: Any = getattr(internal, method)
        try:
            response = await call(getattr(update, kind), metadata=md, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            return pb2.RunUpdateResult(
                code=exc.code().value[0], message=exc.details() or "", reason=reason_of(exc)
            )
        result = pb2.RunUpdateResult()
        getattr(result, kind).CopyFrom(response)
        return result

"""RegistryInternalService: the scheduler's change feed, leadership and every state change of a run.

Proto in → `runs` / `feed` / `store.leadership` → proto out; the rules live in those modules.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import grpc

from services.common.errors import DomainError, FailedPrecondition, InvalidArgument, Reason
from services.common.guard import current_principal, domain_error_of
from services.registry import convert, feed
from services.registry.app import RegistryApp
from services.registry.db import concurrent_change
from services.registry.housekeeping import Housekeeping
from services.registry.live.leadership import HoldTerms, LeadershipHolds
from services.registry.runs.batch_stream import BatchStreams
from services.registry.runs.model import Declined, LogAppend, OfferAnswer, Outcome
from services.registry.runs.recorder import RunRecorder
from services.registry.store import backfills as backfill_store
from services.registry.store import leadership
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2
from zquant.scheduler.v1 import status_service_pb2

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
RECORD_RUN_STREAM = "/zquant.scheduler.v1.RegistryInternalService/RecordRunStream"


def _require_service() -> None:
    if not current_principal().is_service:
        raise FailedPrecondition("内部接口只接受服务令牌", reason=Reason.SERVICE_TOKEN_REQUIRED)


class InternalServicer:
    def __init__(
        self,
        app: RegistryApp,
        runs: RunRecorder,
        holds: LeadershipHolds,
        housekeeping: Housekeeping,
        batch_streams: BatchStreams,
    ) -> None:
        self._app = app
        self._runs = runs
        self._batch_streams = batch_streams
        self._holds = holds
        self._housekeeping = housekeeping

    async def WatchSchedulerEvents(
        self, request: pb2.WatchSchedulerEventsRequest, context: Context
    ) -> AsyncIterator[pb2.WatchSchedulerEventsResponse]:
        _require_service()
        events = feed.scheduler_feed(
            self._app,
            pages=request.snapshot_pages,
            takes_offers=request.trigger_offers,
            batches=request.batch_events,
        )
        async for event in events:
            yield event

    async def CreateExecution(
        self, request: pb2.CreateExecutionRequest, context: Context
    ) -> pb2.CreateExecutionResponse:
        _require_service()
        return convert.created_to_proto(await self._runs.create(convert.new_run_of(request)))

    async def RecordRuns(self, request: pb2.RecordRunsRequest, context: Context) -> pb2.RecordRunsResponse:
        _require_service()
        outcomes = await self._record(request.updates)
        return pb2.RecordRunsResponse(results=[convert.outcome_to_proto(outcome) for outcome in outcomes])

    async def RecordRunStream(
        self, requests: AsyncIterator[pb2.RecordRunStreamRequest], context: Context
    ) -> AsyncIterator[pb2.RecordRunStreamResponse]:
        _require_service()
        async for response in self._batch_streams.answer(requests, self._record_batch):
            yield response

    async def _record_batch(self, request: pb2.RecordRunStreamRequest) -> pb2.RecordRunStreamResponse:
        """A batch of the stream, answered as its RecordRuns call would have been."""
        answer: list[Outcome] | DomainError
        try:
            answer = await self._record(request.updates)
        except Exception as exc:
            answer = domain_error_of(exc, RECORD_RUN_STREAM, concurrent_change)
        return convert.batch_answer_to_proto(request.batch_id, answer)

    async def _record(self, updates: Sequence[pb2.RunUpdate]) -> list[Outcome]:
        if any(update.HasField("offer_answer") for update in updates):
            if len(updates) != 1:
                raise InvalidArgument("触发请求的答复必须单独成批", reason=Reason.RUN_UPDATE_INVALID)
            return [await self._answer_offer(convert.offer_answer_of(updates[0].offer_answer))]
        return await self._runs.record([convert.run_update_of(update) for update in updates])

    async def _answer_offer(self, answer: OfferAnswer) -> Outcome:
        """The scheduler's answer to a trigger offer: the run once its trigger committed, or why not."""
        try:
            started = await self._app.trigger_offers.answer(answer, self._app.clock())
        except DomainError as exc:
            return exc
        return Declined() if started is None else started

    async def StartExecution(
        self, request: pb2.StartExecutionRequest, context: Context
    ) -> pb2.StartExecutionResponse:
        _require_service()
        return convert.started_to_proto(await self._runs.start(convert.start_of(request)))

    async def RequeueExecution(
        self, request: pb2.RequeueExecutionRequest, context: Context
    ) -> pb2.RequeueExecutionResponse:
        _require_service()
        await self._runs.requeue(request.execution_id, request.attempt)
        return pb2.RequeueExecutionResponse()

    async def ReportProgress(
        self, request: pb2.ReportProgressRequest, context: Context
    ) -> pb2.ReportProgressResponse:
        _require_service()
        reported = self._runs.report(convert.report_of(request))
        return pb2.ReportProgressResponse(terminate_requested=reported.terminate_requested)

    async def FinishExecution(
        self, request: pb2.FinishExecutionRequest, context: Context
    ) -> pb2.FinishExecutionResponse:
        _require_service()
        return convert.ended_to_proto(await self._runs.end(convert.end_of(request)))

    async def AppendExecutionLog(
        self, request: pb2.AppendExecutionLogRequest, context: Context
    ) -> pb2.AppendExecutionLogResponse:
        _require_service()
        appended = await self._runs.append_log(LogAppend(request.execution_id, request.data))
        return pb2.AppendExecutionLogResponse(end_offset=appended.end_offset)

    async def AdvanceBackfills(
        self, request: pb2.AdvanceBackfillsRequest, context: Context
    ) -> pb2.AdvanceBackfillsResponse:
        _require_service()
        now = self._app.clock()

        def advance() -> pb2.AdvanceBackfillsResponse:
            # Almost always nothing runs: a plain read then, not the write lock.
            with self._app.db.session() as session:
                if not backfill_store.any_running(session):
                    return pb2.AdvanceBackfillsResponse(running=False)
            # Serialized: two callers (a scheduler and its successor) never start the same room twice.
            with self._app.db.session(serialized=True) as session:
                created = backfill_store.advance_backfills(session, now)
                return pb2.AdvanceBackfillsResponse(
                    executions=[convert.execution_to_proto(row) for row in created],
                    running=backfill_store.any_running(session),
                )

        return await asyncio.to_thread(advance)

    async def ListActiveExecutions(
        self, request: pb2.ListActiveExecutionsRequest, context: Context
    ) -> pb2.ListActiveExecutionsResponse:
        _require_service()
        page = await self._runs.active(request.limit or 1000, request.after_id)
        return pb2.ListActiveExecutionsResponse(executions=page)

    async def HoldLeadership(
        self, requests: AsyncIterator[pb2.HoldLeadershipRequest], context: Context
    ) -> AsyncIterator[pb2.HoldLeadershipResponse]:
        _require_service()
        first = await anext(requests, None)
        if first is None:
            return
        terms = HoldTerms.of(first.candidate, first.ttl_seconds, first.renew_seconds)

        async def acknowledged() -> list[dict[str, Any]] | None:
            ack = await anext(requests, None)
            return None if ack is None else _executors(ack.executors)

        holding = self._holds.hold(terms, _executors(first.executors), acknowledged)
        try:
            async for state in holding:
                yield pb2.HoldLeadershipResponse(**_state_fields(state))
        finally:
            await holding.aclose()  # at once, not when the generator is collected: releases the term

    async def AcquireLeadership(
        self, request: pb2.AcquireLeadershipRequest, context: Context
    ) -> pb2.AcquireLeadershipResponse:
        _require_service()
        state = await self._holds.acquire(
            request.candidate, request.ttl_seconds or 3, _executors(request.executors)
        )
        return pb2.AcquireLeadershipResponse(**_state_fields(state))

    async def ReleaseLeadership(
        self, request: pb2.ReleaseLeadershipRequest, context: Context
    ) -> pb2.ReleaseLeadershipResponse:
        _require_service()
        await self._holds.release(request.candidate)
        return pb2.ReleaseLeadershipResponse()

    async def RunHousekeeping(
        self, request: pb2.RunHousekeepingRequest, context: Context
    ) -> pb2.RunHousekeepingResponse:
        _require_service()
        # Alert sends wait on networks and mail servers: a worker thread, never this loop.
        result = await asyncio.to_thread(self._housekeeping.run_pass, request.candidate, request.term)
        if result is None:
            return pb2.RunHousekeepingResponse(done=False)
        return pb2.RunHousekeepingResponse(
            done=True,
            alerts_sent=result.alerts.sent,
            alerts_failed=result.alerts.failed,
            alerts_suppressed=result.alerts.suppressed,
            runs_purged=result.runs_purged,
        )


def _state_fields(state: leadership.Leadership) -> dict[str, Any]:
    return {
        "leader": state.leader,
        "holder": state.holder,
        "term": state.term,
        "expires_at": convert.to_timestamp(state.expires_at),
    }


def _executors(states: Iterable[status_service_pb2.ExecutorState]) -> list[dict[str, Any]]:
    return [convert.executor_state_dict(state) for state in states]

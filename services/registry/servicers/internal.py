"""RegistryInternalService: the scheduler's change feed, leadership and every state change of a run.

Proto in → `runs` / `feed` / `store.leadership` → proto out; the rules live in those modules.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from services.common.errors import FailedPrecondition, Reason
from services.common.server import current_principal
from services.registry import convert, feed
from services.registry.alerts import delivery
from services.registry.app import RegistryApp
from services.registry.runs.model import LogAppend
from services.registry.runs.recorder import RunRecorder
from services.registry.store import backfills as backfill_store
from services.registry.store import leadership, retention
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]


def _require_service() -> None:
    if not current_principal().is_service:
        raise FailedPrecondition("内部接口只接受服务令牌", reason=Reason.SERVICE_TOKEN_REQUIRED)


class InternalServicer:
    def __init__(self, app: RegistryApp, runs: RunRecorder) -> None:
        self._app = app
        self._runs = runs
        self._calendar_endings = delivery.CalendarEndings()
        self._sealing = retention.Sealing(app.db)
        # The leader's renewals get a thread of their own: in the shared worker threads they would
        # queue behind a burst's run batches, miss the renewal's deadline, and the leader would step
        # down in the middle of the burst (dropping every run it was driving).
        self._leadership_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadership")

    async def WatchSchedulerEvents(
        self, request: pb2.WatchSchedulerEventsRequest, context: Context
    ) -> AsyncIterator[pb2.WatchSchedulerEventsResponse]:
        _require_service()
        async for event in feed.scheduler_feed(self._app, pages=request.snapshot_pages):
            yield event

    async def CreateExecution(
        self, request: pb2.CreateExecutionRequest, context: Context
    ) -> pb2.CreateExecutionResponse:
        _require_service()
        return convert.created_to_proto(await self._runs.create(convert.new_run_of(request)))

    async def RecordRuns(self, request: pb2.RecordRunsRequest, context: Context) -> pb2.RecordRunsResponse:
        _require_service()
        outcomes = await self._runs.record([convert.run_update_of(update) for update in request.updates])
        return pb2.RecordRunsResponse(results=[convert.outcome_to_proto(outcome) for outcome in outcomes])

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

    async def AcquireLeadership(
        self, request: pb2.AcquireLeadershipRequest, context: Context
    ) -> pb2.AcquireLeadershipResponse:
        _require_service()
        # In a worker thread: the leader row's lock may be held by a competing candidate a while,
        # and nothing else on this loop should wait for that.
        executors = [convert.executor_state_dict(state) for state in request.executors]
        state = await asyncio.get_running_loop().run_in_executor(
            self._leadership_thread,
            functools.partial(self._acquire, request.candidate, request.ttl_seconds or 3, executors),
        )
        return pb2.AcquireLeadershipResponse(
            leader=state.leader,
            holder=state.holder,
            term=state.term,
            expires_at=convert.to_timestamp(state.expires_at),
        )

    async def ReleaseLeadership(
        self, request: pb2.ReleaseLeadershipRequest, context: Context
    ) -> pb2.ReleaseLeadershipResponse:
        _require_service()
        await asyncio.to_thread(self._release, request.candidate)
        return pb2.ReleaseLeadershipResponse()

    async def RunHousekeeping(
        self, request: pb2.RunHousekeepingRequest, context: Context
    ) -> pb2.RunHousekeepingResponse:
        _require_service()
        # Alert sends wait on networks and mail servers: a worker thread, never this loop.
        result = await asyncio.to_thread(self._housekeeping, request.candidate, request.term)
        if result is None:
            return pb2.RunHousekeepingResponse(done=False)
        alerts, purged = result
        return pb2.RunHousekeepingResponse(
            done=True,
            alerts_sent=alerts.sent,
            alerts_failed=alerts.failed,
            alerts_suppressed=alerts.suppressed,
            runs_purged=purged,
        )

    def _housekeeping(self, candidate: str, term: int) -> tuple[delivery.PassResult, int] | None:
        """A pass for the leader of this term only: several schedulers never alert twice."""
        app = self._app
        with app.db.session() as session:
            leader = leadership.current_leader(session, app.clock())
        if leader is None or leader.holder != candidate or leader.term != term:
            return None
        try:
            self._calendar_endings.check(app)
        except Exception:  # the deliveries and the purge go on
            log.exception("checking where calendars' data ends failed")
        alerts = delivery.deliver_due(app)
        settings = app.settings
        purged = retention.purge_pass(
            app.db, app.clock(), settings.retention_days, settings.purge_batch, settings.purge_batches
        )
        sealed = self._sealing.run()
        if sealed:
            log.debug("runs sealed into the daily aggregates", extra={"runs": sealed})
        return alerts, purged

    def _acquire(
        self, candidate: str, ttl_seconds: int, executors: list[dict[str, Any]]
    ) -> leadership.Leadership:
        db = self._app.db
        with db.write_turns.turn(urgent=True), db.session() as session:  # ahead of the run batches
            return leadership.acquire(session, candidate, ttl_seconds, self._app.clock(), executors)

    def _release(self, candidate: str) -> None:
        with self._app.db.session() as session:
            leadership.release(session, candidate, self._app.clock())

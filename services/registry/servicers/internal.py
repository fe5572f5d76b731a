"""RegistryInternalService: the scheduler's change feed and every state change of a run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
from sqlalchemy import select

from services.common.errors import FailedPrecondition, NotFound
from services.common.metrics import RUNS_FINISHED
from services.common.server import current_principal
from services.common.structs import struct_to_dict
from services.registry.app import RegistryApp
from services.registry.convert import (
    execution_to_proto,
    from_timestamp,
    task_event,
    task_to_proto,
    to_timestamp,
)
from services.registry.events import RESUBSCRIBE
from services.registry.models import ExecutionRow, TaskRow
from services.registry.store import executions as store
from services.registry.store import leadership
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
FEED_HEARTBEAT_SECONDS = 5.0


def _require_service() -> None:
    if not current_principal().is_service:
        raise FailedPrecondition("内部接口只接受服务令牌")


class InternalServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def WatchSchedulerEvents(
        self, request: pb2.WatchSchedulerEventsRequest, context: Context
    ) -> AsyncIterator[pb2.WatchSchedulerEventsResponse]:
        _require_service()
        with self._app.events.scheduler_feed() as feed:
            now = self._app.clock()
            with self._app.db.session() as session:
                rows = list(session.scalars(select(TaskRow).order_by(TaskRow.id)))
                last_planned = store.last_scheduled_times(session)
            # Each task with its interval anchor and newest recorded planned time, for catch-up.
            for row in rows:
                yield task_event(row, now, last_planned.get(row.id))
            yield pb2.WatchSchedulerEventsResponse(event_type="snapshot_done")
            while True:
                try:
                    event = await asyncio.wait_for(feed.get(), timeout=FEED_HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield pb2.WatchSchedulerEventsResponse(event_type="heartbeat")
                    continue
                if event is RESUBSCRIBE:
                    log.info("ending a scheduler feed that may have missed events; it subscribes again")
                    return
                yield event

    async def CreateExecution(
        self, request: pb2.CreateExecutionRequest, context: Context
    ) -> pb2.CreateExecutionResponse:
        _require_service()
        now = self._app.clock()
        new = store.NewExecution(
            task_id=request.task_id,
            trigger=request.trigger,
            scheduled_time=from_timestamp(request.scheduled_time)
            if request.HasField("scheduled_time")
            else None,
            status=request.status or "pending",
            error_message=request.error_message,
            parent_execution_id=request.parent_execution_id,
            retry_count=request.retry_count,
            dedup_key=request.dedup_key,
        )
        with self._app.db.session() as session:
            row, created = store.create_execution(session, new, now)
        execution = execution_to_proto(row)
        if created:
            self._app.events.publish_execution(execution, row.attempt)
        return pb2.CreateExecutionResponse(execution=execution, created=created)

    async def StartExecution(
        self, request: pb2.StartExecutionRequest, context: Context
    ) -> pb2.StartExecutionResponse:
        _require_service()
        now = self._app.clock()
        lease = request.lease_seconds or self._app.settings.lease_seconds
        with self._app.db.session() as session:
            row = store.claim_execution(
                session,
                request.execution_id,
                request.executor,
                now + timedelta(seconds=lease),
                now,
                adopt=request.adopt,
            )
            task_row = session.get(TaskRow, row.task_id)
            assert task_row is not None
            task = task_to_proto(task_row, now)
        execution = execution_to_proto(row, task.name)
        self._app.progress.track(execution, row.attempt)
        self._app.events.publish_execution(execution, row.attempt)
        return pb2.StartExecutionResponse(execution=execution, attempt=row.attempt, task=task)

    async def RequeueExecution(
        self, request: pb2.RequeueExecutionRequest, context: Context
    ) -> pb2.RequeueExecutionResponse:
        _require_service()
        with self._app.db.session() as session:
            row = store.requeue_execution(session, request.execution_id, request.attempt)
            names = store.task_names(session, {row.task_id})
        self._app.progress.forget(request.execution_id)
        self._app.events.publish_execution(execution_to_proto(row, names.get(row.task_id, "")), row.attempt)
        return pb2.RequeueExecutionResponse()

    async def ReportProgress(
        self, request: pb2.ReportProgressRequest, context: Context
    ) -> pb2.ReportProgressResponse:
        _require_service()
        result = struct_to_dict(request.result) if request.HasField("result") else None
        run = self._app.progress.report(request.execution_id, request.attempt, result)
        return pb2.ReportProgressResponse(terminate_requested=run.terminate_requested)

    async def FinishExecution(
        self, request: pb2.FinishExecutionRequest, context: Context
    ) -> pb2.FinishExecutionResponse:
        _require_service()
        live = self._app.progress.get(request.execution_id)
        final = struct_to_dict(request.result)
        merged = {**(live.result if live else {}), **final}
        row, retry = self._finish(
            request.execution_id, request.attempt, request.status, merged, request.error_message
        )
        return pb2.FinishExecutionResponse(
            execution=execution_to_proto(row), retry=execution_to_proto(retry) if retry else None
        )

    def _finish(
        self, execution_id: int, attempt: int, status: str, result: dict[str, Any], error_message: str
    ) -> tuple[ExecutionRow, ExecutionRow | None]:
        live = self._app.progress.get(execution_id)
        with self._app.db.session() as session:
            row, retry = store.finish_execution(
                session, execution_id, attempt, status, result, error_message, self._app.clock()
            )
            # The live run already knows its task's name; ask the database only when it does not.
            name = (
                live.snapshot.task_name
                if live
                else store.task_names(session, {row.task_id}).get(row.task_id, "")
            )
        self._app.progress.forget(execution_id)
        RUNS_FINISHED.labels(row.status).inc()
        self._app.events.publish_execution(execution_to_proto(row, name), row.attempt)
        if retry is not None:
            self._app.events.publish_scheduler(
                pb2.WatchSchedulerEventsResponse(
                    event_type="execution_ready", execution=execution_to_proto(retry)
                )
            )
        return row, retry

    def reap_silent_runs(self) -> int:
        """Fails runs whose executor stopped reporting (killed, network cut, scheduler gone).

        With replicas every one of them reaps: the first finish wins, the others find the run
        ended (FailedPrecondition) and drop it. A replica that does not hear the others (its
        cluster bus is reconnecting) waits: their reports cannot reach it then.
        """
        cluster = self._app.cluster
        if cluster is not None and not cluster.listening:
            return 0
        reaped = 0
        for run in self._app.progress.silent_runs(self._app.settings.lease_seconds):
            try:
                self._finish(run.snapshot.id, run.attempt, "failed", run.result, store.LOST_EXECUTOR)
                reaped += 1
            except (FailedPrecondition, NotFound):  # finished elsewhere, or deleted with its task
                self._app.progress.forget(run.snapshot.id)
        return reaped

    async def run_reaper(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                if reaped := self.reap_silent_runs():
                    log.warning("failed %d runs whose executor went silent", reaped)
            except Exception:
                log.exception("reaper failed; will retry")

    async def ListActiveExecutions(
        self, request: pb2.ListActiveExecutionsRequest, context: Context
    ) -> pb2.ListActiveExecutionsResponse:
        _require_service()
        with self._app.db.session() as session:
            rows = store.active_executions(session, request.limit or 1000)
        return pb2.ListActiveExecutionsResponse(executions=[execution_to_proto(row) for row in rows])

    async def AcquireLeadership(
        self, request: pb2.AcquireLeadershipRequest, context: Context
    ) -> pb2.AcquireLeadershipResponse:
        _require_service()
        with self._app.db.session() as session:
            state = leadership.acquire(
                session, request.candidate, request.ttl_seconds or 3, self._app.clock()
            )
        return pb2.AcquireLeadershipResponse(
            leader=state.leader,
            holder=state.holder,
            term=state.term,
            expires_at=to_timestamp(state.expires_at),
        )

    async def ReleaseLeadership(
        self, request: pb2.ReleaseLeadershipRequest, context: Context
    ) -> pb2.ReleaseLeadershipResponse:
        _require_service()
        with self._app.db.session() as session:
            leadership.release(session, request.candidate, self._app.clock())
        return pb2.ReleaseLeadershipResponse()

"""ExecutionService and StatsService: history, live watch, terminate, statistics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from services.common.server import current_principal
from services.registry.app import RegistryApp
from services.registry.convert import execution_to_proto, stats_to_proto
from services.registry.models import ACTIVE_STATUSES, ExecutionRow
from services.registry.store import executions as store
from zquant.scheduler.v1 import execution_service_pb2, stats_service_pb2, task_pb2
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

Context = grpc.aio.ServicerContext[Any, Any]
WATCH_HEARTBEAT_SECONDS = 10.0


class ExecutionServicer:
    def __init__(self, app: RegistryApp, heartbeat_seconds: float = WATCH_HEARTBEAT_SECONDS) -> None:
        self._app = app
        self._heartbeat = heartbeat_seconds

    def _proto(self, row: ExecutionRow, task_name: str = "") -> task_pb2.Execution:
        live = self._app.progress.live_result(row.id) if row.status == "running" else None
        return execution_to_proto(row, task_name, live)

    async def ListExecutions(
        self, request: execution_service_pb2.ListExecutionsRequest, context: Context
    ) -> execution_service_pb2.ListExecutionsResponse:
        current_principal()
        query = store.ExecutionQuery(
            task_id=request.task_id,
            skip=request.skip,
            limit=request.limit or 100,
            status=request.status,
            start_time_from=request.start_time_from,
            start_time_to=request.start_time_to,
            parent_execution_id=request.parent_execution_id,
        )
        with self._app.db.session() as session:
            rows, total = store.list_executions(session, query)
            names = store.task_names(session, {row.task_id for row in rows})
        return execution_service_pb2.ListExecutionsResponse(
            executions=[self._proto(row, names.get(row.task_id, "")) for row in rows], total=total
        )

    async def GetExecution(
        self, request: execution_service_pb2.GetExecutionRequest, context: Context
    ) -> task_pb2.Execution:
        current_principal()
        with self._app.db.session() as session:
            row = store.get_execution(session, request.execution_id, request.task_id)
            names = store.task_names(session, {row.task_id})
        return self._proto(row, names.get(row.task_id, ""))

    async def WatchExecution(
        self, request: execution_service_pb2.WatchExecutionRequest, context: Context
    ) -> AsyncIterator[execution_service_pb2.WatchExecutionResponse]:
        current_principal()
        response = execution_service_pb2.WatchExecutionResponse
        # Subscribe before reading the snapshot so no change between the two is missed.
        with self._app.events.execution_feed(request.execution_id) as feed:
            with self._app.db.session() as session:
                row = store.get_execution(session, request.execution_id, request.task_id)
                names = store.task_names(session, {row.task_id})
            current = self._proto(row, names.get(row.task_id, ""))
            yield response(event_type="snapshot", execution=current)
            while current.status in ACTIVE_STATUSES:
                try:
                    current = await asyncio.wait_for(feed.get(), timeout=self._heartbeat)
                except TimeoutError:
                    yield response(event_type="heartbeat", execution=current)
                    continue
                yield response(event_type="snapshot", execution=current)
            # In-band end: SSE clients cannot see a gRPC status after the first message.
            yield response(event_type="end", execution=current)

    async def TerminateExecution(
        self, request: execution_service_pb2.TerminateExecutionRequest, context: Context
    ) -> task_pb2.Execution:
        current_principal().require("operator")
        now = self._app.clock()
        with self._app.db.session() as session:
            row, needs_stop = store.request_termination(session, request.execution_id, now)
            stopped = [(row, needs_stop)]
            stopped += [
                store.request_termination(session, child.id, now)
                for child in store.children_of(session, row.id)
                if child.status in ACTIVE_STATUSES
            ]
            names = store.task_names(session, {row.task_id})
        for execution, must_stop in stopped:
            proto = execution_to_proto(execution)
            if must_stop:
                live = self._app.progress.get(execution.id)
                if live is not None:
                    live.terminate_requested = True
                self._app.events.publish_scheduler(
                    internal_pb2.WatchSchedulerEventsResponse(
                        event_type="terminate_requested", execution=proto
                    )
                )
            else:
                self._app.events.publish_execution(proto, execution.attempt)
        return self._proto(row, names.get(row.task_id, ""))


class StatsServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def GetStats(self, request: stats_service_pb2.GetStatsRequest, context: Context) -> task_pb2.Stats:
        current_principal()
        with self._app.db.session() as session:
            return stats_to_proto(store.stats(session, request.task_id))

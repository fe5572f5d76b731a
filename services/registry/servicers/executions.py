"""ExecutionService and StatsService: history, live watch, logs, terminate, statistics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from services.common.errors import InvalidArgument
from services.common.guard import current_principal
from services.common.input_checks import check_empty_body, parse_body_fields, shown
from services.common.log_lines import LogStream, log_lines
from services.common.tracing import current_traceparent
from services.common.vocabulary import LIVE_STATUSES, ExecutionStatus
from services.registry.app import RegistryApp
from services.registry.convert import execution_to_proto, stats_to_proto
from services.registry.live.progress import LiveResults
from services.registry.models import ExecutionRow
from services.registry.servicers.audit import caller
from services.registry.store import audit, logs, manual_runs, run_history
from services.registry.store import executions as store
from services.registry.store.audit import Action, Actor, Target
from zquant.scheduler.v1 import execution_service_pb2, stats_service_pb2, task_pb2
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

Context = grpc.aio.ServicerContext[Any, Any]
WATCH_HEARTBEAT_SECONDS = 10.0
# A log follower wakes at once on an append here, and polls this often for other replicas' appends.
LOG_POLL_SECONDS = 1.0
LOG_STREAM_PAGE_BYTES = 256 * 1024
# Where a rerun of a workflow run starts: its failed step (reusing the nodes that succeeded), or
# its first; or only one node of it.
RERUN_FROM_FAILED = "failed"
RERUN_FROM_START = "start"
RERUN_FROM_NODE = "node"
RERUN_FROMS = (RERUN_FROM_FAILED, RERUN_FROM_START, RERUN_FROM_NODE)


class ExecutionServicer:
    def __init__(self, app: RegistryApp, heartbeat_seconds: float = WATCH_HEARTBEAT_SECONDS) -> None:
        self._app = app
        self._heartbeat = heartbeat_seconds

    def _proto(self, row: ExecutionRow, live: LiveResults, task_name: str = "") -> task_pb2.Execution:
        """`live`: the live progress taken *before* `row` was read. Taken after, a run that ended in
        between would be untracked already while its row still says running, and its progress
        would jump back to what the database last flushed."""
        result = live.get(row.id) if row.status == ExecutionStatus.RUNNING else None
        return execution_to_proto(row, task_name, result)

    async def ListExecutions(
        self, request: execution_service_pb2.ListExecutionsRequest, context: Context
    ) -> execution_service_pb2.ListExecutionsResponse:
        current_principal()
        query = run_history.ExecutionQuery(
            task_id=request.task_id,
            skip=request.skip,
            limit=request.limit or 100,
            status=request.status,
            start_time_from=request.start_time_from,
            start_time_to=request.start_time_to,
            parent_execution_id=request.parent_execution_id,
        )
        live = self._app.progress.live_results()
        # Counting the matches grows with the history, and a page of results (up to 1,000 runs,
        # each with its result) takes a while to convert: both in a worker thread.
        return await asyncio.to_thread(self._list, query, live)

    def _list(
        self, query: run_history.ExecutionQuery, live: LiveResults
    ) -> execution_service_pb2.ListExecutionsResponse:
        with self._app.db.session() as session:
            rows, total = run_history.list_executions(session, query)
            names = run_history.task_names(session, {row.task_id for row in rows})
            return execution_service_pb2.ListExecutionsResponse(
                executions=[self._proto(row, live, names.get(row.task_id, "")) for row in rows], total=total
            )

    async def GetExecution(
        self, request: execution_service_pb2.GetExecutionRequest, context: Context
    ) -> task_pb2.Execution:
        current_principal()
        live = self._app.progress.live_results([request.execution_id])
        row, name = await asyncio.to_thread(self._read, request.execution_id, request.task_id)
        return self._proto(row, live, name)

    def _read(self, execution_id: int, task_id: int) -> tuple[ExecutionRow, str]:
        with self._app.db.session() as session:
            row = store.get_execution(session, execution_id, task_id)
            return row, self._app.task_names.get(session, row.task_id)

    async def WatchExecution(
        self, request: execution_service_pb2.WatchExecutionRequest, context: Context
    ) -> AsyncIterator[execution_service_pb2.WatchExecutionResponse]:
        current_principal()
        response = execution_service_pb2.WatchExecutionResponse
        # Subscribe before reading the snapshot so no change between the two is missed.
        with self._app.events.execution_feed(request.execution_id) as feed:
            live = self._app.progress.live_results([request.execution_id])
            row, name = await asyncio.to_thread(self._read, request.execution_id, request.task_id)
            current = self._proto(row, live, name)
            yield response(event_type="snapshot", execution=current)
            while current.status in LIVE_STATUSES:
                try:
                    async with asyncio.timeout(self._heartbeat):  # no task of its own per event
                        current = await feed.get()
                except TimeoutError:
                    yield response(event_type="heartbeat", execution=current)
                    continue
                yield response(event_type="snapshot", execution=current)
            # In-band end: SSE clients cannot see a gRPC status after the first message.
            yield response(event_type="end", execution=current)

    async def GetExecutionLog(
        self, request: execution_service_pb2.GetExecutionLogRequest, context: Context
    ) -> execution_service_pb2.GetExecutionLogResponse:
        current_principal()
        page = await self._read_log(request.execution_id, request.offset, request.limit)
        return execution_service_pb2.GetExecutionLogResponse(
            text=page.data.decode("utf-8", "replace"),
            next_offset=page.next_offset,
            size=page.size,
            complete=page.complete,
        )

    async def StreamExecutionLog(
        self, request: execution_service_pb2.StreamExecutionLogRequest, context: Context
    ) -> AsyncIterator[execution_service_pb2.StreamExecutionLogResponse]:
        current_principal()
        response = execution_service_pb2.StreamExecutionLogResponse
        offset = _resume_offset(context, request.offset)
        loop = asyncio.get_running_loop()
        # Follow before the first read so no append between the two is missed.
        with self._app.events.log_feed(request.execution_id) as appended:
            quiet_since = loop.time()
            while True:
                appended.clear()
                page = await self._read_log(request.execution_id, offset, LOG_STREAM_PAGE_BYTES)
                if page.data:
                    yield response(
                        event_type="log",
                        text=page.data.decode("utf-8", "replace"),
                        offset=page.offset,
                        next_offset=page.next_offset,
                        status=page.status,
                    )
                    offset, quiet_since = page.next_offset, loop.time()
                    continue
                if page.complete:
                    # In-band end: SSE clients cannot see a gRPC status after the first message.
                    yield response(event_type="end", offset=offset, next_offset=offset, status=page.status)
                    return
                try:
                    async with asyncio.timeout(LOG_POLL_SECONDS):
                        await appended.wait()
                except TimeoutError:
                    if loop.time() - quiet_since >= self._heartbeat:
                        yield response(
                            event_type="heartbeat", offset=offset, next_offset=offset, status=page.status
                        )
                        quiet_since = loop.time()

    async def _read_log(self, execution_id: int, offset: int, limit: int) -> logs.LogPage:
        return await self._app.db.run(lambda session: logs.read_log(session, execution_id, offset, limit))

    async def TerminateExecutionJson(
        self, request: execution_service_pb2.TerminateExecutionJsonRequest, context: Context
    ) -> task_pb2.Execution:
        check_empty_body(request.body.data)
        return await self.TerminateExecution(
            execution_service_pb2.TerminateExecutionRequest(execution_id=request.execution_id), context
        )

    async def TerminateExecution(
        self, request: execution_service_pb2.TerminateExecutionRequest, context: Context
    ) -> task_pb2.Execution:
        actor = caller(context, "operator")
        live = self._app.progress.live_results([request.execution_id])
        row, stopped, name = await asyncio.to_thread(self._terminate, request.execution_id, actor)
        publish_terminations(self._app, stopped)
        return self._proto(row, live, name)

    async def RerunExecutionJson(
        self, request: execution_service_pb2.RerunExecutionJsonRequest, context: Context
    ) -> task_pb2.Execution:
        body = parse_body_fields(request.body.data, ("from", "task_id"))
        rerun_from = body.get("from", RERUN_FROM_FAILED)
        if not isinstance(rerun_from, str):
            raise InvalidArgument("from 必须是 failed、start 或 node")
        node = body.get("task_id", 0)
        if "task_id" in body and (
            isinstance(node, bool) or not isinstance(node, int) or not 0 < node < 2**31
        ):
            raise InvalidArgument(f"task_id 必须是正整数（要重跑的节点的任务 ID），而不是 {shown(str(node))}")
        rerun = execution_service_pb2.RerunExecutionRequest(
            execution_id=request.execution_id, rerun_from=rerun_from, node_task_id=node
        )
        return await self.RerunExecution(rerun, context)

    async def RerunExecution(
        self, request: execution_service_pb2.RerunExecutionRequest, context: Context
    ) -> task_pb2.Execution:
        principal = current_principal()
        principal.require("operator")
        rerun_from = request.rerun_from or RERUN_FROM_FAILED
        if rerun_from not in RERUN_FROMS:
            raise InvalidArgument(f"from 必须是 failed、start 或 node，而不是 {shown(rerun_from)}")
        node = request.node_task_id
        if (rerun_from == RERUN_FROM_NODE) != (node > 0):
            raise InvalidArgument("task_id（要重跑的节点）需要且只能与 from = node 一起给出")
        now = self._app.clock()
        traceparent = current_traceparent()  # the rerun joins this call's trace, as a trigger does

        def rerun() -> tuple[ExecutionRow, str]:
            # Serialized as a trigger: the forbid check and the insert cannot race another trigger.
            with self._app.db.session(serialized=True) as session:
                if rerun_from == RERUN_FROM_NODE:
                    row = manual_runs.rerun_node(
                        session, request.execution_id, node, now, principal.username, traceparent
                    )
                else:
                    row = manual_runs.rerun_execution(
                        session, request.execution_id, rerun_from == RERUN_FROM_FAILED, now, traceparent
                    )
                return row, self._app.task_names.get(session, row.task_id)

        row, name = await asyncio.to_thread(rerun)
        proto = execution_to_proto(row, name)
        self._app.events.publish_scheduler(
            internal_pb2.WatchSchedulerEventsResponse(
                type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_EXECUTION_READY, execution=proto
            )
        )
        return proto

    def _terminate(
        self, execution_id: int, actor: Actor
    ) -> tuple[ExecutionRow, list[tuple[ExecutionRow, bool]], str]:
        """The run and its active children (a workflow's): pending ones end, running ones are
        flagged; returns the run, each (row, needs_stop), and the run's task name. Each run's log
        says who asked."""
        now = self._app.clock()
        with self._app.db.session(serialized=True) as session:
            stopped = manual_runs.terminate_with_children(session, execution_id, now, actor.username)
            row = stopped[0][0]
            username = actor.username
            line = log_lines(
                LogStream.SYSTEM, f"用户 {username} 请求终止 (terminate requested by {username})", now
            )
            for stopped_row, _ in stopped:
                logs.append_log(session, stopped_row.id, line)
            name = self._app.task_names.get(session, row.task_id)
            audit.record(
                session,
                audit.entry(actor, Action.EXECUTION_TERMINATE, Target.EXECUTION, row.id, now, name=name),
            )
            return row, stopped, name


def publish_terminations(app: RegistryApp, stopped: list[tuple[ExecutionRow, bool]]) -> None:
    """Tells the scheduler to stop the running ones, and watchers that the pending ones ended."""
    for execution, must_stop in stopped:
        proto = execution_to_proto(execution)
        if must_stop:
            live = app.progress.get(execution.id)
            if live is not None:
                live.terminate_requested = True
            app.events.publish_scheduler(
                internal_pb2.WatchSchedulerEventsResponse(
                    type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TERMINATE_REQUESTED,
                    execution=proto,
                )
            )
        else:
            app.events.publish_execution(proto, execution.attempt)
        app.events.log_appended(execution.id)


def _resume_offset(context: Context, offset: int) -> int:
    """Where a log stream starts: the Last-Event-ID header of a reconnecting SSE client (the byte
    offset it got to), else the request's offset."""
    for key, value in context.invocation_metadata() or ():
        if key == "last-event-id" and isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
    return offset


class StatsServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def GetStats(self, request: stats_service_pb2.GetStatsRequest, context: Context) -> task_pb2.Stats:
        current_principal()
        # Aggregates over the whole history: in a worker thread.
        return stats_to_proto(await asyncio.to_thread(self._stats, request.task_id))

    def _stats(self, task_id: int) -> run_history.StatsRow:
        with self._app.db.session() as session:
            return run_history.stats(session, task_id)

"""TaskService: proto in -> store -> proto out; publishes changes to the scheduler feed."""

from __future__ import annotations

from typing import Any

import grpc
from google.api import httpbody_pb2

from services.common.server import current_principal
from services.common.structs import struct_to_dict
from services.registry.app import RegistryApp
from services.registry.convert import execution_to_proto, from_timestamp, task_event, task_to_proto
from services.registry.list_cache import CachedPage
from services.registry.models import TaskRow
from services.registry.store import executions as exec_store
from services.registry.store import tasks as store
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2, task_service_pb2

Context = grpc.aio.ServicerContext[Any, Any]


def create_fields(request: task_service_pb2.CreateTaskRequest) -> dict[str, Any]:
    """Only what the caller set, so the store applies its own defaults to the rest."""
    fields: dict[str, Any] = {"name": request.name, "task_type": request.task_type}
    optional_scalars = ("enabled", "max_retries", "retry_interval", "misfire_grace_seconds")
    for name in optional_scalars:
        if request.HasField(name):
            fields[name] = getattr(request, name)
    for name in ("cron_expression", "timezone", "description", "concurrency_policy", "misfire_policy"):
        if value := getattr(request, name):
            fields[name] = value
    for name in ("interval_seconds", "timeout_seconds"):
        if value := getattr(request, name):
            fields[name] = value
    if request.HasField("run_at"):
        fields["run_at"] = from_timestamp(request.run_at).isoformat()
    if request.HasField("config"):
        fields["config"] = struct_to_dict(request.config)
    return fields


class TaskServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    def _publish(self, row: TaskRow) -> task_pb2.Task:
        event = task_event(row, self._app.clock())
        self._app.events.publish_scheduler(event)
        return event.task

    async def CreateTask(
        self, request: task_service_pb2.CreateTaskRequest, context: Context
    ) -> task_pb2.Task:
        principal = current_principal()
        principal.require("admin")
        with self._app.db.session() as session:
            row = store.create_task(
                session,
                create_fields(request),
                principal.username,
                self._app.settings.default_timezone,
                self._app.clock(),
            )
        return self._publish(row)

    def _page(self, request: task_service_pb2.ListTasksRequest) -> CachedPage:
        query = store.TaskQuery(
            skip=request.skip,
            limit=request.limit or 20,
            task_type=request.task_type,
            enabled=request.enabled if request.HasField("enabled") else None,
            name=request.name.strip(),
            order_by=request.order_by,
            order=request.order,
            include_children=request.include_children,
        )
        cached = self._app.list_cache.get(query)
        if cached is not None:
            return cached
        now = self._app.clock()
        with self._app.db.session() as session:
            rows, total = store.list_tasks(session, query)
            latest = store.latest_runs(session, [row.id for row in rows])
        page = task_service_pb2.ListTasksResponse(
            tasks=[task_to_proto(row, now, latest.get(row.id)) for row in rows], total=total
        )
        return self._app.list_cache.put(query, page, now)

    async def ListTasks(
        self, request: task_service_pb2.ListTasksRequest, context: Context
    ) -> task_service_pb2.ListTasksResponse:
        current_principal()
        return self._page(request).page

    async def ListTasksJson(
        self, request: task_service_pb2.ListTasksRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        """GET /api/v1/scheduler/tasks: the page as JSON, rendered once per cached page."""
        current_principal()
        return self._page(request).http_body()

    async def GetTask(self, request: task_service_pb2.GetTaskRequest, context: Context) -> task_pb2.Task:
        current_principal()
        with self._app.db.session() as session:
            row = store.get_task(session, request.task_id)
            latest = store.latest_runs(session, [row.id]).get(row.id)
        return task_to_proto(row, self._app.clock(), latest)

    async def UpdateTask(
        self, request: task_service_pb2.UpdateTaskRequest, context: Context
    ) -> task_pb2.Task:
        principal = current_principal()
        principal.require("admin")
        changes = struct_to_dict(request.changes)
        with self._app.db.session() as session:
            row = store.update_task(session, request.task_id, changes, principal.username, self._app.clock())
        return self._publish(row)

    async def DeleteTask(
        self, request: task_service_pb2.DeleteTaskRequest, context: Context
    ) -> task_service_pb2.DeleteTaskResponse:
        current_principal().require("admin")
        with self._app.db.session() as session:
            active = store.delete_task(session, request.task_id, request.force)
        events = self._app.events
        for row in active:
            if row.status == "running":
                events.publish_scheduler(
                    internal_pb2.WatchSchedulerEventsResponse(
                        event_type="terminate_requested", execution=execution_to_proto(row)
                    )
                )
        events.publish_scheduler(
            internal_pb2.WatchSchedulerEventsResponse(event_type="task_delete", task_id=request.task_id)
        )
        return task_service_pb2.DeleteTaskResponse(message="任务已删除")

    async def _set_state(
        self, task_id: int, *, enabled: bool | None = None, paused: bool | None = None
    ) -> task_pb2.Task:
        principal = current_principal()
        principal.require("operator")
        now = self._app.clock()
        with self._app.db.session() as session:
            if enabled is not None:
                row = store.set_enabled(session, task_id, enabled, principal.username, now)
            else:
                assert paused is not None
                row = store.set_paused(session, task_id, paused, principal.username, now)
            latest = store.latest_runs(session, [row.id]).get(row.id)
        self._app.events.publish_scheduler(task_event(row, now))
        return task_to_proto(row, now, latest)

    async def EnableTask(
        self, request: task_service_pb2.EnableTaskRequest, context: Context
    ) -> task_pb2.Task:
        return await self._set_state(request.task_id, enabled=True)

    async def DisableTask(
        self, request: task_service_pb2.DisableTaskRequest, context: Context
    ) -> task_pb2.Task:
        return await self._set_state(request.task_id, enabled=False)

    async def PauseTask(self, request: task_service_pb2.PauseTaskRequest, context: Context) -> task_pb2.Task:
        return await self._set_state(request.task_id, paused=True)

    async def ResumeTask(
        self, request: task_service_pb2.ResumeTaskRequest, context: Context
    ) -> task_pb2.Task:
        return await self._set_state(request.task_id, paused=False)

    async def TriggerTask(
        self, request: task_service_pb2.TriggerTaskRequest, context: Context
    ) -> task_service_pb2.TriggerTaskResponse:
        current_principal().require("operator")
        now = self._app.clock()
        with self._app.db.session() as session:
            row, _ = exec_store.create_execution(
                session,
                exec_store.NewExecution(task_id=request.task_id, trigger="manual", scheduled_time=now),
                now,
            )
        self._app.events.publish_scheduler(
            internal_pb2.WatchSchedulerEventsResponse(
                event_type="execution_ready", execution=execution_to_proto(row)
            )
        )
        return task_service_pb2.TriggerTaskResponse(message="任务已触发", execution_id=row.id)

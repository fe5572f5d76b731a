"""TaskService: proto in -> store -> proto out; publishes changes to the scheduler feed.

Every change is published after its transaction committed; the EventHub hands it to this replica's
scheduler feeds and, over the cluster bus, to the other replicas'. The registry is the only writer of
task rows, so this is how every replica learns of every change. Database work runs in worker
threads (`asyncio.to_thread`), publishing on the event loop after it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from google.api import httpbody_pb2

from services.common.errors import InvalidArgument, Reason
from services.common.guard import current_principal
from services.common.input_checks import check_empty_body, parse_body_fields, parse_json_object, shown
from services.common.run_params import check_params, parse_logical_date
from services.common.structs import struct_to_dict
from services.common.tracing import current_traceparent
from services.registry.app import RegistryApp
from services.registry.convert import execution_to_proto, from_timestamp, task_event, task_to_proto
from services.registry.live.list_cache import CachedPage
from services.registry.models import ExecutionRow, TaskRow
from services.registry.runs.trigger import ManualTrigger, record_trigger
from services.registry.servicers.audit import caller
from services.registry.servicers.status import trigger_message
from services.registry.store import audit, task_batches, task_listing, task_rules
from services.registry.store import tasks as store
from services.registry.store.audit import Action, Actor, Target
from services.registry.task_creates import create_entry, reads_other_tasks
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2, task_service_pb2

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
# Events of a batch create published per turn of the event loop (~5 ms of work).
PUBLISH_SLICE = 100


def create_fields(request: task_service_pb2.CreateTaskRequest) -> dict[str, Any]:
    """Only what the caller set, so the store applies its own defaults to the rest."""
    fields: dict[str, Any] = {"name": request.name, "task_type": request.task_type}
    optional_scalars = ("enabled", "max_retries", "retry_interval", "misfire_grace_seconds", "retention_days")
    for name in optional_scalars:
        if request.HasField(name):
            fields[name] = getattr(request, name)
    text_fields = (
        "cron_expression",
        "timezone",
        "description",
        "concurrency_policy",
        "misfire_policy",
        "calendar",
        "calendar_holidays",
    )
    for name in text_fields:
        if value := getattr(request, name):
            fields[name] = value
    for name in ("interval_seconds", "timeout_seconds", "calendar_shift"):
        if value := getattr(request, name):
            fields[name] = value
    if request.HasField("run_at"):
        fields["run_at"] = from_timestamp(request.run_at).isoformat()
    if request.HasField("config"):
        fields["config"] = struct_to_dict(request.config)
    if request.tags:
        fields["tags"] = list(request.tags)
    return fields


def json_fields(item: object, label: str) -> dict[str, Any]:
    """A task as JSON -> the fields for the store, which refuses unknown ones by name and checks
    each value's type exactly; null is the same as leaving the field out."""
    if not isinstance(item, dict):
        raise InvalidArgument(f"{label}必须是 JSON 对象，收到 {shown(item)}", reason=Reason.TASK_INVALID)
    return {name: value for name, value in item.items() if value is not None}


def json_batch(data: bytes) -> list[dict[str, Any]]:
    body = parse_json_object(data)
    unknown = sorted(set(body) - {"tasks"})
    if unknown:
        raise InvalidArgument(f"不支持的字段: {shown(', '.join(unknown))}", reason=Reason.TASK_INVALID)
    items = body.get("tasks") or []
    if not isinstance(items, list):
        raise InvalidArgument("tasks 必须是 JSON 数组", reason=Reason.TASK_INVALID)
    task_batches.check_batch_size(len(items))
    return [json_fields(item, f"tasks[{index}]") for index, item in enumerate(items)]


async def publish_in_slices(
    app: RegistryApp, events: list[internal_pb2.WatchSchedulerEventsResponse]
) -> None:
    """Publishes many events a slice per turn of the loop, so that health checks and other calls
    get the loop in between."""
    for start in range(0, len(events), PUBLISH_SLICE):
        for event in events[start : start + PUBLISH_SLICE]:
            app.events.publish_scheduler(event)
        await asyncio.sleep(0)


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
        return await self._create(create_fields(request), caller(context, "admin"))

    async def CreateTaskJson(self, request: task_service_pb2.JsonBody, context: Context) -> task_pb2.Task:
        actor = caller(context, "admin")
        fields = json_fields(parse_json_object(request.body.data), "请求体")
        return await self._create(fields, actor)

    async def _create(self, fields: dict[str, Any], actor: Actor) -> task_pb2.Task:
        return self._publish(await self._app.creates.create(fields, actor))

    async def BatchCreateTasks(
        self, request: task_service_pb2.BatchCreateTasksRequest, context: Context
    ) -> task_service_pb2.BatchCreateTasksResponse:
        actor = caller(context, "admin")
        task_batches.check_batch_size(len(request.tasks))  # before converting what would be refused
        return await self._publish_batch([create_fields(item) for item in request.tasks], actor)

    async def BatchCreateTasksJson(
        self, request: task_service_pb2.JsonBody, context: Context
    ) -> task_service_pb2.BatchCreateTasksResponse:
        actor = caller(context, "admin")
        items = await asyncio.to_thread(json_batch, request.body.data)  # up to 1 MiB of JSON
        return await self._publish_batch(items, actor)

    async def _publish_batch(
        self, items: list[dict[str, Any]], actor: Actor
    ) -> task_service_pb2.BatchCreateTasksResponse:
        # Up to 1,000 rows: the transaction and the conversions run off the event loop.
        response, events = await asyncio.to_thread(self._create_batch, items, actor)
        self._app.upkeep.bulk_written(len(response.tasks))
        await publish_in_slices(self._app, events)
        return response

    def _create_batch(
        self, items: list[dict[str, Any]], actor: Actor
    ) -> tuple[task_service_pb2.BatchCreateTasksResponse, list[internal_pb2.WatchSchedulerEventsResponse]]:
        now = self._app.clock()
        serialized = any(reads_other_tasks(item) for item in items)
        with self._app.db.session(serialized=serialized) as session:
            rows = task_batches.create_tasks(
                session,
                items,
                actor.username,
                self._app.settings.default_timezone,
                now,
            )
            audit.record(session, *(create_entry(actor, row, now) for row in rows))
        events = [task_event(row, now) for row in rows]
        return task_service_pb2.BatchCreateTasksResponse(tasks=[event.task for event in events]), events

    async def _page(self, request: task_service_pb2.ListTasksRequest) -> CachedPage:
        query = task_listing.TaskQuery(
            skip=request.skip,
            limit=request.limit or 20,
            task_type=request.task_type,
            enabled=request.enabled if request.HasField("enabled") else None,
            name=request.name.strip(),
            order_by=request.order_by,
            order=request.order,
            include_children=request.include_children,
            tag=request.tag,
            after_id=request.after_id,
        )
        cached = self._app.list_cache.get(query)
        if cached is not None:
            return cached
        now = self._app.clock()
        cache = self._app.list_cache
        known_total = cache.total(query.matches)

        def read() -> task_service_pb2.ListTasksResponse:
            with self._app.db.session() as session:
                rows, total = task_listing.list_tasks(session, query, known_total)
                latest = task_listing.latest_runs(session, [row.id for row in rows])
            return task_service_pb2.ListTasksResponse(
                tasks=[task_to_proto(row, now, latest.get(row.id)) for row in rows],
                total=total,
                next_after_id=rows[-1].id if len(rows) == query.limit and query.order_by in ("", "id") else 0,
            )

        began = cache.read_start()
        page = await asyncio.to_thread(read)
        if known_total is None:
            cache.put_total(query.matches, page.total, began)
        return cache.put(query, page, now, began)

    async def ListTasks(
        self, request: task_service_pb2.ListTasksRequest, context: Context
    ) -> task_service_pb2.ListTasksResponse:
        current_principal()
        return (await self._page(request)).page

    async def ListTasksJson(
        self, request: task_service_pb2.ListTasksRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        """GET /api/v1/scheduler/tasks: the page as JSON, rendered once per cached page."""
        current_principal()
        return (await self._page(request)).http_body()

    async def GetTask(self, request: task_service_pb2.GetTaskRequest, context: Context) -> task_pb2.Task:
        current_principal()

        def read() -> task_pb2.Task:
            with self._app.db.session() as session:
                row = store.get_task(session, request.task_id)
                latest = task_listing.latest_runs(session, [row.id]).get(row.id)
            return task_to_proto(row, self._app.clock(), latest)

        return await asyncio.to_thread(read)

    async def UpdateTask(
        self, request: task_service_pb2.UpdateTaskRequest, context: Context
    ) -> task_pb2.Task:
        actor = caller(context, "admin")
        return await self._update(request.task_id, struct_to_dict(request.changes), actor)

    async def UpdateTaskJson(
        self, request: task_service_pb2.UpdateTaskJsonRequest, context: Context
    ) -> task_pb2.Task:
        actor = caller(context, "admin")
        changes = parse_json_object(request.body.data)
        return await self._update(request.task_id, changes, actor)

    async def _update(self, task_id: int, changes: dict[str, Any], actor: Actor) -> task_pb2.Task:
        def change() -> TaskRow:
            now = self._app.clock()
            # Serialized: the change is decided on the row as read (PostgreSQL locks the row).
            with self._app.db.session(serialized=True) as session:
                before = task_rules.editable_values(store.get_task(session, task_id))
                row = store.update_task(session, task_id, changes, actor.username, now)
                audit.record(
                    session,
                    audit.entry(
                        actor,
                        Action.TASK_UPDATE,
                        Target.TASK,
                        row.id,
                        now,
                        name=row.name,
                        changes=audit.diff(before, task_rules.editable_values(row)),
                    ),
                )
                return row

        return self._publish(await asyncio.to_thread(change))

    async def DeleteTask(
        self, request: task_service_pb2.DeleteTaskRequest, context: Context
    ) -> task_service_pb2.DeleteTaskResponse:
        actor = caller(context, "admin")
        # The task's whole history goes with it, and workflows are searched for references: that
        # grows with the data, so it runs in a worker thread.
        active = await asyncio.to_thread(self._delete, request.task_id, request.force, actor)
        events = self._app.events
        for row in active:
            if row.status == "running":
                events.publish_scheduler(
                    internal_pb2.WatchSchedulerEventsResponse(
                        type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TERMINATE_REQUESTED,
                        execution=execution_to_proto(row),
                    )
                )
        events.publish_scheduler(
            internal_pb2.WatchSchedulerEventsResponse(
                type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TASK_DELETE, task_id=request.task_id
            )
        )
        return task_service_pb2.DeleteTaskResponse(message="任务已删除")

    def _delete(self, task_id: int, force: bool, actor: Actor) -> list[ExecutionRow]:
        now = self._app.clock()
        with self._app.db.session(serialized=True) as session:  # decided on the runs as read
            name = store.get_task(session, task_id).name
            active = store.delete_task(session, task_id, force)
            changes = {"force": True} if force else {}
            audit.record(
                session,
                audit.entry(actor, Action.TASK_DELETE, Target.TASK, task_id, now, name=name, changes=changes),
            )
            return active

    async def _set_state(
        self, context: Context, task_id: int, *, enabled: bool | None = None, paused: bool | None = None
    ) -> task_pb2.Task:
        actor = caller(context, "operator")
        now = self._app.clock()

        def change() -> tuple[TaskRow, task_listing.LatestRun | None]:
            with self._app.db.session(serialized=True) as session:  # as an update
                if enabled is not None:
                    row = store.set_enabled(session, task_id, enabled, actor.username, now)
                    action = Action.TASK_ENABLE if enabled else Action.TASK_DISABLE
                else:
                    assert paused is not None
                    row = store.set_paused(session, task_id, paused, actor.username, now)
                    action = Action.TASK_PAUSE if paused else Action.TASK_RESUME
                audit.record(session, audit.entry(actor, action, Target.TASK, row.id, now, name=row.name))
                return row, task_listing.latest_runs(session, [row.id]).get(row.id)

        row, latest = await asyncio.to_thread(change)
        self._app.events.publish_scheduler(task_event(row, now))
        return task_to_proto(row, now, latest)

    async def EnableTask(
        self, request: task_service_pb2.EnableTaskRequest, context: Context
    ) -> task_pb2.Task:
        return await self._set_state(context, request.task_id, enabled=True)

    async def DisableTask(
        self, request: task_service_pb2.DisableTaskRequest, context: Context
    ) -> task_pb2.Task:
        return await self._set_state(context, request.task_id, enabled=False)

    async def PauseTask(self, request: task_service_pb2.PauseTaskRequest, context: Context) -> task_pb2.Task:
        return await self._set_state(context, request.task_id, paused=True)

    async def ResumeTask(
        self, request: task_service_pb2.ResumeTaskRequest, context: Context
    ) -> task_pb2.Task:
        return await self._set_state(context, request.task_id, paused=False)

    async def EnableTaskJson(
        self, request: task_service_pb2.TaskActionJson, context: Context
    ) -> task_pb2.Task:
        check_empty_body(request.body.data)
        return await self._set_state(context, request.task_id, enabled=True)

    async def DisableTaskJson(
        self, request: task_service_pb2.TaskActionJson, context: Context
    ) -> task_pb2.Task:
        check_empty_body(request.body.data)
        return await self._set_state(context, request.task_id, enabled=False)

    async def PauseTaskJson(
        self, request: task_service_pb2.TaskActionJson, context: Context
    ) -> task_pb2.Task:
        check_empty_body(request.body.data)
        return await self._set_state(context, request.task_id, paused=True)

    async def ResumeTaskJson(
        self, request: task_service_pb2.TaskActionJson, context: Context
    ) -> task_pb2.Task:
        check_empty_body(request.body.data)
        return await self._set_state(context, request.task_id, paused=False)

    async def TriggerTaskJson(
        self, request: task_service_pb2.TaskActionJson, context: Context
    ) -> task_service_pb2.TriggerTaskResponse:
        body = parse_body_fields(request.body.data, ("params", "logical_date"))
        params = body.get("params", {})
        if not isinstance(params, dict):
            raise InvalidArgument("params 必须是 JSON 对象", reason=Reason.RUN_PARAMS_INVALID)
        logical_date = body.get("logical_date", "")
        if not isinstance(logical_date, str):
            raise InvalidArgument("logical_date 必须是字符串 YYYY-MM-DD", reason=Reason.RUN_PARAMS_INVALID)
        trigger = task_service_pb2.TriggerTaskRequest(task_id=request.task_id, logical_date=logical_date)
        trigger.params.update(params)
        return await self.TriggerTask(trigger, context)

    async def TriggerTask(
        self, request: task_service_pb2.TriggerTaskRequest, context: Context
    ) -> task_service_pb2.TriggerTaskResponse:
        actor = caller(context, "operator")
        params = check_params(struct_to_dict(request.params), privileged=current_principal().has("admin"))
        logical_date = parse_logical_date(request.logical_date) if request.logical_date else None
        manual = ManualTrigger(
            request.task_id,
            self._app.clock(),
            actor,
            params,
            logical_date,
            traceparent=current_traceparent(),  # the run joins this call's trace (tracing.py)
        )
        triggered = await record_trigger(self._app, manual)
        log.info(
            "task triggered",
            extra={
                "task_id": request.task_id,
                "execution_id": triggered.execution_id,
                "user": actor.username,
            },
        )
        return task_service_pb2.TriggerTaskResponse(
            message=trigger_message(triggered.scheduler_up),
            execution_id=triggered.execution_id,
            scheduler_up=triggered.scheduler_up,
        )

"""WorkflowService and CronService."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import grpc
from sqlalchemy import select

from services.common.calendars import MAX_SHIFT, TradingCalendar, uncovered_note
from services.common.cron import CronError, parse_firing_cron, validate_timezone
from services.common.errors import FailedPrecondition, InvalidArgument, Reason
from services.common.guard import current_principal
from services.common.input_checks import check_json, check_text, parse_json_object
from services.common.schedule import Timing
from services.common.structs import struct_to_dict
from services.common.vocabulary import TaskType
from services.common.workflow_plan import Plan, PlanInvalid
from services.registry.app import RegistryApp
from services.registry.convert import task_to_proto, to_timestamp
from services.registry.models import TaskRow
from services.registry.store import tasks as task_store
from services.registry.store.calendars import resolve_or_refuse
from services.registry.store.task_listing import latest_runs
from services.registry.store.task_rules import MAX_CALENDAR, MAX_CRON, MAX_TIMEZONE
from services.registry.store.workflows import validate_workflow
from zquant.scheduler.v1 import cron_service_pb2, workflow_service_pb2

Context = grpc.aio.ServicerContext[Any, Any]


class WorkflowServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def ListWorkflowTasks(
        self, request: workflow_service_pb2.ListWorkflowTasksRequest, context: Context
    ) -> workflow_service_pb2.ListWorkflowTasksResponse:
        current_principal()
        # The workflow's nodes, their rows and newest runs: in a worker thread (it grows with the graph).
        return await asyncio.to_thread(self._workflow_tasks, request.task_id)

    def _workflow_tasks(self, task_id: int) -> workflow_service_pb2.ListWorkflowTasksResponse:
        now = self._app.clock()
        with self._app.db.session() as session:
            workflow = task_store.get_task(session, task_id)
            if workflow.task_type != TaskType.WORKFLOW:
                raise FailedPrecondition(f"任务 {task_id} 不是编排任务", reason=Reason.NOT_A_WORKFLOW)
            nodes = Plan.parse(workflow.config or {}).nodes
            rows = {
                row.id: row
                for row in session.scalars(select(TaskRow).where(TaskRow.id.in_([n.task_id for n in nodes])))
            }
            latest = latest_runs(session, list(rows))
        tasks = []
        for node in nodes:
            row = rows.get(node.task_id)
            if row is None:  # deleted with force: the UI still shows the node as missing
                continue
            task = task_to_proto(row, now, latest.get(row.id))
            task.dependencies.extend(node.dependencies)
            task.node_name = node.name
            tasks.append(task)
        return workflow_service_pb2.ListWorkflowTasksResponse(tasks=tasks)

    async def ValidateWorkflow(
        self, request: workflow_service_pb2.ValidateWorkflowRequest, context: Context
    ) -> workflow_service_pb2.ValidateWorkflowResponse:
        current_principal()
        return await asyncio.to_thread(self._validate, struct_to_dict(request.config), request.task_id)

    async def ValidateWorkflowJson(
        self, request: workflow_service_pb2.ValidateWorkflowJsonRequest, context: Context
    ) -> workflow_service_pb2.ValidateWorkflowResponse:
        current_principal()
        config = parse_json_object(request.body.data, "编排配置")
        return await asyncio.to_thread(self._validate, config, request.task_id)

    def _validate(
        self, config: dict[str, Any], task_id: int
    ) -> workflow_service_pb2.ValidateWorkflowResponse:
        """In a worker thread: the checks read the workflow's tasks."""
        check_json(config, "编排配置", reason=Reason.WORKFLOW_INVALID)
        with self._app.db.session() as session:
            try:
                validate_workflow(session, config, task_id)
            except PlanInvalid as exc:
                return workflow_service_pb2.ValidateWorkflowResponse(
                    valid=False, message=exc.message, reason=exc.reason, task_ids=exc.task_ids
                )
            except InvalidArgument as exc:
                return workflow_service_pb2.ValidateWorkflowResponse(
                    valid=False, message=exc.message, reason=exc.reason
                )
        return workflow_service_pb2.ValidateWorkflowResponse(valid=True, message="配置有效")


class CronServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    def _calendar(self, name: str) -> TradingCalendar:
        with self._app.db.session() as session:
            return resolve_or_refuse(session, name)

    async def PreviewCron(
        self, request: cron_service_pb2.PreviewCronRequest, context: Context
    ) -> cron_service_pb2.PreviewCronResponse:
        current_principal()
        count = request.count or 5
        if not 1 <= count <= 50:
            raise InvalidArgument("count 必须在1到50之间")
        expression = check_text(
            request.cron_expression.strip(), "Cron表达式", MAX_CRON, reason=Reason.CRON_INVALID
        )
        timezone = check_text(request.timezone.strip(), "时区", MAX_TIMEZONE, reason=Reason.TIMEZONE_INVALID)
        if not expression:
            raise InvalidArgument("Cron表达式不能为空", reason=Reason.CRON_INVALID)
        calendar_name = check_text(
            request.calendar.strip(), "交易日历", MAX_CALENDAR, reason=Reason.CALENDAR_UNKNOWN
        )
        if not -MAX_SHIFT <= request.calendar_shift <= MAX_SHIFT:
            raise InvalidArgument(f"交易日偏移必须在{-MAX_SHIFT}到{MAX_SHIFT}之间")
        now = self._app.clock()
        try:
            schedule = parse_firing_cron(expression, now)
            zone = validate_timezone(timezone or self._app.settings.default_timezone)
        except (CronError, ValueError) as exc:
            raise InvalidArgument(str(exc), reason=Reason.CRON_INVALID) from exc
        if not calendar_name:
            times = schedule.next_times(now - timedelta(microseconds=1), zone, count)
            return cron_service_pb2.PreviewCronResponse(next_run_times=[to_timestamp(t) for t in times])
        # Loading a calendar's data the first time takes about a second: not on the event loop.
        calendar = await asyncio.to_thread(self._calendar, calendar_name)
        timing = Timing(expression, 0, None, zone.key, now, calendar, request.calendar_shift)
        fires: list[datetime] = []
        moment = timing.next_after(now - timedelta(microseconds=1))
        while moment is not None and len(fires) < count:
            fires.append(moment)
            moment = timing.next_after(moment)
        return cron_service_pb2.PreviewCronResponse(
            next_run_times=[to_timestamp(t) for t in fires],
            calendar_data_end=calendar.covered_until.isoformat(),
            calendar_note=uncovered_note(calendar, fires, zone),
        )

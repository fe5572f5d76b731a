"""WorkflowService and CronService."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
from sqlalchemy import select

from services.common.cron import CronError, parse_cron, validate_timezone
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.server import current_principal
from services.common.structs import struct_to_dict
from services.registry.app import RegistryApp
from services.registry.convert import task_to_proto, to_timestamp
from services.registry.models import TaskRow
from services.registry.store import tasks as task_store
from services.registry.store.workflows import parse_workflow, validate_workflow
from zquant.scheduler.v1 import cron_service_pb2, workflow_service_pb2

Context = grpc.aio.ServicerContext[Any, Any]


class WorkflowServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def ListWorkflowTasks(
        self, request: workflow_service_pb2.ListWorkflowTasksRequest, context: Context
    ) -> workflow_service_pb2.ListWorkflowTasksResponse:
        current_principal()
        now = self._app.clock()
        with self._app.db.session() as session:
            workflow = task_store.get_task(session, request.task_id)
            if workflow.task_type != "workflow":
                raise FailedPrecondition(f"任务 {request.task_id} 不是编排任务")
            nodes = parse_workflow(workflow.config or {}).nodes
            rows = {
                row.id: row
                for row in session.scalars(select(TaskRow).where(TaskRow.id.in_([n.task_id for n in nodes])))
            }
            latest = task_store.latest_runs(session, list(rows))
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
        with self._app.db.session() as session:
            try:
                validate_workflow(session, struct_to_dict(request.config), request.task_id)
            except InvalidArgument as exc:
                return workflow_service_pb2.ValidateWorkflowResponse(valid=False, message=exc.message)
        return workflow_service_pb2.ValidateWorkflowResponse(valid=True, message="配置有效")


class CronServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def PreviewCron(
        self, request: cron_service_pb2.PreviewCronRequest, context: Context
    ) -> cron_service_pb2.PreviewCronResponse:
        current_principal()
        count = request.count or 5
        if not 1 <= count <= 50:
            raise InvalidArgument("count 必须在1到50之间")
        if not request.cron_expression.strip():
            raise InvalidArgument("Cron表达式不能为空")
        try:
            schedule = parse_cron(request.cron_expression)
            zone = validate_timezone(request.timezone or self._app.settings.default_timezone)
        except (CronError, ValueError) as exc:
            raise InvalidArgument(str(exc)) from exc
        times = schedule.next_times(self._app.clock() - timedelta(microseconds=1), zone, count)
        return cron_service_pb2.PreviewCronResponse(next_run_times=[to_timestamp(t) for t in times])

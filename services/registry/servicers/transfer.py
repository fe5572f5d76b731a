"""TransferService: export pages and imports of task documents (store/transfer.py has the rules).

All database work and every conversion of a page or a document runs in a worker thread: an export
page or an import grows with the number of tasks. Changed tasks are published after the commit, in
slices, so that health checks and other calls get the event loop in between.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from sqlalchemy.orm import Session

from services.common.guard import current_principal
from services.common.input_checks import parse_json_object
from services.common.structs import dict_to_struct, struct_to_dict
from services.registry.app import RegistryApp
from services.registry.convert import task_event
from services.registry.servicers.tasks import publish_in_slices
from services.registry.store import transfer
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import transfer_service_pb2

Context = grpc.aio.ServicerContext[Any, Any]


def import_response(imported: transfer.Imported, dry_run: bool) -> transfer_service_pb2.ImportTasksResponse:
    counts = dict.fromkeys((transfer.CREATED, transfer.UPDATED, transfer.UNCHANGED), 0)
    for _, action, _ in imported.actions:
        counts[action] += 1
    return transfer_service_pb2.ImportTasksResponse(
        dry_run=dry_run,
        created=counts[transfer.CREATED],
        updated=counts[transfer.UPDATED],
        unchanged=counts[transfer.UNCHANGED],
        tasks=[
            transfer_service_pb2.ImportTasksResponse.Item(name=name, action=action, task_id=task_id)
            for name, action, task_id in imported.actions
        ],
    )


class TransferServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def ExportTasks(
        self, request: transfer_service_pb2.ExportTasksRequest, context: Context
    ) -> transfer_service_pb2.ExportTasksResponse:
        current_principal()

        def read(session: Session) -> transfer_service_pb2.ExportTasksResponse:
            page = transfer.export_page(session, request.after_id, request.limit)
            return transfer_service_pb2.ExportTasksResponse(
                version=transfer.DOCUMENT_VERSION,
                tasks=[dict_to_struct(item) for item in page.items],
                next_after_id=page.next_after_id,
            )

        return await self._app.db.run(read)

    async def ImportTasks(
        self, request: transfer_service_pb2.ImportTasksRequest, context: Context
    ) -> transfer_service_pb2.ImportTasksResponse:
        principal = current_principal()
        principal.require("admin")

        def items() -> list[Any]:
            return transfer.document_items({"tasks": [struct_to_dict(item) for item in request.tasks]})

        return await self._import(await asyncio.to_thread(items), principal.username, request.dry_run)

    async def ImportTasksJson(
        self, request: transfer_service_pb2.ImportTasksJsonRequest, context: Context
    ) -> transfer_service_pb2.ImportTasksResponse:
        principal = current_principal()
        principal.require("admin")

        def items() -> list[Any]:
            return transfer.document_items(parse_json_object(request.body.data, "导入文档"))

        return await self._import(await asyncio.to_thread(items), principal.username, request.dry_run)

    async def _import(
        self, items: list[Any], actor: str, dry_run: bool
    ) -> transfer_service_pb2.ImportTasksResponse:
        app = self._app
        now = app.clock()

        def write() -> tuple[
            transfer_service_pb2.ImportTasksResponse, list[internal_pb2.WatchSchedulerEventsResponse]
        ]:
            imported = transfer.run_import(
                app.db, items, actor, app.settings.default_timezone, now, dry_run=dry_run
            )
            return import_response(imported, dry_run), [task_event(row, now) for row in imported.changed]

        response, events = await asyncio.to_thread(write)
        if not dry_run:
            app.upkeep.bulk_written(response.created)
        await publish_in_slices(app, events)
        return response

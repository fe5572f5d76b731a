"""BackfillService: create, read, list and cancel backfills (the rules: `store/backfills.py`).

Every call does its database work in a worker thread (`Database.run`); a backfill's planned times
(up to 10,000) are computed there too. Cancelling terminates the backfill's live runs the way
TerminateExecution does, so the scheduler stops the running ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import grpc
from sqlalchemy.orm import Session

from services.common.errors import InvalidArgument, Reason
from services.common.guard import current_principal
from services.common.input_checks import parse_body_fields
from services.common.structs import struct_to_dict
from services.common.tracing import current_traceparent
from services.registry.app import RegistryApp
from services.registry.convert import backfill_to_proto, execution_to_proto
from services.registry.models import BackfillRow, ExecutionRow
from services.registry.servicers.executions import publish_terminations
from services.registry.store import backfills as store
from zquant.scheduler.v1 import backfill_service_pb2 as pb2
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

Context = grpc.aio.ServicerContext[Any, Any]

# Field -> the JSON types it takes (bool is not an int here).
_BODY_FIELDS: dict[str, tuple[type, ...]] = {
    "start": (str,),
    "end": (str,),
    "max_parallel": (int,),
    "rerun_succeeded": (bool,),
    "params": (dict,),
}


def backfill_request(task_id: int, data: bytes) -> store.BackfillRequest:
    """The REST body, strictly: unknown fields and wrong types are refused by name."""
    body = parse_body_fields(data, _BODY_FIELDS)
    for key, value in body.items():
        if not isinstance(value, _BODY_FIELDS[key]) or (key == "max_parallel" and isinstance(value, bool)):
            reason = Reason.RUN_PARAMS_INVALID if key == "params" else Reason.BACKFILL_INVALID
            kind = {"params": "JSON 对象", "max_parallel": "整数", "rerun_succeeded": "布尔值"}
            raise InvalidArgument(f"{key} 必须是{kind.get(key, '字符串 YYYY-MM-DD')}", reason=reason)
    for key in ("start", "end"):
        if key not in body:
            raise InvalidArgument(f"缺少字段: {key}", reason=Reason.BACKFILL_INVALID)
    return store.BackfillRequest(
        task_id=task_id,
        start=body["start"],
        end=body["end"],
        max_parallel=body.get("max_parallel", 1),
        rerun_succeeded=body.get("rerun_succeeded", False),
        params=body.get("params", {}),
    )


def _proto(session: Session, row: BackfillRow) -> pb2.Backfill:
    return backfill_to_proto(row, store.progress_of(session, [row.id])[row.id])


class BackfillServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def CreateBackfillJson(
        self, request: pb2.CreateBackfillJsonRequest, context: Context
    ) -> pb2.Backfill:
        current_principal().require("operator")
        return await self._create(backfill_request(request.task_id, request.body.data))

    async def CreateBackfill(self, request: pb2.CreateBackfillRequest, context: Context) -> pb2.Backfill:
        current_principal().require("operator")
        wanted = store.BackfillRequest(
            task_id=request.task_id,
            start=request.start,
            end=request.end,
            max_parallel=request.max_parallel,
            rerun_succeeded=request.rerun_succeeded,
            params=struct_to_dict(request.params),
        )
        return await self._create(wanted)

    async def _create(self, wanted: store.BackfillRequest) -> pb2.Backfill:
        principal = current_principal()
        now = self._app.clock()
        # Its runs join this call's trace, as a trigger's run does.
        wanted = dataclasses.replace(wanted, traceparent=current_traceparent())

        def create(session: Session) -> pb2.Backfill:
            row = store.create_backfill(
                session, wanted, principal.username, now, privileged=principal.has("admin")
            )
            return _proto(session, row)

        backfill = await self._app.db.run(create)
        await self._start()
        return backfill

    async def _start(self) -> None:
        """Creates a new backfill's first runs now and announces them: the scheduler dispatches
        them at once, and the announcement (a run with trigger backfill) brings its backfill pass
        back from the long pause it takes while no backfill runs (scheduler/backfills.py)."""
        app = self._app

        def advance() -> list[ExecutionRow]:
            # Serialized as the scheduler's pass is: a room is never started twice.
            with app.db.session(serialized=True) as session:
                return store.advance_backfills(session, app.clock())

        for row in await asyncio.to_thread(advance):
            app.events.publish_scheduler(
                internal_pb2.WatchSchedulerEventsResponse(
                    type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_EXECUTION_READY,
                    execution=execution_to_proto(row),
                )
            )

    async def GetBackfill(self, request: pb2.GetBackfillRequest, context: Context) -> pb2.Backfill:
        current_principal().require("viewer")
        return await self._app.db.run(
            lambda session: _proto(session, store.get_backfill(session, request.backfill_id))
        )

    async def ListBackfills(
        self, request: pb2.ListBackfillsRequest, context: Context
    ) -> pb2.ListBackfillsResponse:
        current_principal().require("viewer")

        def listed(session: Session) -> pb2.ListBackfillsResponse:
            rows = store.list_backfills(session, request.task_id, request.limit or 20)
            progress = store.progress_of(session, (row.id for row in rows))
            return pb2.ListBackfillsResponse(
                backfills=[backfill_to_proto(row, progress[row.id]) for row in rows]
            )

        return await self._app.db.run(listed)

    async def CancelBackfill(self, request: pb2.CancelBackfillRequest, context: Context) -> pb2.Backfill:
        current_principal().require("operator")
        now = self._app.clock()

        def cancel(session: Session) -> tuple[BackfillRow, list[tuple[ExecutionRow, bool]]]:
            return store.cancel_backfill(session, request.backfill_id, now)

        _, stopped = await self._app.db.run(cancel, serialized=True)  # decided on its status as read
        publish_terminations(self._app, stopped)
        # Read after the terminations committed, so the progress counts them.
        return await self._app.db.run(
            lambda session: _proto(session, store.get_backfill(session, request.backfill_id))
        )

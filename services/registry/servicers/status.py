"""StatusService: the system at a glance (does a scheduler lead, how many runs wait, which executors
it sees and how many free slots they have).

Whether a scheduler leads is read from the leadership row (``store.leadership``): a replica holds
an unexpired term while it runs and releases it when it stops. The same reading decides what a
manual trigger answers (``trigger_message``), so the header and the trigger never disagree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import grpc
from sqlalchemy import func, select

from services.common.guard import current_principal
from services.common.vocabulary import ExecutionStatus
from services.registry.app import RegistryApp
from services.registry.convert import executor_state_proto, to_timestamp
from services.registry.models import ExecutionRow
from services.registry.store.leadership import Leadership, current_leader
from zquant.scheduler.v1 import status_service_pb2

Context = grpc.aio.ServicerContext[Any, Any]

TRIGGERED = "任务已触发"
TRIGGERED_WITHOUT_SCHEDULER = "任务已触发（调度器未运行，将在恢复后执行）"


def trigger_message(scheduler_up: bool) -> str:
    """What a manual trigger answers: the run is recorded either way, but without a leading
    scheduler it waits until one is back."""
    return TRIGGERED if scheduler_up else TRIGGERED_WITHOUT_SCHEDULER


def free_slots(executors: Iterable[status_service_pb2.ExecutorState]) -> int:
    """Runs the executors could still take: those reachable and not draining, never below 0 each."""
    return sum(
        max(0, state.capacity - state.active_runs)
        for state in executors
        if state.reachable and not state.draining
    )


class StatusServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def GetStatus(
        self, request: status_service_pb2.GetStatusRequest, context: Context
    ) -> status_service_pb2.GetStatusResponse:
        current_principal()
        now = self._app.clock()

        def read() -> tuple[Leadership | None, int]:
            with self._app.db.session() as session:
                pending = session.scalar(
                    select(func.count())
                    .select_from(ExecutionRow)
                    .where(ExecutionRow.status == ExecutionStatus.PENDING)
                )
                return current_leader(session, now), pending or 0

        leader, pending = await asyncio.to_thread(read)  # the count reads the index: off the loop
        response = status_service_pb2.GetStatusResponse(scheduler_up=leader is not None, runs_pending=pending)
        if leader is not None:
            response.leader = leader.holder
            response.lease_expires_at.CopyFrom(to_timestamp(leader.expires_at))
            response.executors.extend(executor_state_proto(stored) for stored in leader.executors)
            response.free_slots = free_slots(response.executors)
        return response

"""Claims: which attempt of a run an executor gets, as the registry decides.

A pending run is claimed for one executor (`claim`: the registry answers with the attempt number
and the task as it is now; through the ledger, so the claims of a burst travel and commit
together), and goes back to pending when that executor declines it before
accepting (`requeue`). A run still going on an executor under another scheduler is taken over as a
new attempt (`adopt`), so the old attempt's late reports are refused. Whenever the registry no
longer gives the run out (terminated, deleted, claimed or ended elsewhere), the answer is None or
False and the dispatcher drops the run without a word (`reasons.run_is_gone`).
"""

from __future__ import annotations

import logging
from datetime import UTC

import grpc

from services.scheduler.clients import REGISTRY_TIMEOUT_SECONDS, ExecutorHandle, RegistryClient
from services.scheduler.ledger import RunLedger
from services.scheduler.reasons import describe, run_is_gone
from services.scheduler.run_handle import Claim, RunHandle
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

log = logging.getLogger(__name__)


class Claims:
    def __init__(self, registry: RegistryClient, ledger: RunLedger) -> None:
        self._registry = registry
        self._ledger = ledger

    async def claim(self, run: RunHandle, handle: ExecutorHandle) -> Claim | None:
        """Claims a pending run for `handle`; None when it is no longer pending here (terminated,
        deleted, or claimed by another scheduler)."""
        try:
            started = await self._start(run.execution_id, handle, adopt=False)
        except grpc.aio.AioRpcError as exc:
            if run_is_gone(exc):
                return None
            raise
        return Claim(handle, started.attempt, started.task)

    async def adopt(self, execution: task_pb2.Execution, handle: ExecutorHandle) -> Claim | None:
        """Takes a running run over (a new attempt: the old one's late reports are refused), to
        re-attach to it on `handle`; None when the registry does not give it (logged unless the
        run is gone)."""
        execution_id = execution.id
        try:
            started = await self._start(execution_id, handle, adopt=True)
        except grpc.aio.AioRpcError as exc:
            if not run_is_gone(exc):
                log.warning(
                    "could not adopt a run", extra={"execution_id": execution_id, "reason": describe(exc)}
                )
            return None
        log.info("adopting a running run", extra={"execution_id": execution_id, "executor": handle.address})
        assigned_at = (
            execution.start_time.ToDatetime(tzinfo=UTC) if execution.HasField("start_time") else None
        )
        return Claim(handle, started.attempt, started.task, attach=True, assigned_at=assigned_at)

    async def requeue(self, run: RunHandle) -> bool:
        """Back to pending after an executor declined; False when the run is gone meanwhile."""
        try:
            await self._registry.internal.RequeueExecution(
                internal_pb2.RequeueExecutionRequest(execution_id=run.execution_id, attempt=run.attempt),
                metadata=self._registry.metadata,
                timeout=REGISTRY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            if run_is_gone(exc):
                return False
            raise
        return True

    async def _start(
        self, execution_id: int, handle: ExecutorHandle, adopt: bool
    ) -> internal_pb2.StartExecutionResponse:
        return await self._ledger.start(
            internal_pb2.StartExecutionRequest(
                execution_id=execution_id, executor=handle.address, adopt=adopt
            )
        )

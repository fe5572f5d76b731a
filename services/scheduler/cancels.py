"""Stopping runs: a termination reaching the job wherever it runs, and jobs this scheduler abandons.

A termination is recorded by the registry (`terminate`: the record says who stopped it and the feed
tells everyone); the feed then asks the dispatcher to stop the run (`cancel`). A workflow stops its
nodes itself. A run on an executor is sent a Cancel for its attempt, one at a time, until the
executor answers that it stopped the job (`cancelled`): a Cancel can overtake its Run on the wire
and find nothing to stop, so the executor stream sends it again on the executor's acceptance and on
every report the registry answers with "terminate". A run not yet on an executor is stopped by its
dispatcher before it gets there.

A job outlives its stream, so a run the scheduler gives up on (lost executor, reaped attempt) is
stopped explicitly where it may still run (`stop_abandoned`), before its retry runs elsewhere.
"""

from __future__ import annotations

import logging

import grpc

from services.scheduler.background import Background
from services.scheduler.clients import REGISTRY_TIMEOUT_SECONDS, ExecutorHandle, ExecutorPool, RegistryClient
from services.scheduler.reasons import describe, run_is_gone
from services.scheduler.run_handle import RunHandle
from zquant.scheduler.v1 import execution_service_pb2, executor_service_pb2

log = logging.getLogger(__name__)

CANCEL_TIMEOUT_SECONDS = 10


class Cancels:
    def __init__(self, registry: RegistryClient, executors: ExecutorPool, background: Background) -> None:
        self._registry = registry
        self._executors = executors
        self._background = background

    async def terminate(self, execution_id: int) -> None:
        """Through the registry, so the record says who stopped it and the feed tells everyone."""
        try:
            await self._registry.executions.TerminateExecution(
                execution_service_pb2.TerminateExecutionRequest(execution_id=execution_id),
                metadata=self._registry.metadata,
                timeout=REGISTRY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            if not run_is_gone(exc):
                raise

    async def cancel(self, run: RunHandle) -> None:
        """The registry says the run is to be terminated: tell whoever runs it."""
        run.cancel_requested = True
        if run.workflow is not None:
            run.workflow.stop()
            return
        if run.handle is None or run.cancel_delivered or run.cancel_sending:
            return  # not sent yet (acceptance sends it), stopped already, or under way
        run.cancel_sending = True
        try:
            response = await run.handle.stub.Cancel(
                executor_service_pb2.CancelRequest(execution_id=run.execution_id, attempt=run.attempt),
                metadata=self._executors.metadata,
                timeout=CANCEL_TIMEOUT_SECONDS,
            )
            run.cancel_delivered = response.cancelled
        except grpc.aio.AioRpcError as exc:
            log.warning("cancel failed", extra={"execution_id": run.execution_id, "reason": describe(exc)})
        finally:
            run.cancel_sending = False

    def stop_abandoned(self, handle: ExecutorHandle, run: RunHandle) -> None:
        """A job outlives its stream, so a run this scheduler gives up on (lost, reaped) is stopped
        explicitly where it may still be running, before its retry runs elsewhere. Only this
        attempt: a run another scheduler re-attached to is left alone."""
        self._background.spawn(self._send_cancel(handle, run.execution_id, run.attempt))

    async def _send_cancel(self, handle: ExecutorHandle, execution_id: int, attempt: int) -> None:
        try:
            await handle.stub.Cancel(
                executor_service_pb2.CancelRequest(execution_id=execution_id, attempt=attempt),
                metadata=self._executors.metadata,
                timeout=CANCEL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            log.info(
                "could not stop an abandoned run",
                extra={"execution_id": execution_id, "reason": describe(exc)},
            )

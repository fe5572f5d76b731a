"""ExecutorService: proto in -> runner -> proto out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from services.executor.convert import event_to_proto, run_spec_from_proto
from services.executor.runner import Runner
from zquant.scheduler.v1 import executor_service_pb2, executor_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class ExecutorServicer(executor_service_pb2_grpc.ExecutorServiceServicer):  # type: ignore[misc]
    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def Run(
        self, request: executor_service_pb2.RunRequest, context: Context
    ) -> AsyncIterator[executor_service_pb2.RunResponse]:
        run = self._runner.start(run_spec_from_proto(request))
        # Fires however the RPC ends; if the caller went away mid-run, the job is cancelled.
        # (grpc-stubs declare the callback as a class, hence the ignore.)
        context.add_done_callback(lambda _: run.abandon())  # type: ignore[arg-type]
        async for event in run.events():
            yield event_to_proto(event)

    async def Cancel(
        self, request: executor_service_pb2.CancelRequest, context: Context
    ) -> executor_service_pb2.CancelResponse:
        grace = float(request.grace_seconds) if request.grace_seconds > 0 else None
        return executor_service_pb2.CancelResponse(cancelled=self._runner.cancel(request.execution_id, grace))

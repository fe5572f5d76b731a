"""Acknowledgements: telling executors which outcomes the registry has stored, in batches.

An executor keeps each run's outcome until a scheduler acknowledges it (so the next leader can
collect an outcome whose report was lost). One Acknowledge call per run cost a round trip on both
sides for every run; here the runs stored are gathered per executor and sent together, one call per
executor at most every `interval` seconds. Best effort: an outcome never acknowledged is replayed
to the next re-attach, where the registry refuses the stale attempt, or forgotten after an hour.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import grpc

from services.scheduler.clients import ExecutorHandle, ExecutorPool
from services.scheduler.reasons import describe
from zquant.scheduler.v1 import executor_service_pb2

log = logging.getLogger(__name__)

ACKNOWLEDGE_INTERVAL_SECONDS = 0.2
ACKNOWLEDGE_TIMEOUT_SECONDS = 10


class Acknowledgements:
    def __init__(self, executors: ExecutorPool, interval: float = ACKNOWLEDGE_INTERVAL_SECONDS) -> None:
        self._executors = executors
        self._interval = interval
        self._waiting: defaultdict[str, list[executor_service_pb2.RunAttempt]] = defaultdict(list)
        self._handles: dict[str, ExecutorHandle] = {}
        self._sender: asyncio.Task[None] | None = None

    def add(self, handle: ExecutorHandle, execution_id: int, attempt: int) -> None:
        """The registry stored this attempt's outcome: `handle`'s executor may forget it."""
        self._handles[handle.address] = handle
        self._waiting[handle.address].append(
            executor_service_pb2.RunAttempt(execution_id=execution_id, attempt=attempt)
        )
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_later())

    async def _send_later(self) -> None:
        await asyncio.sleep(self._interval)
        await self.flush()

    async def flush(self) -> None:
        """Sends everything waiting now, one call per executor."""
        waiting, self._waiting = self._waiting, defaultdict(list)
        handles, self._handles = self._handles, {}
        await asyncio.gather(*(self._send(handles[address], runs) for address, runs in waiting.items()))

    async def close(self) -> None:
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
        await self.flush()

    async def _send(self, handle: ExecutorHandle, runs: list[executor_service_pb2.RunAttempt]) -> None:
        try:
            await handle.stub.Acknowledge(
                executor_service_pb2.AcknowledgeRequest(runs=runs),
                metadata=self._executors.metadata,
                timeout=ACKNOWLEDGE_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "acknowledge failed",
                extra={"executor": handle.address, "runs": len(runs), "reason": describe(exc)},
            )

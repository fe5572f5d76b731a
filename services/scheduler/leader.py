"""Leader election among scheduler replicas: only the leader runs an engine.

Every replica asks the registry every `renew_seconds` to acquire or renew a term of `ttl_seconds`.
A standby becomes leader once the old term expires (killed leader: within ttl + renew seconds); a
leader that cannot renew in time stops its engine before its term can have passed to someone else.
The database uniqueness of task + planned time stays the last guard against duplicates.

A leader reports its executors' loads with its renewals, asking the executors for them every
EXECUTOR_LOADS_SECONDS (the renewals in between repeat the last answer).

While leading, a replica also drives the registry's housekeeping (RunHousekeeping: the alert
outbox's deliveries, the purge of old history) every `housekeeping_seconds`; the registry does the work only for the leader of
the current term, so several replicas never alert twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

import grpc

from services.scheduler.clients import RegistryClient
from services.scheduler.engine import Engine
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import status_service_pb2

log = logging.getLogger(__name__)

# A pass sends a batch of alerts in parallel, each within its channel's timeout (at most 20 s).
HOUSEKEEPING_TIMEOUT_SECONDS = 60.0
# How stale the executors' loads in the registry's status may be (GET /status).
EXECUTOR_LOADS_SECONDS = 5.0


def candidate_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class LeaderElection:
    def __init__(
        self,
        registry: RegistryClient,
        make_engine: Callable[[], Engine],
        ttl_seconds: int = 3,
        renew_seconds: float = 1.0,
        executor_loads: Callable[[float], Awaitable[list[status_service_pb2.ExecutorState]]] | None = None,
        housekeeping_seconds: float = 5.0,
    ) -> None:
        self._registry = registry
        self._make_engine = make_engine
        self._ttl = ttl_seconds
        self._renew = renew_seconds
        # The leader reports the executors' loads with each renewal (the registry's status shows them).
        self._executor_loads = executor_loads
        self._last_loads: list[status_service_pb2.ExecutorState] = []
        self._loads_at = -math.inf
        self.candidate = candidate_id()
        self.engine: Engine | None = None
        self._engine_task: asyncio.Task[None] | None = None
        self._housekeeping_seconds = housekeeping_seconds
        self._housekeeping_task: asyncio.Task[None] | None = None
        self.term = 0

    @property
    def is_leader(self) -> bool:
        return self.engine is not None

    async def run(self) -> None:
        last_confirmed = 0.0
        while True:
            try:
                executors = await self._loads() if self.is_leader else []
                response: internal_pb2.AcquireLeadershipResponse = (
                    await self._registry.internal.AcquireLeadership(
                        internal_pb2.AcquireLeadershipRequest(
                            candidate=self.candidate, ttl_seconds=self._ttl, executors=executors
                        ),
                        metadata=self._registry.metadata,
                        timeout=self._renew,
                    )
                )
                if response.leader:
                    last_confirmed = time.monotonic()
                    if not self.is_leader:
                        await self._lead(response.term)
                elif self.is_leader:
                    log.warning(
                        "lost the leadership", extra={"holder": response.holder, "term": response.term}
                    )
                    await self._step_down()
            except grpc.aio.AioRpcError as exc:
                # Unconfirmed for most of a term: stop before another replica may lead.
                if self.is_leader and time.monotonic() - last_confirmed > self._ttl - self._renew:
                    log.warning("cannot renew the leadership; stepping down", extra={"code": exc.code().name})
                    await self._step_down()
            await asyncio.sleep(self._renew)

    async def _loads(self) -> list[status_service_pb2.ExecutorState]:
        """The executors' loads to report, asked of them every EXECUTOR_LOADS_SECONDS, not with
        every renewal: an idle stack then makes no call per second to each executor."""
        if self._executor_loads is None:
            return []
        if time.monotonic() - self._loads_at >= EXECUTOR_LOADS_SECONDS:
            self._last_loads = await self._executor_loads(self._renew / 2)
            self._loads_at = time.monotonic()
        return self._last_loads

    async def _lead(self, term: int) -> None:
        self.term = term
        self.engine = self._make_engine()
        self._engine_task = asyncio.create_task(self.engine.run(), name="scheduler-engine")
        self._housekeeping_task = asyncio.create_task(self._housekeep(term), name="housekeeping")
        log.info("leading", extra={"candidate": self.candidate, "term": term})

    async def _housekeep(self, term: int) -> None:
        """Asks the registry for a housekeeping pass now and then, as the leader of `term`."""
        request = internal_pb2.RunHousekeepingRequest(candidate=self.candidate, term=term)
        while True:
            try:
                response: internal_pb2.RunHousekeepingResponse = (
                    await self._registry.internal.RunHousekeeping(
                        request, metadata=self._registry.metadata, timeout=HOUSEKEEPING_TIMEOUT_SECONDS
                    )
                )
                if response.alerts_sent or response.alerts_failed or response.runs_purged:
                    log.info(
                        "housekeeping",
                        extra={
                            "alerts_sent": response.alerts_sent,
                            "alerts_failed": response.alerts_failed,
                            "runs_purged": response.runs_purged,
                        },
                    )
            except grpc.aio.AioRpcError as exc:
                log.warning("housekeeping pass failed", extra={"code": exc.code().name})
            await asyncio.sleep(self._housekeeping_seconds)

    async def _step_down(self) -> None:
        engine, task = self.engine, self._engine_task
        self.engine, self._engine_task = None, None
        if self._housekeeping_task is not None:
            self._housekeeping_task.cancel()
            self._housekeeping_task = None
        if task is not None:
            task.cancel()
        if engine is not None:
            await engine.stop()

    async def stop(self) -> None:
        """Graceful stop: hand the leadership over at once instead of letting it expire."""
        was_leader = self.is_leader
        await self._step_down()
        if was_leader:
            try:
                await self._registry.internal.ReleaseLeadership(
                    internal_pb2.ReleaseLeadershipRequest(candidate=self.candidate),
                    metadata=self._registry.metadata,
                    timeout=2,
                )
            except grpc.aio.AioRpcError:
                log.warning("could not release the leadership; it expires by itself")

"""Leader election among scheduler replicas: only the leader runs an engine.

Every replica asks the registry every `renew_seconds` to acquire or renew a term of `ttl_seconds`.
A standby becomes leader once the old term expires (killed leader: within ttl + renew seconds); a
leader that cannot renew in time stops its engine before its term can have passed to someone else.
The database uniqueness of task + planned time stays the last guard against duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable

import grpc

from services.scheduler.clients import RegistryClient
from services.scheduler.engine import Engine
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

log = logging.getLogger(__name__)


def candidate_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class LeaderElection:
    def __init__(
        self,
        registry: RegistryClient,
        make_engine: Callable[[], Engine],
        ttl_seconds: int = 3,
        renew_seconds: float = 1.0,
    ) -> None:
        self._registry = registry
        self._make_engine = make_engine
        self._ttl = ttl_seconds
        self._renew = renew_seconds
        self.candidate = candidate_id()
        self.engine: Engine | None = None
        self._engine_task: asyncio.Task[None] | None = None
        self.term = 0

    @property
    def is_leader(self) -> bool:
        return self.engine is not None

    async def run(self) -> None:
        last_confirmed = 0.0
        while True:
            try:
                response: internal_pb2.AcquireLeadershipResponse = (
                    await self._registry.internal.AcquireLeadership(
                        internal_pb2.AcquireLeadershipRequest(
                            candidate=self.candidate, ttl_seconds=self._ttl
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

    async def _lead(self, term: int) -> None:
        self.term = term
        self.engine = self._make_engine()
        self._engine_task = asyncio.create_task(self.engine.run(), name="scheduler-engine")
        log.info("leading", extra={"candidate": self.candidate, "term": term})

    async def _step_down(self) -> None:
        engine, task = self.engine, self._engine_task
        self.engine, self._engine_task = None, None
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

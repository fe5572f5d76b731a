"""Leader election among scheduler replicas: only the leader runs an engine.

Every replica holds a leadership stream to the registry (HoldLeadership): the registry that holds it
renews the leader's term of `ttl_seconds` every `renew_seconds`, tries a standby again when the
term ends or is released, and releases the leadership as soon as the stream ends (registry's
live/leadership.py). So a killed leader is replaced within moments, and an idle stack makes no
call a second for it.

A replica leads only while its stream is up: the registry releases the leadership when the stream
breaks, so the replica stops its engine at once, and also when it has had no word for
`ttl_seconds - renew_seconds` (its term may be about to pass to someone else). It acknowledges every
state it gets; a replica whose loop is stuck does not, and its term runs out. The database
uniqueness of task + planned time stays the last guard against duplicates.

The leader's acknowledgements carry its executors' loads, which it asks the executors for every
EXECUTOR_LOADS_SECONDS (a minute while all is quiet); the registry stores them with the renewals
(for GET /status). The leader's housekeeping (alert deliveries, the purge of old history) is run by
the registry holding its stream.
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
from typing import Any

import grpc

from services.scheduler.clients import RegistryClient
from services.scheduler.engine import Engine
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import status_service_pb2

log = logging.getLogger(__name__)

# How stale the executors' loads in the registry's status may be (GET /status): while runs are out
# or an executor was last seen busy, draining or unreachable; and while all is quiet.
EXECUTOR_LOADS_SECONDS = 5.0
EXECUTOR_LOADS_QUIET_SECONDS = 60.0
# A broken stream is opened again after this pause, doubled after each failure up to the maximum:
# a registry that is starting (or restarting) is led by this replica within a second of it serving.
RECONNECT_MIN_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 1.0
# What a stream's read() returns once the registry has ended it.
_END: object = grpc.aio.EOF  # type: ignore[attr-defined]


def candidate_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class LeaderElection:
    def __init__(
        self,
        registry: RegistryClient,
        make_engine: Callable[[], Engine],
        ttl_seconds: int = 30,
        renew_seconds: float = 10.0,
        executor_loads: Callable[[float], Awaitable[list[status_service_pb2.ExecutorState]]] | None = None,
        runs_out: Callable[[], bool] = lambda: False,
    ) -> None:
        self._registry = registry
        self._make_engine = make_engine
        self._ttl = ttl_seconds
        self._renew = renew_seconds
        # The leader reports the executors' loads with each acknowledgement (the registry's status
        # shows them).
        self._executor_loads = executor_loads
        self._runs_out = runs_out
        self._last_loads: list[status_service_pb2.ExecutorState] = []
        self._loads_at = -math.inf
        self.candidate = candidate_id()
        self.engine: Engine | None = None
        self._engine_task: asyncio.Task[None] | None = None
        self._call: Any = None
        self._stopping = False
        self.term = 0

    @property
    def is_leader(self) -> bool:
        return self.engine is not None

    async def run(self) -> None:
        """Holds a leadership stream for as long as this replica runs, opening it again when it
        breaks."""
        pause = RECONNECT_MIN_SECONDS
        while not self._stopping:
            heard = False
            try:
                heard = await self._hold()
            except grpc.aio.AioRpcError as exc:
                log.warning("the leadership stream broke", extra={"code": exc.code().name})
            except TimeoutError:
                log.warning("no word from the registry for most of a term; stepping down")
            if self.is_leader:
                # The registry releases the leadership when the stream ends: never lead without one.
                await self._step_down()
            self._close_stream()
            pause = RECONNECT_MIN_SECONDS if heard else min(pause * 2, RECONNECT_MAX_SECONDS)
            await asyncio.sleep(pause)

    async def _hold(self) -> bool:
        """One stream, until it ends; True when it carried at least one state."""
        call = self._registry.internal.HoldLeadership(metadata=self._registry.metadata)
        self._call = call
        await call.write(
            internal_pb2.HoldLeadershipRequest(
                candidate=self.candidate, ttl_seconds=self._ttl, renew_seconds=self._renew
            )
        )
        heard = False
        confirmed = time.monotonic()
        while True:
            # Leading, a term unconfirmed for ttl - renew seconds may be about to pass to another.
            patience = confirmed + self._ttl - self._renew - time.monotonic() if self.is_leader else None
            async with asyncio.timeout(patience):
                state = await call.read()
            if state is _END:
                return heard
            assert isinstance(state, internal_pb2.HoldLeadershipResponse)
            heard = True
            await self._follow(state)
            if state.leader:
                confirmed = time.monotonic()
            executors = await self._loads() if self.is_leader else []
            await call.write(internal_pb2.HoldLeadershipRequest(executors=executors))

    async def _follow(self, state: internal_pb2.HoldLeadershipResponse) -> None:
        if self.is_leader and (not state.leader or state.term != self.term):
            log.warning("lost the leadership", extra={"holder": state.holder, "term": state.term})
            await self._step_down()
        if state.leader and not self.is_leader:
            self._lead(state.term)

    async def _loads(self) -> list[status_service_pb2.ExecutorState]:
        """The executors' loads to report, asked of them every EXECUTOR_LOADS_SECONDS (every
        EXECUTOR_LOADS_QUIET_SECONDS while nothing runs and all were idle), not with every
        acknowledgement."""
        if self._executor_loads is None:
            return []
        quiet = not self._runs_out() and all(
            state.reachable and not state.draining and not state.active_runs for state in self._last_loads
        )
        every = EXECUTOR_LOADS_QUIET_SECONDS if quiet else EXECUTOR_LOADS_SECONDS
        if time.monotonic() - self._loads_at >= every:
            self._last_loads = await self._executor_loads(self._renew / 2)
            self._loads_at = time.monotonic()
        return self._last_loads

    def _lead(self, term: int) -> None:
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
        """Graceful stop: the engine first, then the stream, and the leadership handed over at once
        instead of letting it expire. The registry releases it when the stream ends too, but in
        the background: a registry stopped right after this scheduler (a restart of both) may not
        get to it, and the next scheduler would wait out the term."""
        was_leader = self.is_leader
        self._stopping = True
        await self._step_down()
        self._close_stream()
        if was_leader:
            try:
                await self._registry.internal.ReleaseLeadership(
                    internal_pb2.ReleaseLeadershipRequest(candidate=self.candidate),
                    metadata=self._registry.metadata,
                    timeout=2,
                )
            except grpc.aio.AioRpcError:
                log.warning("could not release the leadership; it expires by itself")

    def _close_stream(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None

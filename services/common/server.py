"""gRPC server wiring shared by every service: health, reflection, the guard around every call
(guard.py: auth and error mapping), SIGTERM, and the opt-in loop watchdog (loop_watchdog.py).

Health answers anyone (load balancers, Envoy, kubelets probe it). Reflection lists every service and
message, so it answers only a caller the service's authenticator accepts (a user's or the service
token), and is not served at all with ZQ_ENV=production.

Health has two names. The overall one ("") is liveness: SERVING from start until the server stops.
`readiness` (READINESS_SERVICE) is SERVING only while every condition the service reports with
`set_condition` holds (the registry's cluster bus: a replica deaf to LISTEN/NOTIFY serves stale
watches and feeds, so Envoy and the kubelet take it out of rotation until it listens again, without
restarting it). Both go NOT_SERVING when the server stops.

Every method is served through its generic handler: the "registered method" the generated code
adds as well would cost every call an `asyncio.wait` over one future per method (see __init__).

`answers_ready` is the same readiness for a probe from another thread (the registry's HTTP
`/ready`, metrics.py, which Envoy checks so that its checks do not wake gRPC's threads): it also
proves the event loop responsive, as an answer over gRPC would.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.guard import (
    Authenticator,
    ErrorTranslator,
    GuardInterceptor,
    RequestCheck,
    untranslated,
)
from services.common.heap import freeze_startup_heap
from services.common.loop_watchdog import watch_slow_callbacks
from services.common.settings import is_production
from services.common.tracing import server_interceptors, shutdown_tracing

log = logging.getLogger(__name__)

# The health service name probes of readiness ask for (Envoy's health checks, the kubelet's probe).
READINESS_SERVICE = "readiness"
# How long `answers_ready` waits for the event loop (Envoy's check times out after 1 s).
READY_ANSWER_SECONDS = 0.8


def _registered_methods_ignored(service_name: str, method_handlers: object) -> None:
    """The generic handler the generated code registers too serves these methods (see
    ServiceServer)."""


class ServiceServer:
    """A grpc.aio server with health and reflection that stops gracefully on SIGTERM."""

    def __init__(
        self,
        name: str,
        authenticate: Authenticator,
        check_request: RequestCheck | None = None,
        translate_error: ErrorTranslator = untranslated,
    ) -> None:
        self.name = name
        self.server = grpc.aio.server(
            # With tracing on, the instrumentation's span encloses the whole call (tracing.py).
            interceptors=[
                *server_interceptors(),
                GuardInterceptor(authenticate, check_request, translate_error),
            ],
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", 4 * 1024 * 1024),
                # Clients ping every 5 s to notice dead peers on quiet streams (scheduler feed, runs);
                # gRPC's server default answers that with GOAWAY "too_many_pings" and drops them.
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 4000),
                ("grpc.http2.max_ping_strikes", 0),
            ],
        )
        # Generic handlers only. The generated add_*_to_server registers each method twice, as a
        # generic handler and as a "registered method"; for every call grpc.aio's server then waits
        # (asyncio.wait) on one pending future per registered method: O(methods) per call, 38 us
        # more a call with the registry's 88 (health and reflection included). The generic
        # handlers serve every method alike.
        self.server.add_registered_method_handlers = _registered_methods_ignored  # type: ignore[attr-defined]
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self._service_names: list[str] = []
        self._stopping = asyncio.Event()
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        # Readiness conditions that do not hold now (see the module doc).
        self._failing: set[str] = set()
        self._started = False
        self._health_updates: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    @property
    def ready(self) -> bool:
        """Whether every readiness condition holds."""
        return not self._failing

    def answers_ready(self, within: float = READY_ANSWER_SECONDS) -> bool:
        """From any thread: started, not stopping, every readiness condition holds, and the event
        loop runs a callback within `within` seconds."""
        loop = self._loop
        if loop is None or self._stopped or not self.ready:
            return False
        answered = threading.Event()
        try:
            loop.call_soon_threadsafe(answered.set)
        except RuntimeError:  # the loop is closed
            return False
        return answered.wait(within)

    def set_condition(self, name: str, holds: bool) -> None:
        """Records whether readiness condition `name` holds; readiness follows once the server runs
        (called from the event loop's thread)."""
        was_ready = self.ready
        if holds:
            self._failing.discard(name)
        else:
            self._failing.add(name)
        if was_ready == self.ready:
            return
        log.log(
            logging.INFO if self.ready else logging.WARNING,
            "%s %s",
            self.name,
            "ready" if self.ready else "not ready",
            extra={"event": "readiness", "ready": self.ready, "failing": sorted(self._failing)},
        )
        if self._started:
            task = asyncio.get_running_loop().create_task(self._publish_readiness())
            self._health_updates.add(task)
            task.add_done_callback(self._health_updates.discard)

    async def _publish_readiness(self) -> None:
        # The state when this runs, not when it was scheduled: the last update wins.
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self.ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set(READINESS_SERVICE, status)

    def add(self, service_names: Sequence[str]) -> None:
        """Records services the caller registered, for health and reflection."""
        self._service_names.extend(service_names)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._on_stop.append(hook)

    async def start(self, host: str, port: int) -> int:
        freeze_startup_heap()  # before any call can arrive, and before the watchdog watches
        watch_slow_callbacks()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if not is_production(os.environ):
            reflection.enable_server_reflection(
                [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
            )
        bound = self.server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise RuntimeError(f"{self.name}: cannot bind {host}:{port}")
        # Statuses before the first call can arrive: a probe of `readiness` answered NOT_FOUND in the
        # moment between start and set, and Envoy took the restarted registry out again (CI saw a
        # 503 right after the launcher said it was back).
        for service in ["", *self._service_names]:
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._started = True
        self._loop = asyncio.get_running_loop()
        await self._publish_readiness()
        await self.server.start()
        log.info("%s listening", self.name, extra={"address": f"{host}:{bound}"})
        return bound

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)

    async def wait_for_stop_signal(self) -> None:
        await self._stopping.wait()

    async def stop(self, grace: float) -> None:
        """Reports NOT_SERVING first so the gateway drains us, runs the stop hooks, then stops."""
        self._stopped = True
        await self.health.enter_graceful_shutdown()
        for hook in self._on_stop:
            try:
                await hook()
            except Exception:
                log.exception("stop hook failed")
        await self.server.stop(grace)
        await asyncio.to_thread(shutdown_tracing)  # exports the last batch of spans
        log.info("%s stopped", self.name)

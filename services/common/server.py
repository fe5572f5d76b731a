"""gRPC server wiring shared by every service: health, reflection, auth and error mapping, SIGTERM,
and the opt-in loop watchdog.

Health answers anyone (load balancers, Envoy, kubelets probe it). Reflection lists every service and
message, so it answers only a caller the service's authenticator accepts (a user's or the service
token), and is not served at all with ZQ_ENV=production.

Health has two names. The overall one ("") is liveness: SERVING from start until the server stops.
`readiness` (READINESS_SERVICE) is SERVING only while every condition the service reports with
`set_condition` holds (the registry's cluster bus: a replica deaf to LISTEN/NOTIFY serves stale
watches and feeds, so Envoy and the kubelet take it out of rotation until it listens again, without
restarting it). Both go NOT_SERVING when the server stops.

The loop watchdog (`ZQ_SLOW_CALLBACK_MS`, unset = off) times every callback the event loop runs
(one step of a coroutine between two awaits, or a plain callback): one that spends more CPU time on
the loop's thread than the threshold is logged as one JSON line with `"event": "slow_callback"`,
naming the task and coroutine (and where it was suspended next) or the callback, its wall time and
its CPU time. Wall time alone would also count a busy machine (measured: a health check "held" the
loop 100 ms at load 6 on 2 cores), so a callback that was only late is logged as `late_callback`. It does what asyncio's
debug mode does for slow callbacks without that mode's other costs (a stack captured for every
callback, coroutine origin tracking), which tripled the CPU of a gRPC call (measured: 3.2 ms instead
of 1.06 ms per call, client and server in one process); the timing alone costs no measurable CPU.
The integration tier turns it on at 100 ms for every service and fails on any such line: blocking
work that grows with the data belongs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.auth import Principal
from services.common.errors import (
    STATUS_DETAILS_KEY,
    DomainError,
    InvalidArgument,
    Reason,
    Unauthenticated,
    status_details,
)
from services.common.heap import freeze_startup_heap
from services.common.logging import REQUEST_ID, REQUEST_ID_HEADER
from services.common.metrics import RPC_DURATION, STREAM_DURATION, STREAMS_ACTIVE
from services.common.settings import default_environ, env_float, is_production
from services.common.tracing import server_interceptors, shutdown_tracing

log = logging.getLogger(__name__)

# Decides who the caller of `method` is from its metadata; None for methods open to anyone.
Authenticator = Callable[[str, dict[str, str]], Principal | None]
# Refuses a request of `method` no handler may see (raises a DomainError); runs before the handler.
RequestCheck = Callable[[str, Any], None]
# The DomainError a failure that is not one stands for (a service's own knowledge, e.g. the
# registry's of database errors); None leaves it an internal error.
ErrorTranslator = Callable[[Exception], DomainError | None]


def _untranslated(exc: Exception) -> DomainError | None:
    return None


SLOW_CALLBACK_ENV = "ZQ_SLOW_CALLBACK_MS"
# A request id is Envoy's UUID; anything longer from a direct caller is cut, not logged whole.
MAX_REQUEST_ID_LENGTH = 64
SLOW_CALLBACK_EVENT = "slow_callback"
# The health service name probes of readiness ask for (Envoy's health checks, the kubelet's probe).
READINESS_SERVICE = "readiness"

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal:
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("未登录")
    return principal


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


Status = tuple[grpc.StatusCode, str, bytes]


def _status_of(exc: Exception, method: str, translate: ErrorTranslator) -> Status:
    """The status a failed call ends with: a domain error's own (with its reason), or the one
    `translate` finds for it; anything else is logged and answered INTERNAL (never a stack trace)."""
    domain = exc if isinstance(exc, DomainError) else translate(exc)
    if domain is not None:
        return (
            domain.code,
            domain.message,
            status_details(domain.code, domain.message, domain.reason, domain.details, domain.metadata),
        )
    log.error("unhandled error in %s", method, exc_info=exc)
    code, message = grpc.StatusCode.INTERNAL, "内部错误，请查看服务日志"
    return code, message, status_details(code, message, Reason.INTERNAL)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], status: Status) -> None:
    code, message, details = status
    await context.abort(code, message, trailing_metadata=((STATUS_DETAILS_KEY, details),))


def _callback_name(handle: asyncio.Handle) -> str:
    """The task and coroutine a callback advanced (where it waits now, if it still runs), or the
    callback itself."""
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    if not isinstance(owner, asyncio.Task):
        return repr(handle)
    coro: Any = owner.get_coro()
    while getattr(coro, "cr_await", None) is not None and getattr(coro.cr_await, "cr_frame", None):
        coro = coro.cr_await
    frame = getattr(coro, "cr_frame", None)
    where = f" suspended at {frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else ""
    return f"{owner!r}{where}"


_run_handle = asyncio.Handle._run
_slow_callback_seconds = 0.0


def _timed_run(handle: asyncio.Handle) -> None:
    started, started_cpu = time.perf_counter(), time.thread_time()
    _run_handle(handle)
    held = time.perf_counter() - started
    if held < _slow_callback_seconds:
        return
    # Wall time also counts what the machine did meanwhile (other processes, a worker thread holding
    # the GIL); the loop thread's own CPU time does not, so only that is judged: the same code is
    # flagged on a quiet laptop and on a loaded CI machine.
    worked = time.thread_time() - started_cpu
    extra = {
        "callback": _callback_name(handle),
        "duration_ms": round(held * 1000, 1),
        "cpu_ms": round(worked * 1000, 1),
    }
    if worked >= _slow_callback_seconds:
        log.warning("a callback held the event loop", extra={"event": SLOW_CALLBACK_EVENT, **extra})
    else:
        log.info("a callback ran late (the machine was busy)", extra={"event": "late_callback", **extra})


def watch_slow_callbacks(threshold_ms: float | None = None) -> bool:
    """Turns the loop watchdog on (for every event loop of the process) when `threshold_ms`
    (default: the environment's ZQ_SLOW_CALLBACK_MS) is set; returns whether it is on."""
    global _slow_callback_seconds
    if threshold_ms is None:
        threshold_ms = env_float(default_environ(), SLOW_CALLBACK_ENV, 0.0)
    if threshold_ms <= 0:
        return False
    _slow_callback_seconds = threshold_ms / 1000
    asyncio.Handle._run = _timed_run  # type: ignore[method-assign, assignment]  # TimerHandle too
    log.info("loop watchdog on", extra={"slow_callback_ms": threshold_ms})
    return True


def stop_watching_slow_callbacks() -> None:
    asyncio.Handle._run = _run_handle  # type: ignore[method-assign]


class _Undecodable:
    """A request the protobuf parser refused (e.g. nested deeper than its limit of 100): handed to
    the wrapper, which answers INVALID_ARGUMENT, where gRPC would answer INTERNAL with the parser's
    exception in the message."""


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError:
            return _Undecodable()

    return parse


def _refuse_undecodable(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidArgument("请求无法解析（格式错误或嵌套过深）")


@contextlib.asynccontextmanager
async def _streaming(
    method: str,
    context: grpc.aio.ServicerContext[Any, Any],
    authenticate: Authenticator,
    translate: ErrorTranslator,
) -> AsyncIterator[None]:
    """Around a streaming call: its caller authenticated first, its domain errors turned into
    statuses, and the stream counted and timed."""
    started = time.perf_counter()
    code = "OK"
    STREAMS_ACTIVE.labels(method).inc()
    try:
        metadata = _metadata(context)
        REQUEST_ID.set(metadata.get(REQUEST_ID_HEADER, "")[:MAX_REQUEST_ID_LENGTH])
        _principal.set(authenticate(method, metadata))
        yield
    except asyncio.CancelledError:
        code = "CANCELLED"  # the caller went away (or the server stops)
        raise
    except Exception as exc:
        if type(exc).__name__ == "AbortError":
            code = "ABORTED_BY_HANDLER"
            raise
        status = _status_of(exc, method, translate)
        code = status[0].name
        await _abort(context, status)
    finally:
        STREAMS_ACTIVE.labels(method).dec()
        STREAM_DURATION.labels(method, code).observe(time.perf_counter() - started)


def _caller_required(authenticate: Authenticator) -> Authenticator:
    """`authenticate` for reflection, which is never an open method: None (open) counts as no
    caller."""

    def strict(method: str, metadata: dict[str, str]) -> Principal | None:
        principal = authenticate(method, metadata)
        if principal is None:
            raise Unauthenticated("未提供认证令牌")
        return principal

    return strict


class GuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authenticates every call and turns domain errors into gRPC statuses (never a stack trace)."""

    def __init__(
        self,
        authenticate: Authenticator,
        check_request: RequestCheck | None = None,
        translate_error: ErrorTranslator = _untranslated,
    ) -> None:
        self._authenticate = authenticate
        self._check_request = check_request
        self._translate = translate_error
        # The guarded handler of each method, built on its first call: building one per call cost
        # more than many a call's own work.
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith("/grpc.health."):
            return handler
        cached = self._guarded.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        guarded = self._guard(handler, method)
        self._guarded[method] = (handler, guarded)
        return guarded

    def _guard(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        authenticate, check_request, translate = self._authenticate, self._check_request, self._translate
        if method.startswith("/grpc.reflection.") and handler.stream_stream is not None:
            guarded: grpc.RpcMethodHandler[Any, Any] = self._guard_conversation(
                handler, method, _caller_required(authenticate)
            )
            return guarded

        if handler.unary_unary is not None:
            unary: Any = handler.unary_unary

            async def unary_wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                started = time.perf_counter()
                code = "OK"
                try:
                    metadata = _metadata(context)
                    REQUEST_ID.set(metadata.get(REQUEST_ID_HEADER, "")[:MAX_REQUEST_ID_LENGTH])
                    _principal.set(authenticate(method, metadata))
                    _refuse_undecodable(request)
                    if check_request is not None:
                        check_request(method, request)
                    return await unary(request, context)
                except (DomainError, Exception) as exc:
                    if isinstance(exc, asyncio.CancelledError) or type(exc).__name__ == "AbortError":
                        raise
                    status = _status_of(exc, method, translate)
                    code = status[0].name
                    await _abort(context, status)
                finally:
                    RPC_DURATION.labels(method, code).observe(time.perf_counter() - started)

            return grpc.unary_unary_rpc_method_handler(
                unary_wrapper,
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream: Any = handler.unary_stream

            async def stream_wrapper(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                async with _streaming(method, context, authenticate, translate):
                    _refuse_undecodable(request)
                    if check_request is not None:
                        check_request(method, request)
                    async for item in stream(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(
                stream_wrapper,
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            conversation: grpc.RpcMethodHandler[Any, Any] = self._guard_conversation(handler, method)
            return conversation
        return handler

    def _guard_conversation(
        self,
        handler: grpc.RpcMethodHandler[Any, Any],
        method: str,
        authenticate: Authenticator | None = None,
    ) -> Any:
        """A bidirectional stream (its handler an async generator, as tracing's interceptor
        expects): authenticated before the handler starts (by `authenticate`, the server's own by
        default), its domain errors turned into statuses."""
        converse: Any = handler.stream_stream
        authenticate = authenticate or self._authenticate

        async def guarded(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            async with _streaming(method, context, authenticate, self._translate):
                async for item in converse(requests, context):
                    yield item

        return grpc.stream_stream_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class ServiceServer:
    """A grpc.aio server with health and reflection that stops gracefully on SIGTERM."""

    def __init__(
        self,
        name: str,
        authenticate: Authenticator,
        check_request: RequestCheck | None = None,
        translate_error: ErrorTranslator = _untranslated,
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
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self._service_names: list[str] = []
        self._stopping = asyncio.Event()
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        # Readiness conditions that do not hold now (see the module doc).
        self._failing: set[str] = set()
        self._started = False
        self._health_updates: set[asyncio.Task[None]] = set()

    @property
    def ready(self) -> bool:
        """Whether every readiness condition holds."""
        return not self._failing

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
        await self.health.enter_graceful_shutdown()
        for hook in self._on_stop:
            try:
                await hook()
            except Exception:
                log.exception("stop hook failed")
        await self.server.stop(grace)
        await asyncio.to_thread(shutdown_tracing)  # exports the last batch of spans
        log.info("%s stopped", self.name)

"""gRPC server wiring shared by every service: health, reflection, auth and error mapping, SIGTERM."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.auth import Principal
from services.common.errors import DomainError, Unauthenticated
from services.common.metrics import RPC_DURATION

log = logging.getLogger(__name__)

# Decides who the caller of `method` is from its metadata; None for methods open to anyone.
Authenticator = Callable[[str, dict[str, str]], Principal | None]

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal:
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("未登录")
    return principal


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: Exception, method: str) -> None:
    if isinstance(exc, DomainError):
        await context.abort(exc.code, exc.message)
    log.exception("unhandled error in %s", method)
    await context.abort(grpc.StatusCode.INTERNAL, "内部错误，请查看服务日志")


class GuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authenticates every call and turns domain errors into gRPC statuses (never a stack trace)."""

    def __init__(self, authenticate: Authenticator) -> None:
        self._authenticate = authenticate

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return handler
        authenticate = self._authenticate

        if handler.unary_unary is not None:
            unary: Any = handler.unary_unary

            async def unary_wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                started = time.perf_counter()
                code = "OK"
                try:
                    _principal.set(authenticate(method, _metadata(context)))
                    return await unary(request, context)
                except (DomainError, Exception) as exc:
                    if isinstance(exc, asyncio.CancelledError) or type(exc).__name__ == "AbortError":
                        raise
                    code = exc.code.name if isinstance(exc, DomainError) else "INTERNAL"
                    await _abort(context, exc, method)
                finally:
                    RPC_DURATION.labels(method, code).observe(time.perf_counter() - started)

            return grpc.unary_unary_rpc_method_handler(
                unary_wrapper,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream: Any = handler.unary_stream

            async def stream_wrapper(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                try:
                    _principal.set(authenticate(method, _metadata(context)))
                    async for item in stream(request, context):
                        yield item
                except (DomainError, Exception) as exc:
                    if isinstance(exc, asyncio.CancelledError) or type(exc).__name__ == "AbortError":
                        raise
                    await _abort(context, exc, method)

            return grpc.unary_stream_rpc_method_handler(
                stream_wrapper,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


class ServiceServer:
    """A grpc.aio server with health and reflection that stops gracefully on SIGTERM."""

    def __init__(self, name: str, authenticate: Authenticator) -> None:
        self.name = name
        self.server = grpc.aio.server(
            interceptors=[GuardInterceptor(authenticate)],
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

    def add(self, service_names: Sequence[str]) -> None:
        """Records services the caller registered, for health and reflection."""
        self._service_names.extend(service_names)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._on_stop.append(hook)

    async def start(self, host: str, port: int) -> int:
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        bound = self.server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise RuntimeError(f"{self.name}: cannot bind {host}:{port}")
        await self.server.start()
        for service in ["", *self._service_names]:
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
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
        log.info("%s stopped", self.name)

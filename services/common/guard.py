"""The guard every service's gRPC server puts around each call (server.py installs it): the caller
authenticated by the service's `Authenticator` before the handler runs (`current_principal` names
it to the handler), the request id Envoy sent bound to the call's log lines, a request the protobuf
parser refused answered INVALID_ARGUMENT, and a failure turned into a status with its reason: a
DomainError as itself, one the service's `ErrorTranslator` knows the meaning of as the DomainError
it stands for, anything else as INTERNAL (logged, never a stack trace to the caller). Unary,
server-streaming and bidirectional calls alike; each is counted and timed for Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from services.common.auth import Principal
from services.common.errors import (
    STATUS_DETAILS_KEY,
    DomainError,
    InvalidArgument,
    Reason,
    Unauthenticated,
    status_details,
)
from services.common.logging import REQUEST_ID, REQUEST_ID_HEADER
from services.common.metrics import RPC_DURATION, STREAM_DURATION, STREAMS_ACTIVE

log = logging.getLogger(__name__)

# Decides who the caller of `method` is from its metadata; None for methods open to anyone.
Authenticator = Callable[[str, dict[str, str]], Principal | None]
# Refuses a request of `method` no handler may see (raises a DomainError); runs before the handler.
RequestCheck = Callable[[str, Any], None]
# The DomainError a failure that is not one stands for (a service's own knowledge, e.g. the
# registry's of database errors); None leaves it an internal error.
ErrorTranslator = Callable[[Exception], DomainError | None]


def untranslated(exc: Exception) -> DomainError | None:
    """No failure has a meaning of the service's own (the default)."""
    return None


# A request id is Envoy's UUID; anything longer from a direct caller is cut, not logged whole.
MAX_REQUEST_ID_LENGTH = 64

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal:
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("未登录")
    return principal


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


Status = tuple[grpc.StatusCode, str, bytes]


def domain_error_of(exc: Exception, method: str, translate: ErrorTranslator) -> DomainError:
    """What a failure of `method` tells its caller: a domain error as itself, or the one `translate`
    finds for it; anything else is logged and is INTERNAL (never a stack trace). Also for a part of
    a call that fails alone (a batch of a stream)."""
    domain = exc if isinstance(exc, DomainError) else translate(exc)
    if domain is None:
        log.error("unhandled error in %s", method, exc_info=exc)
        domain = DomainError("内部错误，请查看服务日志", Reason.INTERNAL)
    return domain


def _status_of(exc: Exception, method: str, translate: ErrorTranslator) -> Status:
    """The status a failed call ends with (`domain_error_of`), with its reason and details."""
    domain = domain_error_of(exc, method, translate)
    return (
        domain.code,
        domain.message,
        status_details(domain.code, domain.message, domain.reason, domain.details, domain.metadata),
    )


async def _abort(context: grpc.aio.ServicerContext[Any, Any], status: Status) -> None:
    code, message, details = status
    await context.abort(code, message, trailing_metadata=((STATUS_DETAILS_KEY, details),))


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
        translate_error: ErrorTranslator = untranslated,
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

"""What a caller sees when a handler fails: a domain error as its own status and reason; a failure
the service knows the meaning of (its `translate_error`, e.g. the registry's of database
collisions) as the domain error it stands for; anything else as INTERNAL, never a stack trace.
Unary and streaming calls alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from services.common.auth import SERVICE_PRINCIPAL, Principal
from services.common.errors import Conflict, DomainError, Reason, reason_of
from services.common.server import ServiceServer


class Collision(Exception):
    """Stands for a failure only the service knows the meaning of."""


def anyone(method: str, metadata: dict[str, str]) -> Principal:
    return SERVICE_PRINCIPAL


def translate(exc: Exception) -> DomainError | None:
    return Conflict("collided", reason=Reason.CONCURRENT_CHANGE) if isinstance(exc, Collision) else None


async def fail(request: bytes, context: Any) -> bytes:
    raise Collision() if request == b"collide" else RuntimeError("a bug")


async def fail_streaming(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"first"
    raise Collision() if request == b"collide" else RuntimeError("a bug")


async def call(method: str, request: bytes) -> grpc.aio.AioRpcError:
    server = ServiceServer("test", anyone, translate_error=translate)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(fail),
        "Stream": grpc.unary_stream_rpc_method_handler(fail_streaming),
    }
    server.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Fail", handlers)])
    port = await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                if method == "Unary":
                    await channel.unary_unary("/test.Fail/Unary", None, None)(request)
                else:
                    async for _ in channel.unary_stream("/test.Fail/Stream", None, None)(request):
                        pass
    finally:
        await server.stop(0)
    return failed.value


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["Unary", "Stream"])
async def test_a_failure_the_service_translates_reaches_the_caller_as_that_domain_error(method: str) -> None:
    error = await call(method, b"collide")
    assert (error.code(), reason_of(error), error.details()) == (
        grpc.StatusCode.ABORTED,
        "CONCURRENT_CHANGE",
        "collided",
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["Unary", "Stream"])
async def test_a_failure_nothing_translates_is_an_internal_error_without_its_trace(method: str) -> None:
    error = await call(method, b"bug")
    assert (error.code(), reason_of(error)) == (grpc.StatusCode.INTERNAL, "INTERNAL")
    assert "a bug" not in (error.details() or "")

"""The request id Envoy puts on every request (`x-request-id`) reaches the service handling it: the
server binds it to the call, and every JSON log line written meanwhile carries it."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import grpc
import pytest

from services.common.auth import SERVICE_PRINCIPAL, Principal
from services.common.logging import REQUEST_ID, JsonFormatter, RequestIdFilter
from services.common.server import ServiceServer

log = logging.getLogger("tests.request_id")


def anyone(method: str, metadata: dict[str, str]) -> Principal:
    return SERVICE_PRINCIPAL


def json_lines() -> tuple[logging.Handler, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("test"))
    handler.addFilter(RequestIdFilter())
    return handler, out


@pytest.mark.asyncio
async def test_a_call_logs_with_the_request_id_it_came_with() -> None:
    async def echo(request: bytes, context: Any) -> bytes:
        log.warning("handling")
        return REQUEST_ID.get().encode()

    server = ServiceServer("test", anyone)
    server.server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Echo", {"Id": grpc.unary_unary_rpc_method_handler(echo)})]
    )
    port = await server.start("127.0.0.1", 0)
    handler, out = json_lines()
    log.addHandler(handler)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/test.Echo/Id", None, None)
            tagged = await call(b"", metadata=(("x-request-id", "4f1c0d2e-req"),))
            untagged = await call(b"")
    finally:
        log.removeHandler(handler)
        await server.stop(0)
    assert (tagged, untagged) == (b"4f1c0d2e-req", b"")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line.get("request_id") for line in lines] == ["4f1c0d2e-req", None]
    assert REQUEST_ID.get() == ""  # bound to the call, not to the test


def test_a_line_outside_a_request_has_no_request_id() -> None:
    handler, out = json_lines()
    log.addHandler(handler)
    try:
        log.warning("idle")
    finally:
        log.removeHandler(handler)
    assert "request_id" not in json.loads(out.getvalue())

"""Readiness and liveness are two health names of every service: the overall one ("") says the
process serves, `readiness` says it should get requests, and follows the conditions the service
reports (the registry's cluster bus). Probed over real gRPC, as Envoy and the kubelet do."""

from __future__ import annotations

import asyncio
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.auth import SERVICE_PRINCIPAL, Principal
from services.common.server import READINESS_SERVICE, ServiceServer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def anyone(method: str, metadata: dict[str, str]) -> Principal:
    return SERVICE_PRINCIPAL


async def test_readiness_follows_a_condition_while_liveness_stays_serving() -> None:
    server = ServiceServer("test", anyone)
    server.set_condition("cluster_bus", False)  # before start: the server starts not ready
    port = await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def status(service: str) -> int:
                response = await health.Check(health_pb2.HealthCheckRequest(service=service))
                return int(response.status)

            assert (await status(""), await status(READINESS_SERVICE)) == (SERVING, NOT_SERVING)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=READINESS_SERVICE))
            assert (await watch.read()).status == NOT_SERVING
            server.set_condition("cluster_bus", True)
            assert (await watch.read()).status == SERVING
            server.set_condition("cluster_bus", False)
            assert (await watch.read()).status == NOT_SERVING
            assert await status("") == SERVING
            server.set_condition("cluster_bus", True)
            assert (await watch.read()).status == SERVING
            watch.cancel()
    finally:
        await server.stop(0)


async def test_two_conditions_must_both_hold_for_readiness() -> None:
    server = ServiceServer("test", anyone)
    assert server.ready
    server.set_condition("a", False)
    server.set_condition("b", False)
    server.set_condition("a", True)
    assert not server.ready
    server.set_condition("b", True)
    assert server.ready


async def test_readiness_over_http_follows_the_conditions_the_event_loop_and_the_stop() -> None:
    """`answers_ready` is what the registry's HTTP /ready says (Envoy's check): it is asked from
    the metrics thread, so it must also see a stuck event loop, as a gRPC check would."""
    server = ServiceServer("test", anyone)
    assert not await asyncio.to_thread(server.answers_ready)  # not started
    await server.start("127.0.0.1", 0)
    try:
        assert await asyncio.to_thread(server.answers_ready)
        server.set_condition("cluster_bus", False)
        assert not await asyncio.to_thread(server.answers_ready)
        server.set_condition("cluster_bus", True)
        # The loop blocked (here: until the probe has answered): no answer within the wait.
        answers: list[bool] = []
        answered = threading.Event()

        def probe() -> None:
            answers.append(server.answers_ready(0.2))
            answered.set()

        threading.Thread(target=probe).start()
        assert answered.wait(10)  # blocks the event loop
        assert answers == [False]
        assert await asyncio.to_thread(server.answers_ready)
    finally:
        await server.stop(0)
    assert not await asyncio.to_thread(server.answers_ready)

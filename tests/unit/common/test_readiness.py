"""Readiness and liveness are two health names of every service: the overall one ("") says the
process serves, `readiness` says it should get requests, and follows the conditions the service
reports (the registry's cluster bus). Probed over real gRPC, as Envoy and the kubelet do."""

from __future__ import annotations

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

"""The registry's internal listener (ZQ_REGISTRY_INTERNAL_PORT) over a real in-process registry: the
scheduler's calls have a server of their own, open to the service token only and to nothing public,
and it keeps serving while the public one is gone; a leadership renewal does not wait for busy
worker threads."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from services.common.errors import Reason, reason_of
from services.registry.server import RegistryServer, create_server
from services.registry.settings import RegistrySettings
from stack.ports import free_ports
from zquant.scheduler.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    task_service_pb2,
    task_service_pb2_grpc,
)
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import registry_internal_service_pb2_grpc as internal_pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOKEN = "test-service-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


@dataclass
class Env:
    registry: RegistryServer
    channel: grpc.aio.Channel

    @property
    def internal(self) -> internal_pb2_grpc.RegistryInternalServiceStub:
        return internal_pb2_grpc.RegistryInternalServiceStub(self.channel)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("registry-internal")
    (internal_port,) = free_ports(1)
    settings = RegistrySettings.from_env(
        {
            "ZQ_SERVICE_TOKEN": TOKEN,
            "ZQ_DATA_DIR": str(tmp),
            "ZQ_REGISTRY_PORT": "0",
            "ZQ_REGISTRY_INTERNAL_PORT": str(internal_port),
        }
    )
    registry = await create_server(settings)
    assert registry.internal_port == internal_port != registry.port
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{internal_port}")
    yield Env(registry, channel)
    await channel.close(grace=None)
    await registry.stop(0)


async def test_the_internal_listener_serves_what_the_scheduler_calls_with_the_service_token(env: Env) -> None:
    active = await env.internal.ListActiveExecutions(
        internal_pb2.ListActiveExecutionsRequest(), metadata=AUTH
    )
    assert list(active.executions) == []
    tasks = task_service_pb2_grpc.TaskServiceStub(env.channel)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await tasks.GetTask(task_service_pb2.GetTaskRequest(task_id=424242), metadata=AUTH)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_internal_listener_refuses_anything_but_the_service_token(env: Env) -> None:
    for metadata in ((), (("authorization", "Bearer not-the-token"),)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await env.internal.ListActiveExecutions(
                internal_pb2.ListActiveExecutionsRequest(), metadata=metadata
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason_of(refused.value) == Reason.SERVICE_TOKEN_REQUIRED


async def test_the_internal_listener_offers_no_public_service(env: Env) -> None:
    auth = auth_service_pb2_grpc.AuthServiceStub(env.channel)
    with pytest.raises(grpc.aio.AioRpcError) as absent:
        await auth.Login(auth_service_pb2.LoginRequest(username="admin", password="x" * 12), metadata=AUTH)
    assert absent.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_leadership_renewal_is_answered_while_every_shared_worker_thread_is_busy(env: Env) -> None:
    # A burst's run batches fill the registry's worker threads (this loop's default executor);
    # the renewal has a thread of its own, so it does not queue behind them past its deadline.
    loop = asyncio.get_running_loop()
    blockers = [
        loop.run_in_executor(None, time.sleep, 2.0) for _ in range(min(32, (os.cpu_count() or 1) + 4))
    ]
    try:
        renewed = await env.internal.AcquireLeadership(
            internal_pb2.AcquireLeadershipRequest(candidate="busy-test", ttl_seconds=3),
            metadata=AUTH,
            timeout=1.0,
        )
        assert renewed.leader
    finally:
        await asyncio.gather(*blockers)
        await env.internal.ReleaseLeadership(
            internal_pb2.ReleaseLeadershipRequest(candidate="busy-test"), metadata=AUTH
        )


async def test_the_internal_listener_keeps_serving_the_scheduler_while_the_public_port_is_closed(
    env: Env,
) -> None:
    await env.registry.server.server.stop(None)  # last test of the module: the public side is gone
    active = await env.internal.ListActiveExecutions(
        internal_pb2.ListActiveExecutionsRequest(), metadata=AUTH
    )
    assert list(active.executions) == []

"""Scheduler wiring: the engine plus a gRPC server for health and reflection."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.common.auth import SERVICE_PRINCIPAL, Principal, bearer_token, is_service_token
from services.common.errors import Unauthenticated
from services.common.server import Authenticator, ServiceServer
from services.scheduler.clients import ExecutorPool, RegistryClient
from services.scheduler.engine import Engine
from services.scheduler.settings import SchedulerSettings


def service_only(service_token: str) -> Authenticator:
    def authenticate(method: str, metadata: dict[str, str]) -> Principal | None:
        if is_service_token(bearer_token(metadata), service_token):
            return SERVICE_PRINCIPAL
        raise Unauthenticated("只接受服务令牌")

    return authenticate


@dataclass
class SchedulerServer:
    engine: Engine
    server: ServiceServer
    port: int
    registry: RegistryClient
    executors: ExecutorPool
    engine_task: asyncio.Task[None]

    async def stop(self, grace: float = 5.0) -> None:
        self.engine_task.cancel()
        await self.engine.stop()
        await self.server.stop(grace)
        await self.registry.close()
        await self.executors.close()


async def create_server(settings: SchedulerSettings) -> SchedulerServer:
    registry = RegistryClient(settings.registry_address, settings.service_token)
    executors = ExecutorPool(settings.executor_addresses, settings.service_token)
    engine = Engine(settings, registry, executors)
    server = ServiceServer("scheduler", service_only(settings.service_token))
    port = await server.start(settings.host, settings.port)
    engine_task = asyncio.create_task(engine.run(), name="scheduler-engine")
    return SchedulerServer(engine, server, port, registry, executors, engine_task)

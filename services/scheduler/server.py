"""Scheduler wiring: leader election (which runs the engine) plus a gRPC health server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.common.auth import SERVICE_PRINCIPAL, Principal, bearer_token, is_service_token
from services.common.errors import Reason, Unauthenticated
from services.common.guard import Authenticator
from services.common.server import ServiceServer
from services.scheduler.clients import ExecutorPool, RegistryClient
from services.scheduler.engine import Engine
from services.scheduler.leader import LeaderElection
from services.scheduler.settings import SchedulerSettings


def service_only(service_token: str) -> Authenticator:
    def authenticate(method: str, metadata: dict[str, str]) -> Principal | None:
        if is_service_token(bearer_token(metadata), service_token):
            return SERVICE_PRINCIPAL
        raise Unauthenticated("只接受服务令牌", reason=Reason.SERVICE_TOKEN_REQUIRED)

    return authenticate


@dataclass
class SchedulerServer:
    election: LeaderElection
    server: ServiceServer
    port: int
    registry: RegistryClient
    executors: ExecutorPool
    election_task: asyncio.Task[None]

    @property
    def engine(self) -> Engine | None:
        return self.election.engine

    async def stop(self, grace: float = 5.0) -> None:
        await self.election.stop()
        self.election_task.cancel()
        await self.server.stop(grace)
        await self.registry.close()
        await self.executors.close()


async def create_server(settings: SchedulerSettings) -> SchedulerServer:
    registry = RegistryClient(settings.registry_target, settings.service_token)
    executors = ExecutorPool(settings.executor_addresses, settings.service_token)
    election = LeaderElection(
        registry,
        lambda: Engine(settings, registry, executors),
        ttl_seconds=settings.leader_ttl_seconds,
        renew_seconds=settings.leader_renew_seconds,
        executor_loads=executors.loads,
        runs_out=lambda: executors.runs_out,
    )
    # A standby is healthy too: it is ready to take over.
    server = ServiceServer("scheduler", service_only(settings.service_token))
    port = await server.start(settings.host, settings.port)
    election_task = asyncio.create_task(election.run(), name="leader-election")
    return SchedulerServer(election, server, port, registry, executors, election_task)

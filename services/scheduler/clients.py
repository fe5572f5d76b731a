"""gRPC clients of the scheduler: the registry and a pool of executors."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import grpc

from services.common.auth import service_metadata
from zquant.scheduler.v1 import (
    execution_service_pb2_grpc,
    executor_service_pb2_grpc,
    registry_internal_service_pb2_grpc,
    task_service_pb2_grpc,
)

# Keepalives notice a dead peer (executor killed, network cut) on an idle stream.
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


class RegistryClient:
    def __init__(self, address: str, service_token: str) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.internal = registry_internal_service_pb2_grpc.RegistryInternalServiceStub(self.channel)
        self.executions = execution_service_pb2_grpc.ExecutionServiceStub(self.channel)
        self.tasks = task_service_pb2_grpc.TaskServiceStub(self.channel)
        self.metadata = service_metadata(service_token)

    async def close(self) -> None:
        await self.channel.close(None)


@dataclass
class ExecutorHandle:
    address: str
    channel: grpc.aio.Channel
    stub: executor_service_pb2_grpc.ExecutorServiceStub
    # Busy or unreachable executors are skipped until this monotonic time.
    cooldown_until: float = field(default=0.0)


class ExecutorPool:
    """Round-robin over executors, skipping ones that recently refused or were unreachable."""

    def __init__(self, addresses: tuple[str, ...], service_token: str) -> None:
        self.metadata = service_metadata(service_token)
        self._handles = [
            ExecutorHandle(
                address=address,
                channel=(channel := grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)),
                stub=executor_service_pb2_grpc.ExecutorServiceStub(channel),
            )
            for address in addresses
        ]
        self._next = itertools.cycle(range(len(self._handles))) if self._handles else None

    def pick(self) -> ExecutorHandle | None:
        if self._next is None:
            return None
        now = time.monotonic()
        for _ in range(len(self._handles)):
            handle = self._handles[next(self._next)]
            if handle.cooldown_until <= now:
                return handle
        return None

    def get(self, address: str) -> ExecutorHandle | None:
        return next((h for h in self._handles if h.address == address), None)

    @staticmethod
    def cool_down(handle: ExecutorHandle, seconds: float) -> None:
        handle.cooldown_until = time.monotonic() + seconds

    async def close(self) -> None:
        for handle in self._handles:
            await handle.channel.close(None)

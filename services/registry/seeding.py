"""Creating tasks from outside the registry, through its API: the init script and the seed benchmark.

The registry is the only writer of task rows: it validates them, and it tells the schedulers and the
other replicas of each change (its servicers publish, the cluster bus carries). A tool that wants
tasks therefore asks a registry for them:

- `connect(settings)` yields a `TaskWriter` on the registry these settings describe
  (`ZQ_BIND_HOST`:`ZQ_REGISTRY_PORT`) when one answers there, authenticated with `ZQ_SERVICE_TOKEN`;
  otherwise it starts a registry in this process, on a free port, with the same settings (the
  server wiring of `server.py`), and stops it when the block ends. `make up` runs the init script
  before the stack starts, so that is the usual case.
- `TaskWriter.import_tasks` sends a document's items (`ImportTasks`, the bulk path: Core inserts,
  one transaction per document of up to IMPORT_DOCUMENT items; workflows name their sub-tasks);
  `create` sends tasks in batches of up to 1,000 (`BatchCreateTasks`: one transaction and one event
  per task each); `names` finds existing tasks by name prefix, page by page.

Tasks are given as the JSON fields of CreateTaskRequest (`{"name": ..., "config": {...}}`), import
items as the document's (store/transfer.py).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.structs import dict_to_struct
from services.registry.server import create_server
from services.registry.settings import RegistrySettings
from services.registry.store.task_batches import MAX_BATCH
from zquant.scheduler.v1 import (
    task_service_pb2,
    task_service_pb2_grpc,
    transfer_service_pb2,
    transfer_service_pb2_grpc,
)

PAGE = 1000
# Items per ImportTasks call: all or nothing each, well inside gRPC's 4 MiB message (an item of the
# seed benchmark is ~200 bytes as a Struct).
IMPORT_DOCUMENT = 5000
# How long a running registry has to answer its health check before one is started here.
PROBE_SECONDS = 1.0
_CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]


def create_request(fields: Mapping[str, Any]) -> task_service_pb2.CreateTaskRequest:
    return json_format.ParseDict(dict(fields), task_service_pb2.CreateTaskRequest())


class TaskWriter:
    """TaskService calls as the service principal (it passes every role check)."""

    def __init__(
        self, channel: grpc.aio.Channel, service_token: str, address: str, started_here: bool
    ) -> None:
        self.address = address
        # Whether the registry was started in this process for the writer (none answered).
        self.started_here = started_here
        self._stub = task_service_pb2_grpc.TaskServiceStub(channel)
        self._transfer = transfer_service_pb2_grpc.TransferServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {service_token}"),)

    async def import_tasks(self, items: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, int]]:
        """Imports the items, IMPORT_DOCUMENT per call (each call all or nothing; a workflow must
        come in the call of its sub-tasks or after them); (name, action, task id) in order."""
        done: list[tuple[str, str, int]] = []
        for start in range(0, len(items), IMPORT_DOCUMENT):
            request = transfer_service_pb2.ImportTasksRequest(
                tasks=[dict_to_struct(dict(item)) for item in items[start : start + IMPORT_DOCUMENT]]
            )
            response = await self._transfer.ImportTasks(request, metadata=self._metadata, timeout=300)
            done += [(item.name, item.action, item.task_id) for item in response.tasks]
        return done

    async def create(self, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """Creates the tasks in batches of up to 1,000 (each batch all or nothing); their ids in order."""
        ids: list[int] = []
        for start in range(0, len(tasks), MAX_BATCH):
            ids += await self.create_batch(tasks[start : start + MAX_BATCH])
        return ids

    async def create_batch(self, tasks: Iterable[Mapping[str, Any]]) -> list[int]:
        request = task_service_pb2.BatchCreateTasksRequest(tasks=[create_request(t) for t in tasks])
        response = await self._stub.BatchCreateTasks(request, metadata=self._metadata, timeout=120)
        return [task.id for task in response.tasks]

    async def names(self, prefix: str) -> dict[str, tuple[int, str]]:
        """(id, task type) by name of every task whose name starts with `prefix`, workflow steps included."""
        found: dict[str, tuple[int, str]] = {}
        skip = 0
        while True:
            page = await self._stub.ListTasks(
                task_service_pb2.ListTasksRequest(
                    name=prefix, include_children=True, limit=PAGE, skip=skip, order="asc"
                ),
                metadata=self._metadata,
                timeout=60,
            )
            found.update({t.name: (t.id, t.task_type) for t in page.tasks if t.name.startswith(prefix)})
            skip += len(page.tasks)
            if len(page.tasks) < PAGE:
                return found

    async def delete(self, task_id: int) -> None:
        await self._stub.DeleteTask(
            task_service_pb2.DeleteTaskRequest(task_id=task_id, force=True),
            metadata=self._metadata,
            timeout=60,
        )


def registry_address(settings: RegistrySettings) -> str:
    host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
    return f"{host}:{settings.port}"


async def answers(address: str) -> bool:
    """Whether a gRPC server with health checking serves at `address`."""
    async with grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=PROBE_SECONDS
            )
        except grpc.aio.AioRpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


@asynccontextmanager
async def connect(settings: RegistrySettings) -> AsyncIterator[TaskWriter]:
    """A writer on the running registry of these settings, or on one started here for the block."""
    address = registry_address(settings)
    if await answers(address):
        async with grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
            yield TaskWriter(channel, settings.service_token, address, started_here=False)
        return
    # Its own token: nothing but this process talks to it.
    local = dataclasses.replace(settings, host="127.0.0.1", port=0, service_token=secrets.token_urlsafe(32))
    registry = await create_server(local)
    address = f"127.0.0.1:{registry.port}"
    try:
        async with grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
            yield TaskWriter(channel, local.service_token, address, started_here=True)
    finally:
        await registry.stop()

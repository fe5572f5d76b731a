"""RecordStream, the ledger's way of sending batches, against a real in-process registry (with and
without its internal listener): batches on one stream each get the answer their RecordRuns call
would have had, a batch that fails as a whole is answered with its code and reason while the stream
goes on, a caller without the service token is refused, and a registry that stops ends the stream
OK at once (not after its grace, as a call cut off would be), after which the next batch fails as
unavailable and one to its successor opens a new stream. And, with a scripted registry that stops
answering, a batch unanswered in time fails with DEADLINE_EXCEEDED and takes its stream with it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from services.common.errors import Reason, reason_of
from services.registry.server import RegistryServer, create_server
from services.registry.settings import RegistrySettings
from services.registry.store import tasks as task_store
from services.scheduler.clients import RegistryClient
from services.scheduler.record_stream import RecordStream
from stack.ports import free_ports
from tests.unit.scheduler.run_stream import StreamOfCalls, stream_of_calls
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2

pytestmark = pytest.mark.asyncio(loop_scope="function")

TOKEN = "test-service-token"
OK = grpc.StatusCode.OK.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]


@dataclass
class Env:
    registry: RegistryServer
    address: str
    task_id: int


async def start_registry(tmp: Path, internal: bool) -> tuple[RegistryServer, str]:
    public, internal_port = free_ports(2)
    settings = RegistrySettings.from_env(
        {
            "ZQ_SERVICE_TOKEN": TOKEN,
            "ZQ_DATA_DIR": str(tmp),
            "ZQ_REGISTRY_PORT": str(public),
            "ZQ_REGISTRY_INTERNAL_PORT": str(internal_port) if internal else "",
        }
    )
    registry = await create_server(settings)
    return registry, f"127.0.0.1:{internal_port if internal else public}"


@pytest_asyncio.fixture(loop_scope="function", params=[True, False], ids=["internal-listener", "one-port"])
async def env(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    registry, address = await start_registry(tmp_path, internal=request.param)
    fields = {"name": "streamed", "task_type": "manual_task", "config": {"command": "true"}}
    with registry.app.db.session() as session:
        task_id = task_store.create_task(session, fields, "admin", "UTC", datetime.now(UTC)).id
    yield Env(registry, address, task_id)
    await registry.stop(0)


def create(task_id: int) -> pb2.RunUpdate:
    request = pb2.CreateExecutionRequest(task_id=task_id, trigger="schedule", dedup_key=secrets.token_hex(8))
    return pb2.RunUpdate(create=request)


async def test_batches_on_one_stream_each_get_the_answers_of_their_call(env: Env) -> None:
    client = RegistryClient(env.address, TOKEN)
    stream = RecordStream(client, answer_within=30)
    try:
        batches = await asyncio.gather(
            stream.record([create(env.task_id), create(0)]),
            stream.record([create(env.task_id)]),
            stream.record([create(env.task_id), create(env.task_id), create(env.task_id)]),
        )
    finally:
        await stream.close()
        await client.close()
    assert [[result.code for result in batch] for batch in batches] == [[OK, NOT_FOUND], [OK], [OK, OK, OK]]
    assert batches[0][1].reason == Reason.TASK_NOT_FOUND
    ids = [result.create.execution.id for batch in batches for result in batch if result.code == OK]
    assert len(set(ids)) == 5 and all(result.create.created for result in batches[2])


async def test_a_batch_failing_as_a_whole_gets_its_code_and_reason_and_the_stream_goes_on(env: Env) -> None:
    client = RegistryClient(env.address, TOKEN)
    stream = RecordStream(client, answer_within=30)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream.record([create(env.task_id)] * 1001)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason_of(refused.value) == Reason.RUN_UPDATE_INVALID
        (after,) = await stream.record([create(env.task_id)])
        assert after.code == OK
    finally:
        await stream.close()
        await client.close()


async def test_a_stream_without_the_service_token_is_refused(env: Env) -> None:
    client = RegistryClient(env.address, "not-the-token")
    stream = RecordStream(client, answer_within=30)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream.record([create(env.task_id)])
    finally:
        await stream.close()
        await client.close()
    assert refused.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    assert reason_of(refused.value) in (Reason.LOGIN_REQUIRED, Reason.SERVICE_TOKEN_REQUIRED)


async def test_a_stopping_registry_ends_the_stream_ok_and_its_successor_gets_a_new_one(
    tmp_path: Path,
) -> None:
    registry, address = await start_registry(tmp_path, internal=True)
    fields = {"name": "streamed", "task_type": "manual_task", "config": {"command": "true"}}
    with registry.app.db.session() as session:
        task_id = task_store.create_task(session, fields, "admin", "UTC", datetime.now(UTC)).id
    client = RegistryClient(address, TOKEN)
    # The registry's raw stream, to see how it ends; and the scheduler's, to see what follows.
    raw = client.internal.RecordRunStream(metadata=client.metadata)
    await raw.write(pb2.RecordRunStreamRequest(batch_id=7, updates=[create(task_id)]))
    answered = await raw.read()
    assert answered.batch_id == 7 and answered.results[0].code == OK
    stream = RecordStream(client, answer_within=30)
    try:
        assert (await stream.record([create(task_id)]))[0].code == OK
        # A grace this long would be waited out by a stream the registry did not end itself.
        await registry.stop(grace=60)
        assert await raw.code() == grpc.StatusCode.OK
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await stream.record([create(task_id)])
        assert gone.value.code() == grpc.StatusCode.UNAVAILABLE and not reason_of(gone.value)
        # Its successor on the same address and database.
        settings = RegistrySettings.from_env(
            {
                "ZQ_SERVICE_TOKEN": TOKEN,
                "ZQ_DATA_DIR": str(tmp_path),
                "ZQ_REGISTRY_PORT": str(registry.port),
                "ZQ_REGISTRY_INTERNAL_PORT": address.rsplit(":", 1)[1],
            }
        )
        successor = await create_server(settings)
        try:
            (result,) = await recorded_once_up(stream, [create(task_id)])
            assert result.code == OK
        finally:
            await successor.stop(0)
    finally:
        await stream.close()
        await client.close()


async def recorded_once_up(stream: RecordStream, updates: list[pb2.RunUpdate]) -> list[pb2.RunUpdateResult]:
    """The batch recorded, once the channel has reconnected (it backs off up to 1 s between tries)."""
    for _ in range(50):
        try:
            return await stream.record(updates)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            await asyncio.sleep(0.1)
    raise AssertionError("the successor never answered")


class SilentRegistry:
    """A registry whose first stream takes batches and never answers them (stuck inside); its
    later streams answer."""

    def __init__(self) -> None:
        self.streams = 0
        self.metadata: list[tuple[str, str]] = []
        self.internal = self

    async def RecordRuns(self, request: pb2.RecordRunsRequest, **call: Any) -> pb2.RecordRunsResponse:
        if self.streams == 1:
            await asyncio.Event().wait()
        return pb2.RecordRunsResponse(results=[pb2.RunUpdateResult() for _ in request.updates])

    def RecordRunStream(self, **call: Any) -> StreamOfCalls:
        self.streams += 1
        return stream_of_calls(self)


async def test_a_batch_unanswered_in_time_fails_and_the_next_one_goes_on_a_new_stream() -> None:
    registry = SilentRegistry()
    stream = RecordStream(registry, answer_within=0.2)  # type: ignore[arg-type]  # a structural fake
    try:
        with pytest.raises(grpc.aio.AioRpcError) as silent:
            await stream.record([create(1)])
        assert silent.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and not reason_of(silent.value)
        assert len(await stream.record([create(1)])) == 1
        assert registry.streams == 2
    finally:
        await stream.close()

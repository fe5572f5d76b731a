"""The executor's metrics while it works and while it drains: busy, free and draining slots, and the
Run stream timed and counted as open while it runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from services.common.auth import service_metadata
from services.common.errors import Reason, reason_of
from services.common.structs import dict_to_struct
from services.executor.jobs.plugin import PluginRegistry
from services.executor.server import create_server, export_slot_metrics
from services.executor.settings import ExecutorSettings
from zquant.scheduler.v1 import executor_service_pb2, executor_service_pb2_grpc, task_pb2

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOKEN = "test-service-token"
RUN_METHOD = "/zquant.scheduler.v1.ExecutorService/Run"
SLOTS = 3


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def slots() -> dict[str, float]:
    return {state: sample("zq_executor_slots", state=state) for state in ("busy", "free", "draining")}


def example_run(execution_id: int, seconds: float) -> executor_service_pb2.RunRequest:
    config = dict_to_struct({"duration_seconds": seconds, "steps": 2})
    task = task_pb2.Task(id=7, name="t", task_type="example_task", config=config)
    return executor_service_pb2.RunRequest(execution_id=execution_id, attempt=1, task=task)


async def test_a_draining_executor_reports_no_free_slots_and_lets_its_run_finish(tmp_path: Path) -> None:
    settings = ExecutorSettings(
        service_token=TOKEN, port=0, max_concurrency=SLOTS, drain_seconds=60, work_dir=tmp_path
    )
    server, port, runner = await create_server(settings, plugins=PluginRegistry())
    export_slot_metrics(runner, SLOTS)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = executor_service_pb2_grpc.ExecutorServiceStub(channel)
    metadata = service_metadata(TOKEN)
    timed = sample("zq_stream_duration_seconds_count", method=RUN_METHOD, code="OK")
    try:
        assert slots() == {"busy": 0, "free": SLOTS, "draining": 0}
        call = stub.Run(example_run(1, 1.5), metadata=metadata)
        events = aiter(call)
        first = await anext(events)
        assert first.type == executor_service_pb2.RunResponse.EVENT_TYPE_ACCEPTED
        assert slots() == {"busy": 1, "free": SLOTS - 1, "draining": 0}
        assert sample("zq_streams_active", method=RUN_METHOD) == 1

        drain = asyncio.create_task(runner.drain(settings.drain_seconds))
        await asyncio.sleep(0)
        assert slots() == {"busy": 1, "free": 0, "draining": SLOTS - 1}
        assert sample("zq_executor_draining") == 1
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in stub.Run(example_run(2, 0.1), metadata=metadata):
                pass
        assert reason_of(refused.value) == Reason.EXECUTOR_DRAINING

        rest = [event async for event in events]
        assert rest[-1].type == executor_service_pb2.RunResponse.EVENT_TYPE_FINISHED
        assert rest[-1].status == "success"  # the drain let it finish
        await drain
        assert slots() == {"busy": 0, "free": 0, "draining": SLOTS}
        assert sample("zq_streams_active", method=RUN_METHOD) == 0
        assert sample("zq_stream_duration_seconds_count", method=RUN_METHOD, code="OK") == timed + 1
    finally:
        await channel.close(None)
        await server.stop(0)

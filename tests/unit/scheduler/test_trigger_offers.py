"""Trigger offers end to end in one process: the engine following a real registry, with a real
executor. A manual run of a plain task is created running on the executor the scheduler named
(the offer accepted: no claim of its own) and runs there to success; a workflow's offer is declined,
and its run arrives pending and runs its step as before; with no executor to name, the offer is
declined and the run waits pending."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from sqlalchemy import select

from services.executor.jobs.plugin import PluginRegistry
from services.executor.server import create_server as create_executor
from services.executor.settings import ExecutorSettings
from services.registry.live import trigger_offers
from services.registry.models import ExecutionRow
from services.registry.server import RegistryServer
from services.registry.server import create_server as create_registry
from services.registry.settings import RegistrySettings
from services.registry.store import tasks as task_store
from services.scheduler.clients import ExecutorPool, RegistryClient
from services.scheduler.engine import Engine
from services.scheduler.settings import SchedulerSettings
from tests.waiting import eventually
from zquant.scheduler.v1 import task_service_pb2

pytestmark = pytest.mark.asyncio(loop_scope="function")

TOKEN = "test-service-token"


@dataclass
class Env:
    registry: RegistryServer
    client: RegistryClient
    executor_address: str
    tasks: dict[str, int]

    def row(self, execution_id: int) -> ExecutionRow | None:
        with self.registry.app.db.session() as session:
            row = session.scalar(select(ExecutionRow).where(ExecutionRow.id == execution_id))
            if row is not None:
                session.expunge(row)
            return row

    async def trigger(self, name: str) -> int:
        response = await self.client.tasks.TriggerTask(
            task_service_pb2.TriggerTaskRequest(task_id=self.tasks[name]), metadata=self.client.metadata
        )
        return int(response.execution_id)

    async def ended(self, execution_id: int) -> ExecutionRow:
        def final() -> ExecutionRow | None:
            row = self.row(execution_id)
            return row if row is not None and row.status not in ("pending", "running") else None

        row = await eventually(final, f"run {execution_id} ended", within=20)
        assert row is not None
        return row


def offers(outcome: str) -> float:
    return REGISTRY.get_sample_value("zq_registry_trigger_offers_total", {"outcome": outcome}) or 0.0


def create_tasks(registry: RegistryServer) -> dict[str, int]:
    now = datetime.now(UTC)
    with registry.app.db.session() as session:
        step = task_store.create_task(
            session,
            {"name": "step", "task_type": "manual_task", "config": {"command": "true"}},
            "admin",
            "UTC",
            now,
        ).id
        flow = {"workflow_type": "serial", "tasks": [{"task_id": step}]}
        workflow = task_store.create_task(
            session, {"name": "flow", "task_type": "workflow", "config": flow}, "admin", "UTC", now
        ).id
    return {"step": step, "flow": workflow}


@pytest_asyncio.fixture(loop_scope="function")
async def env(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    # The scheduler's answer counts however long a busy machine makes it take (25 ms in service).
    monkeypatch.setattr(trigger_offers, "OFFER_WAIT_SECONDS", 30.0)
    with_executor = getattr(request, "param", True)
    registry = await create_registry(
        RegistrySettings.from_env(
            {"ZQ_SERVICE_TOKEN": TOKEN, "ZQ_DATA_DIR": str(tmp_path), "ZQ_REGISTRY_PORT": "0"}
        )
    )
    tasks = create_tasks(registry)  # before the engine: its snapshot has them
    executor_settings = ExecutorSettings(
        service_token=TOKEN, port=0, heartbeat_seconds=0.2, drain_seconds=5.0, work_dir=tmp_path
    )
    executor, port, _ = await create_executor(executor_settings, plugins=PluginRegistry())
    address = f"127.0.0.1:{port}"
    settings = SchedulerSettings.from_env(
        {"ZQ_SERVICE_TOKEN": TOKEN, "ZQ_REGISTRY_ADDR": "unused", "ZQ_EXECUTOR_ADDRS": address}
    )
    client = RegistryClient(f"127.0.0.1:{registry.port}", TOKEN)
    pool = ExecutorPool((address,) if with_executor else (), TOKEN)
    engine = Engine(settings, client, pool)
    following = asyncio.ensure_future(engine.run())
    await asyncio.wait_for(engine.ready.wait(), 10)
    yield Env(registry, client, address, tasks)
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)
    await engine.stop()
    await pool.close()
    await client.close()
    await executor.stop(5)
    await registry.stop(0)


async def test_a_manual_run_is_created_running_on_the_executor_the_scheduler_named_and_succeeds(
    env: Env,
) -> None:
    accepted = offers("accepted")
    execution_id = await env.trigger("step")
    row = await env.ended(execution_id)
    assert (row.status, row.executor, row.attempt) == ("success", env.executor_address, 1)
    assert offers("accepted") == accepted + 1


async def test_a_workflows_offer_is_declined_and_its_run_arrives_pending_and_runs_its_step(env: Env) -> None:
    declined = offers("declined")
    execution_id = await env.trigger("flow")
    row = await env.ended(execution_id)
    assert row.status == "success" and offers("declined") == declined + 1
    with env.registry.app.db.session() as session:
        (step,) = session.scalars(
            select(ExecutionRow).where(ExecutionRow.parent_execution_id == execution_id)
        )
        assert (step.status, step.executor) == ("success", env.executor_address)


@pytest.mark.parametrize("env", [False], indirect=True, ids=["no-executor"])
async def test_with_no_executor_to_name_the_offer_is_declined_and_the_run_waits_pending(env: Env) -> None:
    declined = offers("declined")
    execution_id = await env.trigger("step")
    await eventually(lambda: offers("declined") == declined + 1, "the offer declined")
    await asyncio.sleep(0.2)
    row: Any = env.row(execution_id)
    assert (row.status, row.executor) == ("pending", None)

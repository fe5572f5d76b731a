"""The cluster bus: registry replicas (here: RegistryApps in one process, each with its own EventHub,
ProgressBuffer and bus) on one PostgreSQL schema share feed events, watch streams, leases and cache
drops, and recover from lost connections. Message encoding and the ProgressBuffer's parts without a
bus: test_cluster_messages.py and test_progress.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy import select, update

from services.common.auth import TokenService, TokenSubject, load_or_create_keys
from services.common.errors import Unauthenticated
from services.common.server import ServiceServer
from services.common.structs import dict_to_struct, struct_to_dict
from services.registry.app import RegistryApp
from services.registry.convert import execution_to_proto, task_event
from services.registry.db import Database, migrate, normalize_url, utcnow
from services.registry.live.cluster import (
    MAX_PAYLOAD,
)
from services.registry.live.events import RESUBSCRIBE
from services.registry.models import ExecutionRow, TaskRow, UserRow
from services.registry.runs.model import End
from services.registry.runs.reaper import LeaseReaper
from services.registry.runs.recorder import RunRecorder
from services.registry.server import watch_cluster_bus
from services.registry.settings import RegistrySettings
from services.registry.store import executions as exec_store
from services.registry.store import tasks as task_store
from services.registry.store import users as user_store
from tests.conftest import postgres_schema_url
from tests.unit.registry.leaders import lead, step_down
from tests.waiting import eventually
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

pytestmark = pytest.mark.asyncio(loop_scope="session")

LEASE_SECONDS = 1


class Replica:
    """One registry replica's shared state, with its bus connected."""

    def __init__(self, app: RegistryApp) -> None:
        self.app = app
        assert app.cluster is not None
        self.bus = app.cluster
        self.events = app.events
        self.progress = app.progress
        self.runs = RunRecorder(app)
        self.reaper = LeaseReaper(app, self.runs)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_schema_url("zq_bus") as url:
        db = Database(url)
        migrate(db.engine)
        db.dispose()
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def replicas(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[Replica]]:
    tmp: Path = tmp_path_factory.mktemp("bus")
    settings = RegistrySettings.from_env(
        {
            "ZQ_SERVICE_TOKEN": "test-service-token",
            "ZQ_DATA_DIR": str(tmp),
            "ZQ_DATABASE_URL": pg_url,
            "ZQ_LEASE_SECONDS": str(LEASE_SECONDS),
        }
    )
    assert settings.cluster_events
    keys = load_or_create_keys(settings.jwt_key_path, settings.jwks_path)
    started: list[Replica] = []
    for _ in range(2):
        app = RegistryApp.create(settings, Database(pg_url), TokenService(keys, 3600, 3600))
        replica = Replica(app)
        await replica.bus.start()
        assert replica.bus.listening
        started.append(replica)
    yield started
    for replica in started:
        await replica.bus.stop()
        replica.app.db.dispose()


@pytest.fixture(autouse=True)
def leader(request: pytest.FixtureRequest) -> Iterator[None]:
    """A scheduler in office for a while (the reaper fails silent runs only under a live leader:
    tests renew it with `lead`); stepped down after the test."""
    if "replicas" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("replicas")[0].app
    lead(app, in_office_since=app.clock() - timedelta(seconds=100 * LEASE_SECONDS))
    yield
    step_down(app)


@pytest.fixture(autouse=True)
def no_runs_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Runs a test leaves running are ended afterwards, so no other test's reaper sees them."""
    yield
    if "replicas" not in request.fixturenames:
        return
    replicas: list[Replica] = request.getfixturevalue("replicas")
    with replicas[0].app.db.session() as session:
        session.execute(update(ExecutionRow).where(ExecutionRow.status == "running").values(status="failed"))
    for replica in replicas:
        replica.progress.sync_running()


async def next_item(queue: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(queue.get(), 5.0)


async def quiet(queue: asyncio.Queue[Any], seconds: float = 0.3) -> None:
    """Nothing more arrives (own notifications are not echoed back, nothing is doubled)."""
    await asyncio.sleep(seconds)
    assert queue.empty(), queue.get_nowait()


def new_task(db: Database, **fields: Any) -> TaskRow:
    with db.session() as session:
        return task_store.create_task(
            session,
            {"name": f"bus_{uuid.uuid4().hex[:12]}", "task_type": "example_task", **fields},
            "admin",
            "Asia/Shanghai",
            utcnow(),
        )


def start_run(replica: Replica, max_retries: int = 0) -> tuple[task_pb2.Execution, int]:
    """What StartExecution does on `replica`: a pending run claimed, tracked and published."""
    db = replica.app.db
    task = new_task(db, max_retries=max_retries)
    now = utcnow()
    with db.session() as session:
        row, _ = exec_store.create_execution(
            session, exec_store.NewExecution(task_id=task.id, trigger="manual", scheduled_time=now), now
        )
        row = exec_store.claim_execution(session, row.id, exec_store.Claim("executor-test", now), now)
    execution = execution_to_proto(row, task.name)
    replica.progress.track(execution, row.attempt)
    replica.events.publish_execution(execution, row.attempt)
    return execution, row.attempt


async def finish(replica: Replica, execution_id: int, attempt: int, result: dict[str, Any]) -> None:
    """What FinishExecution does on `replica` (the final result merged over the live one)."""
    await replica.runs.end(End(execution_id, attempt, "success", dict_to_struct(result)))


def progress_result(step: int, steps: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "current_step": step,
        "total_steps": steps,
        "progress_percent": step * 100 // steps,
        "status": "running",
        "message": f"正在执行步骤 {step}/{steps}",
        "steps": [{"step": s, "status": "completed"} for s in range(1, step + 1)],
        **extra,
    }


async def backend_pids(url: str, prefix: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(
        normalize_url(url).replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        cursor = await conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (prefix,))
        return [row[0] for row in await cursor.fetchall()]


async def terminate(url: str, application_name: str) -> None:
    pids = await backend_pids(url, application_name)
    assert pids, f"no connection named {application_name}"
    async with await psycopg.AsyncConnection.connect(
        normalize_url(url).replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        for pid in pids:
            await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


# ---- scheduler feed -----------------------------------------------------------------------------


async def test_a_scheduler_event_reaches_the_other_replicas_feed_once(replicas: list[Replica]) -> None:
    a, b = replicas
    task = new_task(a.app.db)
    with a.events.scheduler_feed() as feed_a, b.events.scheduler_feed() as feed_b:
        # A manual trigger through A: the scheduler may be subscribed to either replica.
        event = internal_pb2.WatchSchedulerEventsResponse(
            type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_EXECUTION_READY,
            execution=task_pb2.Execution(id=12345, task_id=task.id),
        )
        a.events.publish_scheduler(event)
        assert await next_item(feed_b) == event
        assert await next_item(feed_a) == event
        # Both ways at once: each feed gets both events once (its own replica's first).
        a.events.publish_scheduler(task_event(task, utcnow()))
        b.events.publish_scheduler(
            internal_pb2.WatchSchedulerEventsResponse(
                type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TASK_DELETE, task_id=7
            )
        )
        for feed in (feed_a, feed_b):
            kinds = {(await next_item(feed)).type, (await next_item(feed)).type}
            assert kinds == {
                internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TASK_UPSERT,
                internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TASK_DELETE,
            }
        await quiet(feed_a)
        await quiet(feed_b)


async def test_changes_on_one_replica_drop_the_others_task_list_cache(replicas: list[Replica]) -> None:
    a, b = replicas
    drops: list[None] = []
    b.events.on_change.append(lambda: drops.append(None))
    try:
        a.events.publish_scheduler(task_event(new_task(a.app.db), utcnow()))
        await eventually(lambda: drops, "B's on_change after a task change on A")
        drops.clear()
        start_run(a)  # an execution state change
        await eventually(lambda: drops, "B's on_change after a run started on A")
    finally:
        b.events.on_change.pop()


async def test_a_terminate_request_on_one_replica_is_answered_by_the_one_the_scheduler_reports_to(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    execution, attempt = start_run(a)
    await eventually(lambda: b.progress.get(execution.id), "B tracking the run")
    with a.events.scheduler_feed() as feed_a:
        b.progress.get(execution.id).terminate_requested = True  # type: ignore[union-attr]
        b.events.publish_scheduler(
            internal_pb2.WatchSchedulerEventsResponse(
                type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TERMINATE_REQUESTED,
                execution=execution,
            )
        )
        assert (
            await next_item(feed_a)
        ).type == internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TERMINATE_REQUESTED
    assert a.progress.report(execution.id, attempt, None).terminate_requested


# ---- executions: watchers, leases ---------------------------------------------------------------


async def test_progress_reported_to_one_replica_reaches_the_others_watchers_and_lease(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    execution, attempt = start_run(a)
    await eventually(lambda: b.progress.get(execution.id), "B tracking the run A started")
    with a.events.execution_feed(execution.id) as watch_a, b.events.execution_feed(execution.id) as watch_b:
        seen = b.progress.get(execution.id).last_seen  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
        for step in (1, 2, 3):
            a.progress.report(execution.id, attempt, dict_to_struct(progress_result(step)))
            remote = await next_item(watch_b)
            local = await next_item(watch_a)
            assert remote.id == execution.id and remote.status == "running"
            assert remote.task_name == execution.task_name
            assert remote.result["current_step"] == step and len(remote.result["steps"]) == step
            assert local.result["current_step"] == step
        live = b.progress.get(execution.id)
        assert live is not None and live.last_seen > seen
        assert struct_to_dict(live.snapshot.result) == progress_result(3)
        # B serves reads of the run with the live result, but leaves the write to A.
        assert struct_to_dict(live.snapshot.result) == progress_result(3) and not live.dirty
        assert b.progress.live_results()[execution.id] == live.snapshot.result
        assert a.progress.get(execution.id).dirty  # type: ignore[union-attr]
        # Bare heartbeats renew B's lease too, without anything for the watchers.
        seen = live.last_seen
        await asyncio.sleep(LEASE_SECONDS / 5 + 0.05)
        a.progress.report(execution.id, attempt, None)
        await eventually(lambda: live.last_seen > seen, "B's last_seen renewed by a heartbeat on A")
        await quiet(watch_b)
        await quiet(watch_a)
        # The run ends on A: B's watcher gets the final state and B stops tracking it.
        await finish(a, execution.id, attempt, {"message": "完成"})
        final = await next_item(watch_b)
        assert final.status == "success" and final.result["message"] == "完成"
        assert final.result["current_step"] == 3
    await eventually(lambda: b.progress.get(execution.id) is None, "B forgetting the finished run")


async def test_an_oversized_snapshot_arrives_without_its_steps(replicas: list[Replica]) -> None:
    a, b = replicas
    execution, attempt = start_run(a)
    await eventually(lambda: b.progress.get(execution.id), "B tracking the run")
    with b.events.execution_feed(execution.id) as watch_b:
        big = progress_result(400, steps=400)
        big["steps"] = [
            {"step": s, "status": "completed", "message": f"步骤 {s} 处理完成"} for s in range(400)
        ]
        assert len(json.dumps(big)) > MAX_PAYLOAD
        a.progress.report(execution.id, attempt, dict_to_struct(big))
        remote = await next_item(watch_b)
        assert "steps" not in remote.result
        assert remote.result["current_step"] == 400 and remote.result["message"] == big["message"]
        # Too big even without steps: a bare heartbeat; B keeps its last snapshot.
        before = b.progress.get(execution.id).last_seen  # type: ignore[union-attr]
        a.progress.report(execution.id, attempt, dict_to_struct({**big, "message": "x" * MAX_PAYLOAD}))
        await eventually(
            lambda: b.progress.get(execution.id).last_seen > before,  # type: ignore[union-attr]
            "B's lease renewed by an oversized report",
        )
        await quiet(watch_b)
        assert b.progress.live_results()[execution.id]["current_step"] == 400
        # A final state too big to send: B reads the row itself.
        await finish(a, execution.id, attempt, {"message": "y" * MAX_PAYLOAD})
        final = await next_item(watch_b)
        assert final.status == "success" and final.result["message"] == "y" * MAX_PAYLOAD
        assert len(final.result["steps"]) == 400 and final.task_name == execution.task_name


async def test_an_oversized_task_change_is_read_by_the_receiver(replicas: list[Replica]) -> None:
    a, b = replicas
    task = new_task(a.app.db, description="描述" * 1000)
    with b.events.scheduler_feed() as feed_b:
        a.events.publish_scheduler(task_event(task, utcnow()))
        event = await next_item(feed_b)
        assert (
            event.type == internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TASK_UPSERT
            and event.task.id == task.id
        )
        assert event.task.description == "描述" * 1000


async def test_many_changes_at_once_arrive_whole_and_in_order_across_several_payloads(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    # Quotes, backslashes and characters beyond ASCII, in more text than one payload holds.
    description = '引号 " 反斜杠 \\ 与 \\u0041 ' * 40
    tasks = [new_task(a.app.db, description=description) for _ in range(12)]
    with b.events.scheduler_feed() as feed_b:
        for task in tasks:
            a.events.publish_scheduler(task_event(task, utcnow()))
        received = [await next_item(feed_b) for _ in tasks]
        await quiet(feed_b)
    assert [event.task.id for event in received] == [task.id for task in tasks]
    assert {event.task.description for event in received} == {description}


async def test_a_requeued_run_is_dropped_everywhere(replicas: list[Replica]) -> None:
    a, b = replicas
    execution, attempt = start_run(a)
    await eventually(lambda: b.progress.get(execution.id), "B tracking the run")
    with a.app.db.session() as session:
        row = exec_store.requeue_execution(session, execution.id, attempt)
    a.progress.forget(execution.id)
    a.events.publish_execution(execution_to_proto(row), row.attempt)
    await eventually(lambda: b.progress.get(execution.id) is None, "B dropping the requeued run")


async def test_every_replica_reaps_a_silent_run_but_it_fails_once(replicas: list[Replica]) -> None:
    a, b = replicas
    execution, attempt = start_run(a, max_retries=1)
    await eventually(lambda: b.progress.get(execution.id), "B tracking the run")
    # Healthy: reports reach A only, yet neither replica reaps it.
    for step in range(8):
        a.progress.report(execution.id, attempt, dict_to_struct(progress_result(1) if step == 0 else None))
        await asyncio.sleep(LEASE_SECONDS / 4)
        lead(a.app)
        assert await a.reaper.reap() == 0
        assert await b.reaper.reap() == 0
    # Silent under a live leader: both reap at the same moment; one finish wins, the other finds it
    # ended.
    await asyncio.sleep(LEASE_SECONDS + 0.1)
    lead(a.app)
    assert await a.reaper.reap() + await b.reaper.reap() == 1
    assert a.progress.get(execution.id) is None and b.progress.get(execution.id) is None
    with a.app.db.session() as session:
        row = session.get(ExecutionRow, execution.id)
        assert row is not None and row.status == "failed" and row.error_message == exec_store.LOST_EXECUTOR
        retries = session.scalars(
            select(ExecutionRow).where(ExecutionRow.task_id == row.task_id, ExecutionRow.trigger == "retry")
        ).all()
        assert len(retries) == 1


async def test_a_report_to_a_replica_that_missed_the_start_is_accepted(replicas: list[Replica]) -> None:
    a, b = replicas
    execution, attempt = start_run(a)
    await eventually(lambda: b.progress.get(execution.id), "B tracking the run")
    # B restarted, say: it knows nothing of the run, and the scheduler now reports to B.
    b.progress.forget(execution.id)
    with a.events.execution_feed(execution.id) as watch_a:
        run = b.progress.report(execution.id, attempt, dict_to_struct(progress_result(2)))
        assert run.attempt == attempt and run.snapshot.task_name == execution.task_name
        assert (await next_item(watch_a)).result["current_step"] == 2


# ---- connection loss ----------------------------------------------------------------------------


async def test_the_listener_recovers_after_its_connection_is_killed(
    replicas: list[Replica], pg_url: str
) -> None:
    a, b = replicas
    execution, attempt = start_run(a)
    await eventually(lambda: b.progress.get(execution.id), "B tracking the run")
    # B's server readiness follows its listener (services/registry/server.py).
    server = ServiceServer("registry", lambda method, metadata: None)
    watch_cluster_bus(server, b.bus)

    def ready() -> bool:
        return server.ready

    assert ready()
    with b.events.scheduler_feed() as feed_b, b.events.execution_feed(execution.id) as watch_b:
        await terminate(pg_url, f"zq-registry-listen-{b.bus.replica_id}")
        await eventually(lambda: not b.bus.listening, "B noticing the lost connection")
        assert not ready()
        # Deaf to the others' heartbeats, B does not reap, though the leader is alive.
        b.progress.get(execution.id).last_seen -= 100  # type: ignore[union-attr]
        lead(b.app)
        assert await b.reaper.reap() == 0
        await eventually(lambda: b.bus.listening, "B listening again")
        assert ready()
        b.bus.on_listening.clear()
        # Resynchronised: scheduler feeds end (the scheduler subscribes again), watchers get the
        # current row, the run is tracked with a fresh lease.
        assert await next_item(feed_b) is RESUBSCRIBE
        assert (await next_item(watch_b)).status == "running"
        lead(b.app)
        assert await b.reaper.reap() == 0
        # And events flow again.
        a.progress.report(execution.id, attempt, dict_to_struct(progress_result(5)))
        assert (await next_item(watch_b)).result["current_step"] == 5


async def test_the_sender_recovers_after_its_connection_is_killed(
    replicas: list[Replica], pg_url: str
) -> None:
    a, b = replicas
    execution, attempt = start_run(a)
    await eventually(lambda: b.progress.get(execution.id), "B tracking the run")
    with b.events.execution_feed(execution.id) as watch_b:
        await terminate(pg_url, f"zq-registry-notify-{a.bus.replica_id}")
        for step in (1, 2):
            a.progress.report(execution.id, attempt, dict_to_struct(progress_result(step)))
            assert (await next_item(watch_b)).result["current_step"] == step


async def test_a_replica_that_starts_late_tracks_running_runs(replicas: list[Replica], pg_url: str) -> None:
    a, b = replicas
    execution, attempt = start_run(a)
    app = RegistryApp.create(a.app.settings, Database(pg_url), a.app.tokens)
    late = Replica(app)
    try:
        await late.bus.start()
        live = late.progress.get(execution.id)
        assert live is not None and live.attempt == attempt
        with late.events.execution_feed(execution.id) as watch:
            a.progress.report(execution.id, attempt, dict_to_struct(progress_result(1)))
            assert (await next_item(watch)).result["current_step"] == 1
    finally:
        await late.bus.stop()
        app.db.dispose()


async def test_a_user_change_on_one_replica_refuses_old_tokens_on_the_others(replicas: list[Replica]) -> None:
    name = f"bus-{uuid.uuid4().hex[:8]}"
    with replicas[0].app.db.session() as session:
        user = user_store.create_user(session, name, "not-a-real-hash", "operator")
        session.flush()
        subject = TokenSubject(name, "operator", user.id, 0, "session-1")
    assert replicas[1].app.users.current_role(subject) == "operator"  # cached there now
    with replicas[0].app.db.session() as session:
        session.execute(update(UserRow).where(UserRow.username == name).values(token_version=1))
    replicas[0].app.users.changed(name)

    def refused() -> bool:
        try:
            replicas[1].app.users.current_role(subject)
        except Unauthenticated:
            return True
        return False

    # Within the bus's delivery time, far inside the 5 s the cached state would otherwise live.
    await eventually(refused, "the other replica to drop the user's state", within=2.0)

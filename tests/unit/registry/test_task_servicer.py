"""TaskService over a real in-process registry: every task change made through it goes to the relay that
carries it to the other replicas (the cluster bus), after its commit. Nothing else writes task rows, so
this is how the other replicas (and their schedulers) learn of every change."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import struct_pb2
from sqlalchemy import event, select

from services.registry.models import AuditRow
from services.registry.server import RegistryServer, create_server
from services.registry.settings import RegistrySettings
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import (
    registry_internal_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
    transfer_service_pb2,
    transfer_service_pb2_grpc,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOKEN = "test-service-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


@dataclass
class RecordingRelay:
    """What would go over the cluster bus: (task id, still exists) per scheduler-feed task event."""

    tasks: list[tuple[int, bool]] = field(default_factory=list)

    def scheduler_event(self, event: internal_pb2.WatchSchedulerEventsResponse) -> None:
        if event.HasField("task"):
            self.tasks.append((event.task.id, True))
        elif event.task_id:
            self.tasks.append((event.task_id, False))

    def execution_changed(self, execution: task_pb2.Execution, attempt: int) -> None:
        pass

    def progress(self, execution_id: int, attempt: int, snapshot: task_pb2.Execution | None) -> None:
        pass


@dataclass
class Env:
    registry: RegistryServer
    relay: RecordingRelay
    tasks: Any
    transfer: Any


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("registry")
    settings = RegistrySettings.from_env(
        {"ZQ_SERVICE_TOKEN": TOKEN, "ZQ_DATA_DIR": str(tmp), "ZQ_REGISTRY_PORT": "0"}
    )
    registry = await create_server(settings)
    relay = RecordingRelay()
    registry.app.events.relay = relay
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{registry.port}")
    yield Env(
        registry,
        relay,
        task_service_pb2_grpc.TaskServiceStub(channel),
        transfer_service_pb2_grpc.TransferServiceStub(channel),
    )
    await channel.close(grace=None)
    await registry.stop(0)


def command_task(name: str) -> task_service_pb2.CreateTaskRequest:
    config = struct_pb2.Struct()
    config.update({"command": "true"})
    return task_service_pb2.CreateTaskRequest(
        name=name, task_type="common_task", interval_seconds=3600, config=config
    )


async def test_every_task_change_through_the_registry_goes_to_the_other_replicas(env: Env) -> None:
    tasks = env.tasks
    single = await tasks.CreateTask(command_task("single"), metadata=AUTH)
    batch = await tasks.BatchCreateTasks(
        task_service_pb2.BatchCreateTasksRequest(tasks=[command_task("b1"), command_task("b2")]),
        metadata=AUTH,
    )
    b1, b2 = (task.id for task in batch.tasks)
    changes = struct_pb2.Struct()
    changes.update({"description": "changed"})
    await tasks.UpdateTask(task_service_pb2.UpdateTaskRequest(task_id=b1, changes=changes), metadata=AUTH)
    await tasks.DisableTask(task_service_pb2.DisableTaskRequest(task_id=b1), metadata=AUTH)
    await tasks.EnableTask(task_service_pb2.EnableTaskRequest(task_id=b1), metadata=AUTH)
    await tasks.PauseTask(task_service_pb2.PauseTaskRequest(task_id=b2), metadata=AUTH)
    await tasks.ResumeTask(task_service_pb2.ResumeTaskRequest(task_id=b2), metadata=AUTH)
    await tasks.DeleteTask(task_service_pb2.DeleteTaskRequest(task_id=single.id), metadata=AUTH)
    assert env.relay.tasks == [
        (single.id, True),
        (b1, True),
        (b2, True),
        (b1, True),
        (b1, True),
        (b1, True),
        (b2, True),
        (b2, True),
        (single.id, False),
    ]


async def test_creates_at_once_each_answer_their_own_outcome_and_send_their_task_once(env: Env) -> None:
    await env.tasks.CreateTask(command_task("at-once-taken"), metadata=AUTH)
    before = len(env.relay.tasks)
    names = ["at-once-1", "at-once-taken", "at-once-2", "at-once-1", "at-once-3"]
    answers = await asyncio.gather(
        *(env.tasks.CreateTask(command_task(name), metadata=AUTH) for name in names), return_exceptions=True
    )
    created = [answer for answer in answers if isinstance(answer, task_pb2.Task)]
    assert [task.name for task in created] == ["at-once-1", "at-once-2", "at-once-3"]
    refused = [answer for answer in answers if isinstance(answer, grpc.aio.AioRpcError)]
    assert [error.code() for error in refused] == [grpc.StatusCode.ALREADY_EXISTS] * 2
    assert sorted(env.relay.tasks[before:]) == sorted((task.id, True) for task in created)


async def test_a_refused_batch_sends_nothing(env: Env) -> None:
    await env.tasks.CreateTask(command_task("taken"), metadata=AUTH)
    before = list(env.relay.tasks)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await env.tasks.BatchCreateTasks(
            task_service_pb2.BatchCreateTasksRequest(tasks=[command_task("fresh"), command_task("taken")]),
            metadata=AUTH,
        )
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "tasks[1]: 任务名称 'taken' 已存在" in (raised.value.details() or "")
    assert env.relay.tasks == before


def document_item(name: str, **fields: Any) -> struct_pb2.Struct:
    item = struct_pb2.Struct()
    item.update({"name": name, "task_type": "common_task", "config": {"command": "true"}, **fields})
    return item


async def test_an_import_over_grpc_sends_the_changed_tasks_only_and_a_dry_run_sends_nothing(env: Env) -> None:
    await env.tasks.CreateTask(command_task("kept"), metadata=AUTH)
    items = [document_item("kept", interval_seconds=3600), document_item("imported", interval_seconds=60)]
    before = list(env.relay.tasks)
    preview = await env.transfer.ImportTasks(
        transfer_service_pb2.ImportTasksRequest(tasks=items, dry_run=True), metadata=AUTH
    )
    assert [(item.name, item.action) for item in preview.tasks] == [
        ("kept", "unchanged"),
        ("imported", "created"),
    ]
    assert env.relay.tasks == before
    done = await env.transfer.ImportTasks(transfer_service_pb2.ImportTasksRequest(tasks=items), metadata=AUTH)
    assert (done.created, done.updated, done.unchanged) == (1, 0, 1)
    assert env.relay.tasks == [*before, (done.tasks[1].task_id, True)]


async def test_a_refused_import_over_grpc_names_the_item_in_its_details(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await env.transfer.ImportTasks(
            transfer_service_pb2.ImportTasksRequest(tasks=[document_item("odd", max_retries=-1)]),
            metadata=AUTH,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tasks[0] (odd)" in (raised.value.details() or "")


async def trigger_seeing(
    env: Env, task_id: int, *words: str
) -> tuple[task_service_pb2.TriggerTaskResponse, list[str]]:
    """Triggers the task; with the statements it sent that hold each of `words`."""
    engine = env.registry.app.db.engine
    seen: list[str] = []

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if all(word in statement for word in words):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", watch)
    try:
        answer: task_service_pb2.TriggerTaskResponse = await env.tasks.TriggerTask(
            task_service_pb2.TriggerTaskRequest(task_id=task_id), metadata=AUTH
        )
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    return answer, seen


async def test_a_trigger_reads_its_task_once_and_its_audit_entry_names_the_task(env: Env) -> None:
    task = await env.tasks.CreateTask(command_task("triggered"), metadata=AUTH)
    triggered, task_reads = await trigger_seeing(env, task.id, "SELECT", "FROM zq_task_scheduled_tasks")
    assert len(task_reads) == 1, task_reads  # the locked read, not a second one for the audit
    with env.registry.app.db.session() as session:
        entry = session.scalars(
            select(AuditRow).where(AuditRow.action == "task.trigger", AuditRow.target_id == str(task.id))
        ).one()
    assert (entry.target_name, entry.changes) == ("triggered", {"execution_id": triggered.execution_id})


async def test_a_trigger_knows_a_scheduler_leads_from_a_term_held_here_without_reading_the_leader(
    env: Env,
) -> None:
    request = command_task("leader-known")
    request.concurrency_policy = "allow"  # triggered twice
    task = await env.tasks.CreateTask(request, metadata=AUTH)
    held, hold = env.registry.app.held_terms, object()
    held.renewed(hold, env.registry.app.clock() + timedelta(seconds=30))
    try:
        answer, leader_reads = await trigger_seeing(env, task.id, "zq_task_scheduler_leader")
        assert answer.scheduler_up and leader_reads == []
    finally:
        held.ended(hold)
    answer, leader_reads = await trigger_seeing(env, task.id, "zq_task_scheduler_leader")
    assert not answer.scheduler_up and len(leader_reads) == 1  # no term here: the row says none leads


async def test_the_lists_total_is_counted_again_after_a_task_change_but_not_after_a_run_change(
    env: Env,
) -> None:
    tasks = env.tasks
    engine = env.registry.app.db.engine
    counts: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("SELECT count(*)"):
            counts.append(statement)

    async def total() -> int:
        page = await tasks.ListTasks(task_service_pb2.ListTasksRequest(limit=5, name="totals"), metadata=AUTH)
        return int(page.total)

    first = await tasks.CreateTask(command_task("totals-1"), metadata=AUTH)
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert await total() == 1 and len(counts) == 1
        await tasks.TriggerTask(task_service_pb2.TriggerTaskRequest(task_id=first.id), metadata=AUTH)
        assert await total() == 1 and len(counts) == 1  # a run changed: the page is read again, not counted
        second = await tasks.CreateTask(command_task("totals-2"), metadata=AUTH)
        assert await total() == 2 and len(counts) == 2
        await tasks.DeleteTask(task_service_pb2.DeleteTaskRequest(task_id=second.id), metadata=AUTH)
        assert await total() == 1 and len(counts) == 3
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_a_page_shows_its_own_tasks_new_run_at_once_and_stays_cached_while_other_tasks_run(
    env: Env,
) -> None:
    tasks, cache = env.tasks, env.registry.app.list_cache
    shown = await tasks.CreateTask(command_task("cached-shown"), metadata=AUTH)
    other = await tasks.CreateTask(command_task("cached-other"), metadata=AUTH)

    async def listed() -> task_pb2.Task:
        page: task_service_pb2.ListTasksResponse = await tasks.ListTasks(
            task_service_pb2.ListTasksRequest(name="cached-shown"), metadata=AUTH
        )
        (task,) = page.tasks
        return task

    assert (await listed()).latest_execution_status == ""
    await tasks.TriggerTask(task_service_pb2.TriggerTaskRequest(task_id=other.id), metadata=AUTH)
    hits = cache.hits
    assert (await listed()).latest_execution_status == ""
    assert cache.hits == hits + 1  # another task's run: the page came from the cache
    await tasks.TriggerTask(task_service_pb2.TriggerTaskRequest(task_id=shown.id), metadata=AUTH)
    assert (await listed()).latest_execution_status == "pending"
    assert cache.hits == hits + 1


async def refusal_beside_a_bare_writer(
    env: Env, statement: tuple[str, int], call: Callable[[], Awaitable[Any]]
) -> grpc.StatusCode:
    """The code `call` is refused with when it is made while another writer (a bare connection)
    holds SQLite's write lock and runs `statement` (SQL and its one parameter), committed half a
    second later: a serialized call waits for the lock and decides on the rows as they are then; an
    unserialized one has read them before (and is not refused: the test fails)."""
    path = env.registry.app.db.url.split("///", 1)[1]
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute(statement[0], (statement[1],))
        answer = asyncio.ensure_future(call())
        await asyncio.sleep(0.5)
        other.execute("COMMIT")
    finally:
        other.close()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await answer
    return raised.value.code()


async def test_an_update_on_sqlite_is_decided_on_the_row_as_it_is_when_it_writes(env: Env) -> None:
    # Another writer (here a bare connection) holds SQLite's write lock and gives the task a
    # calendar; an update switching it to an interval meanwhile must see that calendar (refused:
    # a calendar needs a cron), not decide on the row as it was and then write an invalid task.
    created = await env.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(
            name="serialized-update",
            task_type="common_task",
            cron_expression="0 18 * * 1-5",
            config=command_task("x").config,
        ),
        metadata=AUTH,
    )
    changes = struct_pb2.Struct()
    changes.update({"cron_expression": None, "interval_seconds": 60})
    update = task_service_pb2.UpdateTaskRequest(task_id=created.id, changes=changes)
    calendar_given = ("UPDATE zq_task_scheduled_tasks SET calendar = 'XSHG' WHERE id = ?", created.id)
    refused = await refusal_beside_a_bare_writer(
        env, calendar_given, lambda: env.tasks.UpdateTask(update, metadata=AUTH)
    )
    assert refused == grpc.StatusCode.INVALID_ARGUMENT
    stored = await env.tasks.GetTask(task_service_pb2.GetTaskRequest(task_id=created.id), metadata=AUTH)
    assert (stored.cron_expression, stored.interval_seconds, stored.calendar) == ("0 18 * * 1-5", 0, "XSHG")


async def test_a_workflow_created_on_sqlite_is_decided_on_its_sub_tasks_as_they_are_when_it_writes(
    env: Env,
) -> None:
    # Another writer (here a bare connection) holds SQLite's write lock and deletes the sub-task; a
    # workflow created with it meanwhile must see it gone (refused), not check it before the delete
    # commits and then store a workflow naming a task that does not exist.
    step = await env.tasks.CreateTask(command_task("serialized-step"), metadata=AUTH)
    config = struct_pb2.Struct()
    config.update({"workflow_type": "serial", "tasks": [{"task_id": step.id}]})
    create = task_service_pb2.CreateTaskRequest(name="serialized-flow", task_type="workflow", config=config)
    step_deleted = ("DELETE FROM zq_task_scheduled_tasks WHERE id = ?", step.id)
    refused = await refusal_beside_a_bare_writer(
        env, step_deleted, lambda: env.tasks.CreateTask(create, metadata=AUTH)
    )
    assert refused == grpc.StatusCode.INVALID_ARGUMENT
    page = await env.tasks.ListTasks(
        task_service_pb2.ListTasksRequest(name="serialized-flow", include_children=True), metadata=AUTH
    )
    assert list(page.tasks) == []


async def test_a_scheduler_feed_that_reads_batches_gets_a_batch_creates_tasks_in_one_message(
    env: Env,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{env.registry.port}") as channel:
        feed = registry_internal_service_pb2_grpc.RegistryInternalServiceStub(channel).WatchSchedulerEvents(
            internal_pb2.WatchSchedulerEventsRequest(snapshot_pages=True, batch_events=True), metadata=AUTH
        )
        done = internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_SNAPSHOT_DONE
        while (await feed.read()).type != done:
            pass
        batch = await env.tasks.BatchCreateTasks(
            task_service_pb2.BatchCreateTasksRequest(
                tasks=[command_task("fed-1"), command_task("fed-2"), command_task("fed-3")]
            ),
            metadata=AUTH,
        )
        message = await asyncio.wait_for(feed.read(), 5)
        feed.cancel()
    assert [event.task.id for event in (message, *message.then)] == [task.id for task in batch.tasks]

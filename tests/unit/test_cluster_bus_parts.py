"""The cluster bus's message encoding and channels, and the ProgressBuffer's handling of runs it
does not track (both backends)."""

from __future__ import annotations

import json
import uuid

import pytest

from services.common.errors import FailedPrecondition
from services.registry.cluster import (
    CHANNEL,
    MAX_MESSAGE,
    channel_for,
    encode_execution,
    encode_progress,
    encode_scheduler,
)
from services.registry.convert import execution_to_proto
from services.registry.db import Database, utcnow
from services.registry.events import EventHub
from services.registry.models import ExecutionRow
from services.registry.progress import ProgressBuffer
from services.registry.settings import RegistrySettings
from services.registry.store import executions as exec_store
from services.registry.store import tasks as task_store
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

# ---- pure parts ---------------------------------------------------------------------------------


def test_channels_are_per_schema() -> None:
    assert channel_for("public") == channel_for(None) == CHANNEL
    assert channel_for("zq_a") == "zq_events.zq_a" != channel_for("zq_b")
    long = channel_for("s" * 80)
    assert len(long) <= 63 and long != channel_for("s" * 81)


def test_every_encoded_message_fits() -> None:
    huge = task_pb2.Execution(id=1, status="running")
    huge.result.update({"message": "x" * 20_000, "steps": [{"message": "y" * 100}] * 200})
    assert len(encode_progress(1, 1, huge)) <= MAX_MESSAGE
    assert json.loads(encode_progress(1, 1, huge)) == {"k": "p", "i": 1, "a": 1}
    assert json.loads(encode_execution(huge, 1)) == {"k": "X", "i": 1}
    task = task_pb2.Task(id=3, description="d" * 20_000)
    assert json.loads(
        encode_scheduler(internal_pb2.WatchSchedulerEventsResponse(event_type="task_upsert", task=task))
    ) == {"k": "t", "i": 3}
    terminate_event = internal_pb2.WatchSchedulerEventsResponse(
        event_type="terminate_requested", execution=huge
    )
    assert len(encode_scheduler(terminate_event)) <= MAX_MESSAGE


# ---- ProgressBuffer without a bus (both backends) -------------------------------------------------


@pytest.fixture
def buffer(db: Database) -> ProgressBuffer:
    return ProgressBuffer(db, EventHub(), flush_seconds=25)


def claimed(db: Database) -> ExecutionRow:
    """A run as StartExecution leaves it: running, attempt 1."""
    now = utcnow()
    with db.session() as session:
        task = task_store.create_task(
            session,
            {"name": f"bus_{uuid.uuid4().hex[:12]}", "task_type": "example_task"},
            "admin",
            "UTC",
            now,
        )
        row, _ = exec_store.create_execution(
            session, exec_store.NewExecution(task_id=task.id, trigger="manual", scheduled_time=now), now
        )
        return exec_store.claim_execution(session, row.id, exec_store.Claim("executor-test", now), now)


def test_a_report_for_an_untracked_running_run_adopts_it(db: Database, buffer: ProgressBuffer) -> None:
    row = claimed(db)
    run = buffer.report(row.id, row.attempt, {"current_step": 1})
    assert run.attempt == row.attempt and run.result == {"current_step": 1} and run.dirty
    assert buffer.get(row.id) is run


def test_a_report_of_another_attempt_or_of_an_ended_run_is_refused(
    db: Database, buffer: ProgressBuffer
) -> None:
    row = claimed(db)
    with pytest.raises(FailedPrecondition, match="尝试已失效"):
        buffer.report(row.id, row.attempt + 1, None)
    with pytest.raises(FailedPrecondition, match="尝试已失效"):
        buffer.report(row.id, row.attempt - 1, None)
    assert buffer.get(row.id) is None
    with db.session() as session:
        exec_store.finish_execution(session, exec_store.RunEnd(row.id, row.attempt, "success", {}), utcnow())
    with pytest.raises(FailedPrecondition, match="不在运行中"):
        buffer.report(row.id, row.attempt, None)


def test_sync_running_tracks_exactly_the_running_rows(db: Database, buffer: ProgressBuffer) -> None:
    running, ended = claimed(db), claimed(db)
    buffer.track(execution_to_proto(ended), ended.attempt)
    with db.session() as session:
        exec_store.request_termination(session, running.id, utcnow())
        exec_store.finish_execution(
            session, exec_store.RunEnd(ended.id, ended.attempt, "success", {}), utcnow()
        )
    buffer.sync_running()
    live = buffer.get(running.id)
    assert live is not None and live.terminate_requested and live.snapshot.task_name
    assert buffer.get(ended.id) is None


def test_what_other_replicas_heard_never_goes_back_to_an_older_attempt(buffer: ProgressBuffer) -> None:
    snapshot = task_pb2.Execution(id=5, task_id=1, status="running", task_name="t")
    snapshot.result.update({"current_step": 1})
    # A bare heartbeat names no task: it cannot start tracking a run.
    assert buffer.observe_report(5, 1, None) is None and buffer.get(5) is None
    run = buffer.observe_report(5, 1, snapshot)
    assert run is not None and run.result == {"current_step": 1} and not run.dirty
    assert buffer.observe_report(5, 0, snapshot) is None
    # Adopted elsewhere (attempt 2): older state changes do not undo it, its end does.
    buffer.observe_state(task_pb2.Execution(id=5, status="running"), 2)
    assert buffer.get(5).attempt == 2  # type: ignore[union-attr]
    buffer.observe_state(task_pb2.Execution(id=5, status="pending"), 1)
    assert buffer.get(5).attempt == 2  # type: ignore[union-attr]
    buffer.observe_state(task_pb2.Execution(id=5, status="success"), 2)
    assert buffer.get(5) is None


def test_cluster_events_are_on_by_default_on_postgresql_only() -> None:
    def settings(**env: str) -> RegistrySettings:
        return RegistrySettings.from_env({"ZQ_SERVICE_TOKEN": "t", **env})

    postgres = "postgresql://zquant@db:5432/zquant"
    assert not settings().cluster_events
    assert settings(ZQ_DATABASE_URL=postgres).cluster_events
    assert not settings(ZQ_DATABASE_URL=postgres, ZQ_CLUSTER_EVENTS="off").cluster_events
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        settings(ZQ_CLUSTER_EVENTS="on")
    with pytest.raises(ValueError, match="ZQ_CLUSTER_EVENTS must be on or off"):
        settings(ZQ_DATABASE_URL=postgres, ZQ_CLUSTER_EVENTS="maybe")

"""The ProgressBuffer without a bus (both backends): runs it does not track, stale attempts, the
running rows after a resynchronisation, and what other replicas heard."""

from __future__ import annotations

import uuid

import pytest

from services.common.errors import FailedPrecondition
from services.common.structs import dict_to_struct, struct_to_dict
from services.registry.convert import execution_to_proto
from services.registry.db import Database, utcnow
from services.registry.live.events import EventHub
from services.registry.live.progress import ProgressBuffer
from services.registry.models import ExecutionRow
from services.registry.store import executions as exec_store
from services.registry.store import manual_runs, run_ends
from services.registry.store import tasks as task_store
from zquant.scheduler.v1 import task_pb2


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
    run = buffer.report(row.id, row.attempt, dict_to_struct({"current_step": 1}))
    assert run.attempt == row.attempt and struct_to_dict(run.snapshot.result) == {"current_step": 1}
    assert run.dirty
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
        run_ends.end_runs(session, [run_ends.RunEnd(row.id, row.attempt, "success", {})], utcnow())
    with pytest.raises(FailedPrecondition, match="不在运行中"):
        buffer.report(row.id, row.attempt, None)


def test_sync_running_tracks_exactly_the_running_rows(db: Database, buffer: ProgressBuffer) -> None:
    running, ended = claimed(db), claimed(db)
    buffer.track(execution_to_proto(ended), ended.attempt)
    with db.session() as session:
        manual_runs.request_termination(session, running.id, utcnow())
        run_ends.end_runs(session, [run_ends.RunEnd(ended.id, ended.attempt, "success", {})], utcnow())
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
    assert run is not None and struct_to_dict(run.snapshot.result) == {"current_step": 1} and not run.dirty
    assert buffer.observe_report(5, 0, snapshot) is None
    # Adopted elsewhere (attempt 2): older state changes do not undo it, its end does.
    buffer.observe_state(task_pb2.Execution(id=5, status="running"), 2)
    assert buffer.get(5).attempt == 2  # type: ignore[union-attr]
    buffer.observe_state(task_pb2.Execution(id=5, status="pending"), 1)
    assert buffer.get(5).attempt == 2  # type: ignore[union-attr]
    buffer.observe_state(task_pb2.Execution(id=5, status="success"), 2)
    assert buffer.get(5) is None


def test_live_progress_taken_before_a_read_outlives_the_run_ending_meanwhile(
    db: Database, buffer: ProgressBuffer
) -> None:
    row = claimed(db)
    buffer.report(row.id, row.attempt, dict_to_struct({"current_step": 23, "total_steps": 30}))
    live = buffer.live_results([row.id, row.id + 1000])
    # The run ends between taking the overlay and reading its row (still `running` in that read).
    buffer.forget(row.id)
    assert buffer.live_results() == {}
    assert struct_to_dict(live[row.id]) == {"current_step": 23, "total_steps": 30}
    assert list(live) == [row.id]


def test_the_reaper_may_sleep_a_whole_lease_while_no_run_is_tracked_and_until_the_first_could_turn_silent(
    db: Database,
) -> None:
    now = [1000.0]
    buffer = ProgressBuffer(db, EventHub(), flush_seconds=25, clock=lambda: now[0])
    assert buffer.seconds_until_silence(15) == 15  # a run tracked meanwhile starts with a full lease
    first, second = claimed(db), claimed(db)
    buffer.track(execution_to_proto(first), first.attempt)
    now[0] += 4
    buffer.track(execution_to_proto(second), second.attempt)
    assert buffer.seconds_until_silence(15) == 11  # the first, tracked 4 s earlier
    now[0] += 10
    buffer.report(first.id, first.attempt, None)  # a heartbeat renews the first's lease
    assert buffer.seconds_until_silence(15) == 5  # now the second is the first to fall silent
    now[0] += 6
    assert buffer.seconds_until_silence(15) == 0
    assert [run.snapshot.id for run in buffer.silent_runs(15)] == [second.id]


def test_a_run_tracked_while_the_flusher_sleeps_a_whole_period_is_not_due_before_it_wakes(
    db: Database,
) -> None:
    """The idle flusher sleeps flush_seconds: what a run tracked meanwhile reports is due no sooner
    than flush_seconds after it was tracked, so nothing waits longer than with a busy flusher."""
    now = [1000.0]
    buffer = ProgressBuffer(db, EventHub(), flush_seconds=25, clock=lambda: now[0])
    row = claimed(db)
    now[0] += 10  # the flusher went to sleep at 1000 with no run tracked; it wakes at 1025
    buffer.track(execution_to_proto(row), row.attempt)
    buffer.report(row.id, row.attempt, dict_to_struct({"current_step": 1}))
    now[0] = 1025.0
    assert buffer.flush_due() == 0
    now[0] = 1035.0
    assert buffer.flush_due() == 1

"""`end_runs`, the one store call that ends runs whatever ended them (both backends)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.common.errors import FailedPrecondition, InvalidArgument, Reason
from services.common.vocabulary import DRAIN_INTERRUPTED_MESSAGE
from services.registry.convert import execution_to_proto
from services.registry.db import Database, utcnow
from services.registry.models import ExecutionRow
from services.registry.store import executions as store
from services.registry.store import manual_runs, run_history
from services.registry.store import tasks as task_store


def pending(
    db: Database,
    count: int,
    max_retries: int = 0,
    traceparent: str = "",
    config: dict[str, object] | None = None,
) -> list[int]:
    """Pending manual runs of a new task (with this config), in the trace `traceparent` when given."""
    now = utcnow()
    with db.session() as session:
        task = task_store.create_task(
            session,
            {
                "name": f"run_{uuid.uuid4().hex[:12]}",
                "task_type": "example_task",
                "max_retries": max_retries,
                "config": config or {},
            },
            "admin",
            "UTC",
            now,
        )
        new = store.NewExecution(
            task_id=task.id, trigger="manual", scheduled_time=now, traceparent=traceparent
        )
        return [store.create_execution(session, new, now)[0].id for _ in range(count)]


def running(db: Database, count: int = 1, max_retries: int = 0, traceparent: str = "") -> list[ExecutionRow]:
    """Runs as StartExecution leaves them: running, attempt 1, progress {"step": 1} stored;
    manual runs, in the trace `traceparent` when given."""
    now = utcnow()
    rows = []
    with db.session() as session:
        for execution_id in pending(db, count, max_retries, traceparent):
            row = store.claim_execution(session, execution_id, store.Claim("executor-test", now), now)
            store.write_progress(session, {row.id: (row.attempt, {"step": 1})})
            rows.append(row)
    return rows


def stored(db: Database, execution_id: int) -> ExecutionRow:
    with db.session() as session:
        return store.get_execution(session, execution_id)


def test_many_ends_with_their_start_at_hand_end_together_and_come_back_in_order(db: Database) -> None:
    rows = running(db, 3)
    now = utcnow()
    ends = [
        store.RunEnd(row.id, row.attempt, "success", {"done": row.id}, started=now - timedelta(seconds=2))
        for row in reversed(rows)
    ]
    with db.session() as session:
        ended = store.end_runs(session, ends, now)
    assert [run.row.id for run in ended] == [row.id for row in reversed(rows)]
    for run in ended:
        assert run.row.status == "success" and run.retry is None
        assert run.row.duration_seconds == 2.0 and run.row.result == {"done": run.row.id}
        assert stored(db, run.row.id).status == "success"


def test_an_end_without_its_start_merges_its_result_over_the_stored_progress(db: Database) -> None:
    [row] = running(db)
    with db.session() as session:
        [run] = store.end_runs(
            session, [store.RunEnd(row.id, row.attempt, "success", {"message": "ok"})], utcnow()
        )
    assert run.row.result == {"step": 1, "message": "ok"}
    assert stored(db, row.id).result == {"step": 1, "message": "ok"}


def test_a_failed_run_with_retries_left_gets_its_retry_on_either_path(db: Database) -> None:
    known, unknown = running(db, 2, max_retries=1)
    now = utcnow()
    with db.session() as session:
        ended = store.end_runs(
            session,
            [
                store.RunEnd(known.id, known.attempt, "failed", {}, "boom", started=now),
                store.RunEnd(unknown.id, unknown.attempt, "failed", {}, "boom"),
            ],
            now,
        )
    for run in ended:
        assert run.row.error_message == "boom" and run.retry is not None
        assert run.retry.trigger == "retry" and run.retry.status == "pending"


def test_a_retry_continues_its_failed_runs_trace_whichever_scheduler_picks_it_up(db: Database) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    [row] = running(db, max_retries=1, traceparent=traceparent)
    with db.session() as session:
        [run] = store.end_runs(session, [store.RunEnd(row.id, row.attempt, "failed", {}, "boom")], utcnow())
    assert run.retry is not None
    # Stored, so a scheduler that finds the retry in the database (after a failover) has it too.
    retry = execution_to_proto(stored(db, run.retry.id))
    assert retry.traceparent == traceparent
    assert retry.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_rerun_joins_the_trace_of_the_call_that_asked_for_it_not_its_originals(db: Database) -> None:
    [row] = running(db, traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    rerun_call = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with db.session() as session:
        store.end_runs(session, [store.RunEnd(row.id, row.attempt, "failed", {}, "boom")], utcnow())
        again = manual_runs.rerun_execution(session, row.id, True, utcnow(), rerun_call)
    assert execution_to_proto(stored(db, again.id)).traceparent == rerun_call


def test_an_end_that_lost_its_race_says_why(db: Database) -> None:
    [row] = running(db)
    with db.session() as session:
        store.end_runs(session, [store.RunEnd(row.id, row.attempt, "success", {})], utcnow())
    with db.session() as session, pytest.raises(FailedPrecondition) as ended_twice:
        store.end_runs(session, [store.RunEnd(row.id, row.attempt, "failed", {}, started=utcnow())], utcnow())
    assert ended_twice.value.reason == Reason.RUN_ALREADY_ENDED
    [other] = running(db)
    with db.session() as session, pytest.raises(FailedPrecondition) as stale:
        store.end_runs(session, [store.RunEnd(other.id, other.attempt + 1, "success", {})], utcnow())
    assert stale.value.reason == Reason.ATTEMPT_STALE


def test_one_stale_end_among_many_refuses_the_call_as_a_whole(db: Database) -> None:
    rows = running(db, 2)
    now = utcnow()
    ends = [
        store.RunEnd(rows[0].id, rows[0].attempt, "success", {}, started=now),
        store.RunEnd(rows[1].id, rows[1].attempt + 1, "success", {}, started=now),
    ]
    # Raised out of the transaction, which rolls back the others the statement ended.
    with pytest.raises(FailedPrecondition) as refused, db.session() as session:
        store.end_runs(session, ends, now)
    assert refused.value.reason == Reason.ATTEMPT_STALE
    assert [stored(db, row.id).status for row in rows] == ["running", "running"]


def test_an_end_status_must_be_final(db: Database) -> None:
    [row] = running(db)
    with db.session() as session, pytest.raises(InvalidArgument):
        store.end_runs(session, [store.RunEnd(row.id, row.attempt, "running", {})], utcnow())


def test_terminating_a_pending_run_ends_it(db: Database) -> None:
    [row] = running(db)
    with db.session() as session:
        task_id = row.task_id
        pending, _ = store.create_execution(
            session, store.NewExecution(task_id=task_id, trigger="manual", scheduled_time=utcnow()), utcnow()
        )
        ended, needs_stop = manual_runs.request_termination(session, pending.id, utcnow())
    assert not needs_stop and ended.status == "terminated" and ended.end_time is not None
    assert stored(db, pending.id).error_message == store.TERMINATED_BY_USER


def test_a_run_an_executors_drain_interrupted_is_handed_back_without_using_a_retry(db: Database) -> None:
    [row] = running(db, max_retries=0)
    now = utcnow()
    with db.session() as session:
        [run] = store.end_runs(
            session, [store.RunEnd(row.id, row.attempt, "failed", {}, DRAIN_INTERRUPTED_MESSAGE)], now
        )
    # No retries configured, yet it runs again at once, and its retry count is unchanged.
    assert run.retry is not None
    assert run.retry.trigger == "retry" and run.retry.status == "pending"
    assert run.retry.retry_count == 0 and run.retry.scheduled_time == now


def test_a_run_that_failed_on_its_own_without_retries_left_is_not_handed_back(db: Database) -> None:
    [row] = running(db, max_retries=0)
    with db.session() as session:
        [run] = store.end_runs(session, [store.RunEnd(row.id, row.attempt, "failed", {}, "boom")], utcnow())
    assert run.retry is None


def test_runs_claimed_together_each_get_their_answer_and_a_run_named_twice_is_claimed_once(
    db: Database,
) -> None:
    first, second, taken = pending(db, 3)
    now = utcnow()
    claim = store.Claim("executor-a", now + timedelta(seconds=15))
    with db.session() as session:
        store.claim_executions(session, [taken], claim, now)
    with db.session() as session:
        answers = store.claim_executions(session, [first, taken, 999_999, second, first], claim, now)
    assert [type(a).__name__ for a in answers] == [
        "ExecutionRow",
        "FailedPrecondition",
        "NotFound",
        "ExecutionRow",
        "FailedPrecondition",
    ]
    refused = answers[1]
    assert isinstance(refused, FailedPrecondition) and refused.reason == Reason.RUN_NOT_PENDING
    for execution_id in (first, second, taken):
        row = stored(db, execution_id)
        assert (row.status, row.executor, row.attempt) == ("running", "executor-a", 1)
        assert row.start_time is not None and row.lease_expires_at is not None


def test_adopting_takes_running_runs_over_as_a_new_attempt_and_refuses_pending_ones(db: Database) -> None:
    (runs,) = [running(db, 2)]
    (waiting,) = pending(db, 1)
    now = utcnow()
    with db.session() as session:
        answers = store.claim_executions(
            session, [r.id for r in runs] + [waiting], store.Claim("executor-b", now), now, adopt=True
        )
    assert [getattr(a, "attempt", None) for a in answers[:2]] == [2, 2]
    assert isinstance(answers[2], FailedPrecondition)
    row = stored(db, runs[0].id)
    assert (row.executor, row.start_time, row.result) == ("executor-b", runs[0].start_time, {"step": 1})
    assert stored(db, waiting).status == "pending"


def test_live_runs_are_read_oldest_first_a_page_after_the_last_id(db: Database) -> None:
    ids = pending(db, 5)
    (ended,) = running(db)
    with db.session() as session:
        store.end_runs(session, [store.RunEnd(ended.id, ended.attempt, "success", {})], utcnow())
        first = [row.id for row in run_history.active_executions(session, 3)]
        rest = [row.id for row in run_history.active_executions(session, 3, after_id=first[-1])]
    assert first + rest == ids  # the ended run is not live

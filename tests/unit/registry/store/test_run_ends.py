"""`end_runs`, the one store call that ends runs whatever ended them, and the retry a failure earns
(both backends)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.common.errors import FailedPrecondition, InvalidArgument, Reason
from services.common.vocabulary import DRAIN_INTERRUPTED_MESSAGE
from services.registry.convert import execution_to_proto
from services.registry.db import Database, utcnow
from services.registry.store import executions as store
from services.registry.store import manual_runs
from services.registry.store.run_ends import RunEnd, end_runs
from tests.unit.registry.store.test_executions import running, stored


def test_many_ends_with_their_start_at_hand_end_together_and_come_back_in_order(db: Database) -> None:
    rows = running(db, 3)
    now = utcnow()
    ends = [
        RunEnd(row.id, row.attempt, "success", {"done": row.id}, started=now - timedelta(seconds=2))
        for row in reversed(rows)
    ]
    with db.session() as session:
        ended = end_runs(session, ends, now)
    assert [run.row.id for run in ended] == [row.id for row in reversed(rows)]
    for run in ended:
        assert run.row.status == "success" and run.retry is None
        assert run.row.duration_seconds == 2.0 and run.row.result == {"done": run.row.id}
        assert stored(db, run.row.id).status == "success"


def test_an_end_without_its_start_merges_its_result_over_the_stored_progress(db: Database) -> None:
    [row] = running(db)
    with db.session() as session:
        [run] = end_runs(session, [RunEnd(row.id, row.attempt, "success", {"message": "ok"})], utcnow())
    assert run.row.result == {"step": 1, "message": "ok"}
    assert stored(db, row.id).result == {"step": 1, "message": "ok"}


def test_a_failed_run_with_retries_left_gets_its_retry_on_either_path(db: Database) -> None:
    known, unknown = running(db, 2, max_retries=1)
    now = utcnow()
    with db.session() as session:
        ended = end_runs(
            session,
            [
                RunEnd(known.id, known.attempt, "failed", {}, "boom", started=now),
                RunEnd(unknown.id, unknown.attempt, "failed", {}, "boom"),
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
        [run] = end_runs(session, [RunEnd(row.id, row.attempt, "failed", {}, "boom")], utcnow())
    assert run.retry is not None
    # Stored, so a scheduler that finds the retry in the database (after a failover) has it too.
    retry = execution_to_proto(stored(db, run.retry.id))
    assert retry.traceparent == traceparent
    assert retry.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_rerun_joins_the_trace_of_the_call_that_asked_for_it_not_its_originals(db: Database) -> None:
    [row] = running(db, traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    rerun_call = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with db.session() as session:
        end_runs(session, [RunEnd(row.id, row.attempt, "failed", {}, "boom")], utcnow())
        again = manual_runs.rerun_execution(session, row.id, True, utcnow(), rerun_call)
    assert execution_to_proto(stored(db, again.id)).traceparent == rerun_call


def test_an_end_that_lost_its_race_says_why(db: Database) -> None:
    [row] = running(db)
    with db.session() as session:
        end_runs(session, [RunEnd(row.id, row.attempt, "success", {})], utcnow())
    with db.session() as session, pytest.raises(FailedPrecondition) as ended_twice:
        end_runs(session, [RunEnd(row.id, row.attempt, "failed", {}, started=utcnow())], utcnow())
    assert ended_twice.value.reason == Reason.RUN_ALREADY_ENDED
    [other] = running(db)
    with db.session() as session, pytest.raises(FailedPrecondition) as stale:
        end_runs(session, [RunEnd(other.id, other.attempt + 1, "success", {})], utcnow())
    assert stale.value.reason == Reason.ATTEMPT_STALE


def test_one_stale_end_among_many_refuses_the_call_as_a_whole(db: Database) -> None:
    rows = running(db, 2)
    now = utcnow()
    ends = [
        RunEnd(rows[0].id, rows[0].attempt, "success", {}, started=now),
        RunEnd(rows[1].id, rows[1].attempt + 1, "success", {}, started=now),
    ]
    # Raised out of the transaction, which rolls back the others the statement ended.
    with pytest.raises(FailedPrecondition) as refused, db.session() as session:
        end_runs(session, ends, now)
    assert refused.value.reason == Reason.ATTEMPT_STALE
    assert [stored(db, row.id).status for row in rows] == ["running", "running"]


def test_an_end_status_must_be_final(db: Database) -> None:
    [row] = running(db)
    with db.session() as session, pytest.raises(InvalidArgument):
        end_runs(session, [RunEnd(row.id, row.attempt, "running", {})], utcnow())


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
        [run] = end_runs(session, [RunEnd(row.id, row.attempt, "failed", {}, DRAIN_INTERRUPTED_MESSAGE)], now)
    # No retries configured, yet it runs again at once, and its retry count is unchanged.
    assert run.retry is not None
    assert run.retry.trigger == "retry" and run.retry.status == "pending"
    assert run.retry.retry_count == 0 and run.retry.scheduled_time == now


def test_a_run_that_failed_on_its_own_without_retries_left_is_not_handed_back(db: Database) -> None:
    [row] = running(db, max_retries=0)
    with db.session() as session:
        [run] = end_runs(session, [RunEnd(row.id, row.attempt, "failed", {}, "boom")], utcnow())
    assert run.retry is None

"""A run's life up to its end in the store: claims, adoption and the live runs read page by page
(both backends). The helpers here make runs for the other store tests."""

from __future__ import annotations

import uuid
from datetime import timedelta

from services.common.errors import FailedPrecondition, Reason
from services.registry.db import Database, utcnow
from services.registry.models import ExecutionRow
from services.registry.store import executions as store
from services.registry.store import run_ends, run_history
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
        run_ends.end_runs(session, [run_ends.RunEnd(ended.id, ended.attempt, "success", {})], utcnow())
        first = [row.id for row in run_history.active_executions(session, 3)]
        rest = [row.id for row in run_history.active_executions(session, 3, after_id=first[-1])]
    assert first + rest == ids  # the ended run is not live


def test_runs_created_together_skip_a_key_that_has_its_run_and_come_back_whole_with_their_ids(
    db: Database,
) -> None:
    now = utcnow()
    with db.session() as session:
        task = task_store.create_task(
            session,
            {"name": f"many_{uuid.uuid4().hex[:12]}", "task_type": "example_task"},
            "admin",
            "UTC",
            now,
        )

        def values(key: str) -> dict[str, object]:
            new = store.NewExecution(
                task_id=task.id, trigger="schedule", scheduled_time=now, dedup_key=key, params={"n": key}
            )
            return store.execution_values(new, now)

        (first,) = store.create_executions(session, [values("k-1")]).values()
        created = store.create_executions(session, [values("k-1"), values("k-2"), values("k-3")])
    assert sorted(created) == ["k-2", "k-3"]  # k-1 had its run already
    ids = {row.id for row in created.values()}
    assert len(ids) == 2 and first.id not in ids
    for key, row in created.items():
        assert (row.task_id, row.status, row.dedup_key, row.params) == (task.id, "pending", key, {"n": key})
        assert row.created_at == now and row.result == {} and row.attempt == 0
        assert stored(db, row.id).dedup_key == key

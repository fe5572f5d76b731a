"""Claims in the scheduler's batch: runs claimed together for several executors each get the answer
their single StartExecution would have had, every claimed run is tracked for the lease reaper and
announced to its watchers, and claims share a transaction with the batch's creates."""

from __future__ import annotations

import secrets

import pytest

from services.common.errors import DomainError, Reason
from services.registry.app import RegistryApp
from services.registry.db import utcnow
from services.registry.runs.model import NewRun, Start, Started
from services.registry.runs.recorder import RunRecorder
from services.registry.store import executions as exec_store
from tests.unit.registry.store.test_executions import pending

pytestmark = pytest.mark.asyncio(loop_scope="function")


def pending_runs(app: RegistryApp, count: int) -> list[int]:
    return pending(app.db, count, config={"steps": 2})


async def test_claims_made_together_for_two_executors_each_get_their_own_answer(app: RegistryApp) -> None:
    recorder = RunRecorder(app)
    a, b, c, ended = pending_runs(app, 4)
    await recorder.start(Start(ended, "127.0.0.1:9"))
    with app.events.execution_feed(a) as watcher:
        outcomes = await recorder.record(
            [
                Start(a, "127.0.0.1:1"),
                Start(b, "127.0.0.1:2"),
                Start(ended, "127.0.0.1:1"),  # claimed before: refused, the others go on
                Start(c, "127.0.0.1:1"),
                Start(987_654, "127.0.0.1:2"),
            ]
        )
        assert watcher.get_nowait().status == "running"  # its watchers see it start
    started = [outcome for outcome in outcomes if isinstance(outcome, Started)]
    assert [s.execution.id for s in started] == [a, b, c]
    assert [s.execution.executor for s in started] == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"]
    assert all(s.attempt == 1 and s.execution.status == "running" for s in started)
    # The task as it is now, for the executor's Run call.
    assert all(s.task.config["steps"] == 2 and s.execution.task_name == s.task.name for s in started)
    refused, missing = outcomes[2], outcomes[4]
    assert isinstance(refused, DomainError) and refused.reason == Reason.RUN_NOT_PENDING
    assert isinstance(missing, DomainError) and missing.reason == Reason.EXECUTION_NOT_FOUND
    # Tracked: the reaper ends them if their executor goes silent.
    assert all(app.progress.get(run_id) is not None for run_id in (a, b, c))


async def test_a_batch_may_create_runs_and_claim_others_in_one_transaction(app: RegistryApp) -> None:
    recorder = RunRecorder(app)
    (waiting,) = pending_runs(app, 1)
    with app.db.session() as session:
        task_id = exec_store.get_execution(session, waiting).task_id
    new = NewRun(
        exec_store.NewExecution(
            task_id=task_id, trigger="schedule", scheduled_time=utcnow(), dedup_key=secrets.token_hex(8)
        )
    )
    created, claimed = await recorder.record([new, Start(waiting, "127.0.0.1:1")])
    assert isinstance(claimed, Started) and claimed.execution.id == waiting
    assert not isinstance(created, DomainError)
    with app.db.session() as session:
        assert exec_store.get_execution(session, waiting).status == "running"

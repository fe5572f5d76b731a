"""A RecordRuns batch whose caller goes away (a scheduler stepping down, a cancelled call) while it
is being stored: what it committed is published and tracked all the same, so a run created claimed
is reaped once its lease passes instead of staying `running` for ever (issue 11, item 2)."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from sqlalchemy import select

from services.registry.app import RegistryApp
from services.registry.db import utcnow
from services.registry.models import ExecutionRow
from services.registry.runs.model import NewRun, Start
from services.registry.runs.reaper import LeaseReaper
from services.registry.runs.recorder import RunRecorder
from services.registry.store import executions as exec_store
from tests.unit.registry.leaders import lead
from tests.unit.registry.runs.tasks import new_task_id
from tests.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="function")

LEASE_SECONDS = 1
BATCH = 12


def running_ids(app: RegistryApp, task_id: int) -> set[int]:
    with app.db.session() as session:
        rows = session.scalars(
            select(ExecutionRow.id).where(ExecutionRow.task_id == task_id, ExecutionRow.status == "running")
        )
        return set(rows)


def statuses(app: RegistryApp, task_id: int) -> list[str]:
    with app.db.session() as session:
        return list(session.scalars(select(ExecutionRow.status).where(ExecutionRow.task_id == task_id)))


async def test_a_batch_cancelled_while_stored_leaves_no_run_running_past_its_lease(app: RegistryApp) -> None:
    recorder = RunRecorder(app)
    reaper = LeaseReaper(app, recorder)
    lead(app)  # a scheduler leads (and renews, below): its silent runs are lost ones
    task_id = new_task_id(app)
    batch = [
        NewRun(
            exec_store.NewExecution(
                task_id=task_id, trigger="schedule", scheduled_time=utcnow(), dedup_key=secrets.token_hex(8)
            ),
            executor="127.0.0.1:1",
        )
        for _ in range(BATCH)
    ]
    call = asyncio.ensure_future(recorder.record(batch))
    await asyncio.sleep(0)  # the call is under way: its batch is being stored in a worker thread
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    # The batch commits in its thread although its caller left; its runs are reaped after their lease.
    await eventually(
        lambda: len(statuses(app, task_id)) == BATCH, "the batch to be stored", within=LEASE_SECONDS + 10
    )

    def none_running() -> bool:
        lead(app)  # the leader renews: known alive while the runs stay silent
        return not running_ids(app, task_id)

    await eventually(none_running, "no run left running", within=LEASE_SECONDS + 10, between=reaper.reap)
    # Every run the batch stored was reaped: failed (lost executor; a retry, if any, waits pending).
    assert statuses(app, task_id).count("failed") == BATCH


async def test_a_claim_whose_caller_went_away_is_still_tracked(app: RegistryApp) -> None:
    recorder = RunRecorder(app)
    task_id = new_task_id(app)
    with app.db.session() as session:
        row, _ = exec_store.create_execution(
            session,
            exec_store.NewExecution(task_id=task_id, trigger="manual", scheduled_time=utcnow()),
            utcnow(),
        )
        execution_id = row.id
    call = asyncio.ensure_future(recorder.start(Start(execution_id, "127.0.0.1:1")))
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await eventually(
        lambda: app.progress.get(execution_id) is not None,
        "the claimed run to be tracked",
        within=LEASE_SECONDS + 10,
    )

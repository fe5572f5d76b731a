"""The lease reaper fails a run as lost only when it stayed silent for a whole lease under a
scheduler leader known to be alive: silence while no scheduler leads, or while the leader itself
does not answer, is not the run's (its executor may still be running it)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.registry.app import RegistryApp
from services.registry.db import utcnow
from services.registry.live.progress import LiveRun
from services.registry.models import ExecutionRow
from services.registry.runs.model import Created, NewRun
from services.registry.runs.reaper import REAP_INTERVAL_SECONDS, LeaseReaper, lost_runs
from services.registry.runs.recorder import RunRecorder
from services.registry.store import executions as exec_store
from services.registry.store.leadership import Leadership
from tests.unit.registry.leaders import lead, step_down
from tests.unit.registry.runs.tasks import new_task_id
from zquant.scheduler.v1 import task_pb2

LEASE = 15
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def run(execution_id: int = 1) -> LiveRun:
    return LiveRun(snapshot=task_pb2.Execution(id=execution_id), attempt=1)


def leader(taken: float, renewed: float) -> Leadership:
    """A leader that took its term `taken` s after T0 and last renewed it `renewed` s after T0."""
    return Leadership(
        leader=True,
        holder="scheduler-a",
        term=1,
        expires_at=T0 + timedelta(seconds=renewed + 15),
        taken_at=T0 + timedelta(seconds=taken),
        renewed_at=T0 + timedelta(seconds=renewed),
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_run_silent_for_a_lease_under_a_live_leader_is_lost() -> None:
    silent = run()
    assert lost_runs([(silent, at(10))], leader(taken=0, renewed=25), LEASE) == [silent]


def test_no_run_is_lost_while_no_scheduler_leads() -> None:
    assert lost_runs([(run(), at(0))], None, LEASE) == []


def test_a_silence_the_leader_has_not_outlived_is_not_the_runs_fault() -> None:
    # The lease ran out at 25; the leader was last known alive at 24 (stuck since, say).
    assert lost_runs([(run(), at(10))], leader(taken=0, renewed=24), LEASE) == []


def test_a_new_leader_gives_every_silent_run_a_whole_lease_from_taking_office() -> None:
    # Silent since 0 (its scheduler died); the next leader took office at 40 and adopts runs.
    assert lost_runs([(run(), at(0))], leader(taken=40, renewed=50), LEASE) == []
    silent = run()
    assert lost_runs([(silent, at(0))], leader(taken=40, renewed=55), LEASE) == [silent]


def test_only_the_runs_silent_long_enough_are_lost() -> None:
    old, recent = run(1), run(2)
    assert lost_runs([(old, at(0)), (recent, at(20))], leader(taken=0, renewed=30), LEASE) == [old]


def test_a_leader_row_from_before_renewals_were_recorded_loses_nothing() -> None:
    unknown = Leadership(leader=True, holder="old-release", term=3, expires_at=at(100))
    assert lost_runs([(run(), at(0))], unknown, LEASE) == []


# ---- the reaper over a registry's database --------------------------------------------------


async def claimed_run(app: RegistryApp, recorder: RunRecorder) -> int:
    """A run created claimed for an executor (as a fire's is), tracked by the registry."""
    new = NewRun(
        exec_store.NewExecution(
            task_id=new_task_id(app),
            trigger="schedule",
            scheduled_time=utcnow(),
            dedup_key=secrets.token_hex(8),
        ),
        executor="127.0.0.1:1",
    )
    [created] = await recorder.record([new])
    assert isinstance(created, Created), created
    return created.execution.id


def status(app: RegistryApp, execution_id: int) -> str:
    with app.db.session() as session:
        return str(session.scalar(select(ExecutionRow.status).where(ExecutionRow.id == execution_id)))


@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.parametrize("app", [LEASE], indirect=True)
async def test_a_run_silent_while_no_scheduler_leads_waits_for_the_next_leader(app: RegistryApp) -> None:
    recorder = RunRecorder(app)
    reaper = LeaseReaper(app, recorder)
    execution_id = await claimed_run(app, recorder)
    tracked = app.progress.get(execution_id)
    assert tracked is not None
    lease = app.settings.lease_seconds

    # Silent for 100 leases, and no scheduler leads: the run stays running, and the reaper looks
    # again only a lease later (a leader taking office meanwhile gives the run a whole lease).
    tracked.last_seen -= 100 * lease
    assert await reaper.reap() == 0
    assert status(app, execution_id) == "running"
    assert reaper.seconds_to_sleep() > lease - 1 > REAP_INTERVAL_SECONDS

    # A scheduler takes office: the run has a whole lease from then to be adopted.
    lead(app)
    assert await reaper.reap() == 0
    assert status(app, execution_id) == "running"
    assert reaper.seconds_to_sleep() == REAP_INTERVAL_SECONDS  # until the leader's next renewal

    # The leader renews more than a lease later, the run still silent: now it is lost.
    lead(app, in_office_since=app.clock() - timedelta(seconds=lease + 1))
    try:
        assert await reaper.reap() == 1
        assert status(app, execution_id) == "failed"
    finally:
        step_down(app)

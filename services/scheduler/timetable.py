"""The timetable: APScheduler holding one job per schedulable task, with our triggers.

APScheduler only tells WHEN; its due run times are handed to `on_fire` (its own misfire grace,
coalescing and instance limits are off: the engine applies each task's rules and records what it
skips). A task placed from a live change fires from the moment the change was made, so a fire time
between the commit and its arrival here is due (or recorded as missed), never dropped; a task
placed from a snapshot fires from now on (the engine's catch-up covers its past).

Jobs are built the way APScheduler's own persistent job stores rebuild a stored job
(`Job.__setstate__`, with the function given rather than imported by name), not through
`add_job`: that checks the job function's signature and wakes the scheduler for every job, two
thirds of the time a 100,000-task snapshot took to apply (the function is ours and the same for
every job). One wakeup per loop turn serves every job placed in
it. The jobs are held in our SortedJobStore (job_store.py), whose placements do not move the
whole list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from services.scheduler.job_store import SortedJobStore
from services.scheduler.triggers import Schedule


def _job_marker(task_id: int) -> None:
    """APScheduler needs a job function; FireExecutor hands the run times to `on_fire` instead."""


_JOB_FUNCTION = f"{__name__}:{_job_marker.__name__}"
_STORE = "default"


class FireExecutor(BaseExecutor):  # type: ignore[misc]  # APScheduler ships no type hints
    """Receives every due run time of a job."""

    def __init__(self, on_fire: Callable[[int, datetime], None]) -> None:
        super().__init__()
        self._on_fire = on_fire

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        for run_time in run_times:
            self._on_fire(job.args[0], run_time)
        self._run_job_success(job.id, [])


class Timetable:
    def __init__(self, on_fire: Callable[[int, datetime], None]) -> None:
        self._store = SortedJobStore()
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            jobstores={_STORE: self._store},
            executors={"default": FireExecutor(on_fire)},
        )
        self._wakeup_due = False

    def start(self) -> None:
        self._aps.start()

    def shutdown(self) -> None:
        self._aps.shutdown(wait=False)

    def place(
        self,
        task_id: int,
        schedule: Schedule | None,
        *,
        changed_at: datetime | None,
        first: datetime | None = None,
    ) -> None:
        """(Re)places the task's job; `changed_at`: the live change's moment (None: from a snapshot,
        fires from now on); no job when `schedule` is None. `first`: the trigger's first fire time
        from now, when the caller knows it already. Call on the loop, once started."""
        self.remove(task_id)
        if schedule is None:
            return
        trigger = schedule.trigger()
        if first is not None:
            self._add(task_id, trigger, first)
            return
        if changed_at is None:
            first = trigger.get_next_fire_time(None, datetime.now(UTC))
        else:
            # Strictly after the change, like the catch-up window (since, now].
            first = trigger.get_next_fire_time(None, changed_at + timedelta(microseconds=1))
        if first is not None:  # no fire left: no job
            self._add(task_id, trigger, first)

    def remove(self, task_id: int) -> None:
        if self._store.lookup_job(str(task_id)) is not None:
            self._aps.remove_job(str(task_id), _STORE)

    def _add(self, task_id: int, trigger: BaseTrigger, first: datetime) -> None:
        # What Job.__setstate__ sets, with the job function given rather than imported by name.
        job = Job.__new__(Job)
        job.id = str(task_id)
        job.func_ref = _JOB_FUNCTION
        job.func = _job_marker
        job.trigger = trigger
        job.executor = "default"
        job.args = (task_id,)
        job.kwargs = {}
        job.name = _job_marker.__name__
        # Every due time reaches on_fire: the engine applies the task's own rules.
        job.misfire_grace_time = None
        job.coalesce = False
        job.max_instances = 1_000_000
        job.next_run_time = first
        job._scheduler = self._aps
        job._jobstore_alias = _STORE
        self._store.add_job(job)
        if not self._wakeup_due:
            self._wakeup_due = True
            asyncio.get_running_loop().call_soon(self._wake_up)

    def _wake_up(self) -> None:
        self._wakeup_due = False
        self._aps.wakeup()

"""The timetable: APScheduler holding one job per schedulable task, with our triggers.

APScheduler only tells WHEN; its due run times are handed to `on_fire` (its own misfire grace,
coalescing and instance limits are off: the engine applies each task's rules and records what it
skips). A task placed from a live change fires from the moment the change was made, so a fire time
between the commit and its arrival here is due (or recorded as missed), never dropped; a task
placed from a snapshot fires from now on (the engine's catch-up covers its past).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from services.scheduler.triggers import Schedule


def _job_marker(task_id: int) -> None:
    """APScheduler needs a job function; FireExecutor hands the run times to `on_fire` instead."""


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
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            executors={"default": FireExecutor(on_fire)},
            job_defaults={"coalesce": False, "misfire_grace_time": None, "max_instances": 1_000_000},
        )

    def start(self) -> None:
        self._aps.start()

    def shutdown(self) -> None:
        self._aps.shutdown(wait=False)

    def place(self, task_id: int, schedule: Schedule | None, *, changed_at: datetime | None) -> None:
        """(Re)places the task's job; `changed_at`: the live change's moment (None: from a snapshot,
        fires from now on); no job when `schedule` is None."""
        self.remove(task_id)
        if schedule is None:
            return
        trigger = schedule.trigger()
        if changed_at is None:
            self._aps.add_job(_job_marker, trigger, args=[task_id], id=str(task_id))
            return
        # Strictly after the change, like the catch-up window (since, now].
        first = trigger.get_next_fire_time(None, changed_at + timedelta(microseconds=1))
        if first is not None:  # (None would add a paused job)
            self._aps.add_job(_job_marker, trigger, args=[task_id], id=str(task_id), next_run_time=first)

    def remove(self, task_id: int) -> None:
        if self._aps.get_job(str(task_id)) is not None:
            self._aps.remove_job(str(task_id))

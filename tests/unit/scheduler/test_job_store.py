"""The scheduler's job store answers exactly as APScheduler's MemoryJobStore does, through any
sequence of adds, moves and removals (paused jobs, equal run times and unknown ids included)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.triggers.interval import IntervalTrigger

from services.scheduler.job_store import SortedJobStore

START = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


def job(job_id: str, next_run_time: datetime | None) -> Job:
    made = Job.__new__(Job)
    made.__setstate__(
        {
            "version": 1,
            "id": job_id,
            "func": "services.scheduler.timetable:_job_marker",
            "trigger": IntervalTrigger(seconds=60, timezone=UTC),
            "executor": "default",
            "args": (0,),
            "kwargs": {},
            "name": job_id,
            "misfire_grace_time": None,
            "coalesce": False,
            "max_instances": 1,
            "next_run_time": next_run_time,
        }
    )
    return made


def answers(store: Any, now: datetime) -> tuple[list[str], datetime | None, list[str]]:
    return (
        [j.id for j in store.get_due_jobs(now)],
        store.get_next_run_time(),
        [j.id for j in store.get_all_jobs()],
    )


def a_run_time(rng: random.Random) -> datetime | None:
    # Few distinct times, so that many jobs share one; now and then a paused job.
    return None if rng.random() < 0.1 else START + timedelta(seconds=rng.randrange(20))


@pytest.mark.parametrize("seed", range(5))
def test_any_sequence_of_changes_leaves_it_answering_as_memory_job_store_does(seed: int) -> None:
    rng = random.Random(seed)
    ours, theirs = SortedJobStore(), MemoryJobStore()
    for _ in range(2000):
        job_id = str(rng.randrange(60))
        action = rng.choice(("add", "update", "remove", "lookup"))
        run_time = a_run_time(rng)
        outcomes = []
        for store in (ours, theirs):
            try:
                if action == "add":
                    store.add_job(job(job_id, run_time))
                elif action == "update":
                    store.update_job(job(job_id, run_time))
                elif action == "remove":
                    store.remove_job(job_id)
                else:
                    found = store.lookup_job(job_id)
                    outcomes.append(found.id if found is not None else None)
                    continue
                outcomes.append("ok")
            except (ConflictingIdError, JobLookupError) as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes[0] == outcomes[1], (action, job_id)
        now = START + timedelta(seconds=rng.randrange(-1, 21))
        assert answers(ours, now) == answers(theirs, now)
    ours.remove_all_jobs()
    assert answers(ours, START + timedelta(days=1)) == ([], None, [])

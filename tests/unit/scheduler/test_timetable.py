"""The timetable: jobs placed from a snapshot or a live change fire at their schedule's times, each
due time once; a replaced or removed task's old job never fires. Real APScheduler on a real loop,
with 2 s intervals (the next due time is always seconds away from the one a test waits for)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from services.scheduler.timetable import Timetable
from services.scheduler.triggers import Schedule

INTERVAL = timedelta(seconds=2)


def every_interval(anchor: datetime) -> Schedule:
    return Schedule("", int(INTERVAL.total_seconds()), None, "UTC", anchor)


class Fires:
    """What the timetable handed to on_fire, in order; `wait(n)` returns once n have come."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, datetime]] = []
        self._enough = asyncio.Event()
        self._wanted = 0

    def __call__(self, task_id: int, planned: datetime) -> None:
        self.seen.append((task_id, planned))
        if len(self.seen) >= self._wanted:
            self._enough.set()

    async def wait(self, count: int) -> None:
        self._wanted = count
        if len(self.seen) < count:
            self._enough.clear()
            async with asyncio.timeout(10):
                await self._enough.wait()


@asynccontextmanager
async def running() -> AsyncIterator[tuple[Timetable, Fires]]:
    """A started timetable, up and idle (so that a placement has to wake it), and what it fires."""
    fired = Fires()
    timetable = Timetable(fired)
    timetable.start()
    await asyncio.sleep(0.05)
    try:
        yield timetable, fired
    finally:
        timetable.shutdown()


async def test_a_thousand_tasks_placed_from_a_snapshot_each_fire_once_at_their_next_planned_time() -> None:
    async with running() as (timetable, fired):
        anchor = datetime.now(UTC) - INTERVAL / 2  # first fires one interval after: a second from now
        for task_id in range(1, 1001):
            timetable.place(task_id, every_interval(anchor), changed_at=None)
        await fired.wait(1000)
    assert sorted(task_id for task_id, _ in fired.seen) == list(range(1, 1001))
    assert {planned for _, planned in fired.seen} == {anchor + INTERVAL}


async def test_a_live_change_fires_a_time_that_passed_since_the_change_and_a_snapshot_does_not() -> None:
    async with running() as (timetable, fired):
        # Changed 2.5 s ago: its first planned time (0.5 s ago) passed before the change arrived.
        changed = datetime.now(UTC) - INTERVAL - timedelta(seconds=0.5)
        timetable.place(1, every_interval(changed), changed_at=changed)
        timetable.place(2, every_interval(changed), changed_at=None)  # next: 1.5 s from now
        await fired.wait(1)
        await asyncio.sleep(0.2)
    assert fired.seen == [(1, changed + INTERVAL)]


async def test_a_replaced_or_removed_task_fires_only_on_its_current_schedule() -> None:
    async with running() as (timetable, fired):
        now = datetime.now(UTC)
        # First fires 0.8 s and 1.4 s from now.
        soon, later = now - INTERVAL + timedelta(seconds=0.8), now - INTERVAL + timedelta(seconds=1.4)
        timetable.place(1, every_interval(soon), changed_at=None)
        timetable.place(1, every_interval(later), changed_at=None)  # replaces the first job
        timetable.place(2, every_interval(soon), changed_at=None)
        timetable.remove(2)
        await fired.wait(1)
        await asyncio.sleep(0.2)
    assert fired.seen == [(1, later + INTERVAL)]

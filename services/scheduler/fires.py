"""What a fire becomes, once the timetable says a task is due (engine.py says when).

One fire per task at a time, so the overlap policy sees the run the previous fire started. Each fire
is decided by `fire_rules.py` (holiday, too late, overlap policy) and recorded through the ledger as
a skipped run with its reason, or started by the dispatcher as a run keyed by task + planned time
(so duplicates are impossible). The planned times missed while no scheduler ran go the same way,
by `fire_rules.catch_up_plan`. A fire beyond its calendar's data carries a note saying so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from services.common.calendars import UNCOVERED, TradingCalendar, uncovered_note
from services.common.metrics import FIRES
from services.scheduler.dispatch import Dispatcher
from services.scheduler.fire_rules import catch_up_plan, decide_fire
from services.scheduler.ledger import RunLedger
from services.scheduler.triggers import Schedule
from zquant.scheduler.v1 import task_pb2

log = logging.getLogger(__name__)


@dataclass
class TaskState:
    task: task_pb2.Task
    schedule: Schedule | None
    # The loaded data of the task's calendar (None: it names none): also for its runs'
    # `{{ prev_trading_day }}`, whatever started them.
    calendar: TradingCalendar | None = None


def uncovered(state: TaskState | None, planned: datetime) -> str:
    """The run's note when it fires beyond its calendar's data (the weekday policy applied):
    日历数据未覆盖 with where the data ends, shown in the history; logged too. "" otherwise."""
    calendar = state.calendar if state is not None else None
    if state is None or calendar is None:
        return ""
    note = uncovered_note(calendar, [planned], ZoneInfo(state.task.timezone or "UTC"))
    if note:
        log.warning(
            "fired on a weekday beyond the calendar's data",
            extra={
                "task_id": state.task.id,
                "mark": UNCOVERED,
                "calendar": calendar.name,
                "data_end": str(calendar.covered_until),
            },
        )
    return note


class Fires:
    def __init__(
        self,
        ledger: RunLedger,
        dispatcher: Dispatcher,
        state_of: Callable[[int], TaskState | None],
        clock: Callable[[], datetime],
    ) -> None:
        self._ledger = ledger
        self._dispatcher = dispatcher
        self._state_of = state_of
        self._clock = clock
        self._locks: dict[int, asyncio.Lock] = {}

    def forget(self, task_id: int) -> None:
        """The task is gone: its lock goes too."""
        self._locks.pop(task_id, None)

    async def fire(self, task_id: int, planned: datetime, now: datetime) -> None:
        """The task's fire planned at `planned`, seen `now`: skipped with its reason, or started."""
        lock = self._locks.get(task_id)
        if lock is None:  # not setdefault: that would build a Lock on every fire
            lock = self._locks[task_id] = asyncio.Lock()
        async with lock:
            await self._decide(task_id, planned, now)

    async def catch_up(self, task: task_pb2.Task, missed: list[datetime], left_out: int) -> None:
        """Records the planned times that passed while no scheduler ran (see fire_rules)."""
        for planned, skipped_because in catch_up_plan(task, missed, left_out, self._clock()):
            if skipped_because:
                await self._ledger.record_fire(task, planned, skipped_because=skipped_because)
            else:
                await self._dispatcher.start(task, planned, uncovered(self._state_of(task.id), planned))

    async def _decide(self, task_id: int, planned: datetime, now: datetime) -> None:
        state = self._state_of(task_id)
        if state is None or state.schedule is None:
            return
        task = state.task
        active = self._dispatcher.active(task_id)
        decision = decide_fire(task, state.schedule, planned, now, previous_running=bool(active))
        FIRES.labels(decision.outcome).inc()
        if decision.skipped_because:
            await self._ledger.record_fire(task, planned, skipped_because=decision.skipped_because)
            return
        if decision.replace_running:
            for execution_id in active:
                await self._dispatcher.terminate(execution_id)
        note = uncovered(state, planned) if decision.beyond_calendar else ""
        await self._dispatcher.start(task, planned, note)

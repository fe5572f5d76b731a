"""What a fire becomes: the note of a fire beyond its calendar's data (the decisions themselves are
fire_rules.py's, tested in test_fire_rules.py; fires end to end in test_engine.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.common.calendars import TradingCalendar
from services.scheduler.fires import TaskState, uncovered
from zquant.scheduler.v1 import task_pb2


def test_a_fire_beyond_its_calendars_data_carries_the_uncovered_note_and_one_within_none() -> None:
    weekdays = frozenset(date(2026, 12, 1) + timedelta(days=n) for n in range(31))
    calendar = TradingCalendar("XSHG", weekdays, date(2026, 12, 1), date(2026, 12, 31))
    task = task_pb2.Task(id=7, cron_expression="0 10 * * *", timezone="Asia/Shanghai", calendar="XSHG")
    state = TaskState(task=task, schedule=None, calendar=calendar)
    beyond = uncovered(state, datetime(2027, 1, 4, 10, 0, tzinfo=UTC))
    assert beyond.startswith("日历数据未覆盖") and "2026-12-31" in beyond
    # 2026-12-31 23:30 UTC is already 1 January in Shanghai, the task's zone.
    assert uncovered(state, datetime(2026, 12, 31, 23, 30, tzinfo=UTC)).startswith("日历数据未覆盖")
    assert uncovered(state, datetime(2026, 12, 31, 9, 0, tzinfo=UTC)) == ""
    assert uncovered(TaskState(task=task, schedule=None), datetime(2027, 1, 4, tzinfo=UTC)) == ""

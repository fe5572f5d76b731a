"""Trading calendars through the real stack (both backends): tasks naming a calendar, custom
calendars managed at /api/v1/scheduler/calendars and picked up by the scheduler like task changes,
the cron preview with a calendar, and bad input refused with its reason, storing nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.common.calendars import builtin_calendar
from services.common.schedule import Timing
from tests.integration.api import Api, error, parse_time, unique
from tests.waiting import wait_for

SHANGHAI = ZoneInfo("Asia/Shanghai")


def calendars(api: Api) -> dict[str, dict[str, Any]]:
    return {calendar["name"]: calendar for calendar in api.ok("GET", "/calendars")["calendars"]}


def test_an_unknown_calendar_is_refused_with_its_reason_and_nothing_is_created(admin: Api) -> None:
    name = unique("cal")
    response = admin.post(
        "/tasks",
        json={"name": name, "task_type": "example_task", "cron_expression": "0 18 * * *", "calendar": "NOPE"},
    )
    error(response, 400, contains="NOPE", reason="CALENDAR_UNKNOWN")
    assert admin.ok("GET", "/tasks", params={"name": name})["tasks"] == []
    preview = admin.get("/cron/preview", params={"cron_expression": "0 18 * * *", "calendar": "NOPE"})
    error(preview, 400, reason="CALENDAR_UNKNOWN")
    bad_base = admin.post("/calendars", json={"name": name, "base": "NOPE"})
    error(bad_base, 400, reason="CALENDAR_UNKNOWN")
    bad_date = admin.post("/calendars", json={"name": name, "base": "XSHG", "removed_dates": ["2026-13-01"]})
    error(bad_date, 400, contains="2026-13-01", reason="CALENDAR_INVALID")
    error(admin.post("/calendars", json={"name": "XSHG", "base": "XSHG"}), 409, reason="CALENDAR_NAME_TAKEN")
    assert name not in calendars(admin)


def test_the_preview_with_xshg_lists_its_sessions_and_marks_those_beyond_its_data(admin: Api) -> None:
    params = {"cron_expression": "0 18 * * *", "timezone": "Asia/Shanghai", "calendar": "XSHG", "count": 50}
    preview = admin.ok("GET", "/cron/preview", params=params)
    times = [parse_time(text) for text in preview["next_run_times"]]
    xshg = builtin_calendar("XSHG")
    expected = Timing("0 18 * * *", 0, None, "Asia/Shanghai", times[0], xshg).planned_between(
        times[0] - timedelta(microseconds=1), times[-1], 50
    )[0]
    assert times == expected
    assert all(xshg.is_session(moment.astimezone(SHANGHAI).date()) for moment in times)
    assert preview["calendar_data_end"] == "2026-12-31"
    beyond = any(moment.astimezone(SHANGHAI).date() > date(2026, 12, 31) for moment in times)
    assert preview["calendar_note"].startswith("日历数据未覆盖") == beyond
    assert calendars(admin)["XSHG"]["data_end"] == "2026-12-31"


def test_a_custom_holiday_added_through_the_api_stops_the_next_fire(admin: Api) -> None:
    today = datetime.now(UTC).date().isoformat()
    name = unique("CAL")
    # Today made a session whatever the weekday, so the task fires now.
    created = admin.ok("POST", "/calendars", json={"name": name, "base": "XSHG", "added_dates": [today]})
    assert created["source"] == "custom" and created["added_dates"] == [today]
    task = admin.create_task(
        name=unique(),
        cron_expression="*/2 * * * * *",
        timezone="UTC",
        calendar=name,
        calendar_holidays="record",
        concurrency_policy="allow",
    )
    assert task["calendar"] == name and task["calendar_holidays"] == "record"
    assert parse_time(task["next_run_time"]).date().isoformat() == today

    def ran() -> bool:
        return any(run["status"] != "skipped" for run in admin.executions(task["id"], limit=20))

    wait_for(ran, 30, "a run on a session")

    changed = admin.ok("PUT", f"/calendars/{name}", json={"base": "XSHG", "removed_dates": [today]})
    assert changed["removed_dates"] == [today] and changed["added_dates"] == []
    next_run = parse_time(admin.ok("GET", f"/tasks/{task['id']}")["next_run_time"])
    assert next_run.date().isoformat() > today

    def holiday_recorded() -> bool:
        runs = admin.executions(task["id"], limit=20)
        return any(run["status"] == "skipped" and run["error_message"] == "非交易日" for run in runs)

    # The scheduler picked up the change: today's fires are recorded as skipped (非交易日).
    wait_for(holiday_recorded, 30, "a fire on the new holiday recorded as skipped")
    preview = admin.ok(
        "GET",
        "/cron/preview",
        params={"cron_expression": "*/2 * * * * *", "timezone": "UTC", "calendar": name},
    )
    assert parse_time(preview["next_run_times"][0]) == next_run

    error(admin.delete(f"/calendars/{name}"), 409, reason="CALENDAR_IN_USE")
    admin.ok("DELETE", f"/tasks/{task['id']}", params={"force": "true"})
    admin.ok("DELETE", f"/calendars/{name}")
    assert name not in calendars(admin)


def test_only_an_admin_changes_calendars_and_any_role_lists_them(viewer: Api) -> None:
    error(viewer.post("/calendars", json={"name": unique("CAL"), "base": "XSHG"}), 403)
    assert "XSHG" in calendars(viewer)

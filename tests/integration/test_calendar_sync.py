"""A trading calendar's data moved by data_sync_trading_calendar through the real stack (both
backends): the sessions the run fetched (from recorded provider data) become the calendar's data,
so the calendar list's data end, the cron preview and the scheduler's own calendar (its
zq_calendar_data_end_timestamp_seconds) move with the run, like after an admin's change. And the
calendar_data_ending alert event: sent once per calendar and data end, for a calendar an enabled
task uses (the warning horizon is set to 100 years here, so the test does not depend on today's
date; the default is 30 days).

The provider data here stands for what a provider publishes once the State Council announces next
year's holidays: XSHG for the first half of 2027, with holidays chosen by this test (the real 2027
calendar is not published yet); the library knows XSHG only through 2026."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from time import sleep
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from stack import Stack
from tests.conftest import BACKENDS, database_url
from tests.integration.api import Api, parse_time, unique
from tests.integration.conftest import ADMIN_PASSWORD, start_stack, stop_and_check
from tests.receivers import HttpReceiver, http_receiver
from tests.waiting import wait_for

SHANGHAI = ZoneInfo("Asia/Shanghai")
LIBRARY_END = date(2026, 12, 31)
SYNCED_START, SYNCED_END = date(2027, 1, 1), date(2027, 6, 30)
# Weekdays without a session in the provider's (test) data: New Year, a Spring Festival week,
# Qingming, Labour Day.
HOLIDAYS_2027 = {
    date(2027, 1, 1),
    *(date(2027, 2, day) for day in range(8, 13)),
    date(2027, 4, 5),
    *(date(2027, 5, day) for day in range(3, 6)),
}


def sessions_2027() -> list[date]:
    days = (SYNCED_START + timedelta(days=n) for n in range((SYNCED_END - SYNCED_START).days + 1))
    return [day for day in days if day.weekday() < 5 and day not in HOLIDAYS_2027]


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"calendar-sync-{request.param}")
    recorded = tmp / "recorded"
    recorded.mkdir()
    (recorded / "stocks.json").write_text("[]")
    (recorded / "trading_days.json").write_text(json.dumps([day.isoformat() for day in sessions_2027()]))
    with database_url(request.param, str(tmp)) as url:
        stack = start_stack(
            Path(tmp),
            url,
            executors=1,
            metrics=True,
            extra_env={
                "ZQ_DATA_SYNC_RECORDED_DIR": str(recorded),
                "ZQ_CALENDAR_WARN_DAYS": "36500",
                "ZQ_HOUSEKEEPING_SECONDS": "0.5",
            },
        )
        try:
            yield stack
        finally:
            stop_and_check(stack)


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Api:
    return Api.login(stack.http_url, "admin", ADMIN_PASSWORD)


def xshg(api: Api) -> dict[str, Any]:
    listed: dict[str, Any] = next(c for c in api.ok("GET", "/calendars")["calendars"] if c["name"] == "XSHG")
    return listed


def scheduler_data_end(stack: Stack) -> float:
    """The leading scheduler's zq_calendar_data_end_timestamp_seconds{calendar="XSHG"} (0: none)."""
    port = stack.config.metrics_ports[stack.config.scheduler_names[0]]
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = re.search(
        r'^zq_calendar_data_end_timestamp_seconds\{calendar="XSHG"\} (\S+)$', body, re.MULTILINE
    )
    return float(found.group(1)) if found else 0.0


def end_stamp(day: date) -> float:
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC).timestamp()


def preview(api: Api, calendar: str) -> dict[str, Any]:
    params = {
        "cron_expression": "0 18 * * *",
        "timezone": "Asia/Shanghai",
        "calendar": calendar,
        "count": 50,
    }
    found: dict[str, Any] = api.ok("GET", "/cron/preview", params=params)
    return found


def test_a_trading_calendar_sync_beyond_the_data_end_moves_it_for_the_list_the_preview_and_the_scheduler(
    stack: Stack, admin: Api
) -> None:
    # An enabled task on XSHG: the scheduler loads the calendar (through 2026, the library's data).
    admin.create_task(name=unique("daily"), cron_expression="0 18 * * *", calendar="XSHG", enabled=True)
    # A custom calendar on XSHG with a company holiday in the synced range.
    company = unique("CO")
    admin.ok("POST", "/calendars", json={"name": company, "base": "XSHG", "removed_dates": ["2027-03-01"]})
    assert xshg(admin)["data_end"] == LIBRARY_END.isoformat()
    wait_for(lambda: scheduler_data_end(stack) == end_stamp(LIBRARY_END), 30, "the scheduler's XSHG")
    assert preview(admin, "XSHG")["calendar_data_end"] == LIBRARY_END.isoformat()

    sync = admin.create_task(
        name=unique("calendar-sync"),
        task_type="data_sync_trading_calendar",
        config={
            "provider": "recorded",
            "calendar": "XSHG",
            "start_date": SYNCED_START.isoformat(),
            "end_date": SYNCED_END.isoformat(),
        },
    )
    execution_id = admin.ok("POST", f"/tasks/{sync['id']}/trigger")["execution_id"]
    run = admin.wait_execution(sync["id"], execution_id, timeout=60)
    assert run["status"] == "success", run
    assert run["result"]["count"] == len(sessions_2027())
    assert sorted(run["result"]["holidays"]) == sorted(day.isoformat() for day in HOLIDAYS_2027)

    # The calendar list, the preview and the scheduler all use the synced sessions.
    wait_for(lambda: xshg(admin)["data_end"] == SYNCED_END.isoformat(), 30, "XSHG's data end to move")
    wait_for(lambda: scheduler_data_end(stack) == end_stamp(SYNCED_END), 30, "the scheduler's XSHG to move")
    shown = preview(admin, "XSHG")
    assert shown["calendar_data_end"] == SYNCED_END.isoformat()
    days = [parse_time(text).astimezone(SHANGHAI).date() for text in shown["next_run_times"]]
    in_2027 = [day for day in days if SYNCED_START <= day <= SYNCED_END]
    assert in_2027, days
    assert in_2027 == [day for day in sessions_2027() if day <= in_2027[-1]]
    # Custom calendars on XSHG get the synced data too, with their own dates on top.
    custom = next(c for c in admin.ok("GET", "/calendars")["calendars"] if c["name"] == company)
    assert custom["data_end"] == SYNCED_END.isoformat()
    custom_days = [
        parse_time(text).astimezone(SHANGHAI).date() for text in preview(admin, company)["next_run_times"]
    ]
    assert date(2027, 1, 1) not in custom_days and date(2027, 1, 4) in custom_days


def test_a_calendar_whose_data_ends_soon_alerts_its_tasks_rule_once_per_data_end(
    admin: Api, receiver: HttpReceiver
) -> None:
    hong_kong = admin.create_task(
        name=unique("hk"), cron_expression="0 18 * * *", calendar="XHKG", enabled=True
    )
    path = f"/{unique('calendar-hook')}"
    hook = admin.ok(
        "POST",
        "/api/v1/alerts/channels",
        json={"name": unique("hook"), "type": "webhook", "config": {"url": receiver.url(path)}},
    )
    rule = {
        "name": unique("rule"),
        "events": ["calendar_data_ending"],
        "channel_ids": [hook["id"]],
        "task_id": hong_kong["id"],
    }
    admin.ok("POST", "/api/v1/alerts/rules", json=rule)

    [message] = wait_for(lambda: receiver.messages(path), 30, "the calendar_data_ending message")
    xhkg = next(c for c in admin.ok("GET", "/calendars")["calendars"] if c["name"] == "XHKG")
    assert message.body["event"] == "calendar_data_ending"
    assert message.body["calendar"] == "XHKG" and message.body["data_end"] == xhkg["data_end"]
    assert message.body["task_names"] == [hong_kong["name"]]
    assert "XHKG" in message.body["title"] and xhkg["data_end"] in message.body["text"]
    # Passes go on every 0.5 s: the same calendar and data end are not sent again.
    sleep(3)
    assert len(receiver.messages(path)) == 1
    delivered = admin.ok("GET", "/api/v1/alerts/deliveries", params={"channel_id": hook["id"]})["deliveries"]
    assert [(d["event"], d["state"]) for d in delivered] == [("calendar_data_ending", "sent")]
    bad = admin.post(
        "/api/v1/alerts/rules", json={**rule, "name": unique("bad"), "events": ["calendar_ending"]}
    )
    assert (bad.status_code, bad.json()["reason"]) == (400, "ALERT_RULE_INVALID")

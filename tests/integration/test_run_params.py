"""A run's logical date and parameters through the real stack (issue 13): a trigger with params and
a logical date reaches the job (config templates, ZQ_LOGICAL_DATE, the merged config) and the
history; old trigger calls keep working; bad input is a 400 with its reason and creates nothing.

Data-sync runs (same stack, so no second one is started): data_sync_all_daily_data over 50 recorded
symbols into the scheduler's own database, progress per symbol, a kill -9 of its executor mid-run,
the retry for the same logical date resuming from the symbols not yet done, and a re-run of the day
(params resume: false) that rewrites the very same rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, func, select

from services.common.db_url import normalize_url
from services.executor.data_sync import store
from stack import Stack
from tests.integration.api import Api, error, finished, unique
from tests.waiting import wait_for

ECHO = 'echo "date=$ZQ_LOGICAL_DATE symbol=$SYMBOL arg=$1"'
PREVIOUS = 'echo "prev=$ZQ_PREV_TRADING_DAY arg=$1"'


def echo_task(admin: Api, **fields: Any) -> dict[str, Any]:
    return admin.create_task(
        name=unique("params"),
        task_type="common_task",
        timezone="Asia/Shanghai",
        config={"command": ["sh", "-c", ECHO, "sh", "{{ logical_date_nodash }}"], "env": {"SYMBOL": "all"}},
        **fields,
    )


def test_a_trigger_with_params_and_a_logical_date_runs_the_job_for_that_date_with_those_params(
    admin: Api,
) -> None:
    task = echo_task(admin)
    body = {"params": {"env": {"SYMBOL": "600000"}}, "logical_date": "2024-01-02"}
    triggered = admin.ok("POST", f"/tasks/{task['id']}/trigger", json=body)
    run = admin.wait_execution(task["id"], triggered["execution_id"])
    assert run["status"] == "success", run
    assert run["result"]["stdout_tail"].strip() == "date=2024-01-02 symbol=600000 arg=20240102"
    assert run["logical_date"] == "2024-01-02"
    assert run["params"] == {"env": {"SYMBOL": "600000"}}
    listed = admin.executions(task["id"])[0]
    assert (listed["logical_date"], listed["params"]) == ("2024-01-02", {"env": {"SYMBOL": "600000"}})


def test_prev_trading_day_is_the_session_before_the_logical_date_by_the_tasks_calendar(admin: Api) -> None:
    config = {"command": ["sh", "-c", PREVIOUS, "sh", "{{ prev_trading_day_nodash }}"]}
    by_xshg = admin.create_task(
        name=unique("prev"),
        task_type="common_task",
        cron_expression="0 18 * * *",
        calendar="XSHG",
        config=config,
    )
    by_weekday = admin.create_task(name=unique("prev"), task_type="common_task", config=config)
    # The first trading day after Spring Festival 2024 (9 to 17 February closed): 8 February by XSHG;
    # without a calendar the previous weekday, Friday 16 February.
    for task, expected in ((by_xshg, "2024-02-08"), (by_weekday, "2024-02-16")):
        body = {"logical_date": "2024-02-19"}
        triggered = admin.ok("POST", f"/tasks/{task['id']}/trigger", json=body)
        run = admin.wait_execution(task["id"], triggered["execution_id"])
        assert run["status"] == "success", run
        assert run["result"]["stdout_tail"].strip() == f"prev={expected} arg={expected.replace('-', '')}"


def test_a_trigger_without_a_body_is_for_today_in_the_tasks_zone_with_the_tasks_own_config(
    admin: Api,
) -> None:
    task = echo_task(admin)
    before = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()
    triggered = admin.ok("POST", f"/tasks/{task['id']}/trigger")
    run = admin.wait_execution(task["id"], triggered["execution_id"])
    after = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()
    assert run["status"] == "success", run
    assert run["logical_date"] in (before.isoformat(), after.isoformat())
    day = run["logical_date"]
    assert run["result"]["stdout_tail"].strip() == f"date={day} symbol=all arg={day.replace('-', '')}"
    assert run["params"] == {}


def test_bad_params_or_logical_dates_are_refused_with_their_reason_and_create_no_run(
    admin: Api, operator: Api
) -> None:
    task = echo_task(admin)
    path = f"/tasks/{task['id']}/trigger"
    refused = [
        (admin, {"params": ["not", "an", "object"]}, "RUN_PARAMS_INVALID"),
        (admin, {"params": "x=1"}, "RUN_PARAMS_INVALID"),
        (admin, {"params": {"env": {"D": "{{ yesterday }}"}}}, "TEMPLATE_INVALID"),
        (admin, {"params": {"env": "not an object"}}, "RUN_PARAMS_INVALID"),
        (admin, {"logical_date": "2024-02-30"}, "RUN_PARAMS_INVALID"),
        (admin, {"logical_date": 20240102}, "RUN_PARAMS_INVALID"),
        (admin, {"parameters": {}}, "INVALID_ARGUMENT"),
        (operator, {"params": {"command": ["rm", "-rf", "/"]}}, "RUN_PARAMS_INVALID"),
    ]
    for api, body, reason in refused:
        response = api.post(path, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["reason"] == reason, (body, response.text)
    assert admin.executions(task["id"]) == []


def test_an_unknown_template_variable_in_a_config_is_refused_when_the_task_is_saved(admin: Api) -> None:
    name = unique("template")
    config = {"command": "echo {{ logical_date }} {{ next_trading_day }}"}
    response = admin.post("/tasks", json={"name": name, "task_type": "common_task", "config": config})
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "TEMPLATE_INVALID"
    assert "next_trading_day" in response.json()["detail"]
    assert all(task["name"] != name for task in admin.ok("GET", "/tasks", params={"limit": 100})["tasks"])


# ---- data-sync runs -------------------------------------------------------------------------------

LOGICAL_DATE = "2024-01-15"
SYMBOLS = 50
LOST = "执行器失联"


@pytest.fixture(scope="module")
def target(stack: Stack) -> Iterator[Engine]:
    """The stack's own database: where data-sync jobs write by default."""
    engine = create_engine(normalize_url(stack.database_url))
    yield engine
    engine.dispose()


def checkpoints(engine: Engine, task_id: int) -> dict[str, tuple[str, int]]:
    c = store.checkpoints.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.symbol, c.status, c.fetches).where(c.task_id == task_id))
        return {row.symbol: (row.status, row.fetches) for row in rows}


def bars(engine: Engine) -> list[tuple[Any, ...]]:
    columns = [column for column in store.daily_bars.c if column.name != "updated_at"]
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(*columns).order_by(*store.daily_bars.primary_key))]


def executor_name(stack: Stack, address: str) -> str:
    names = {f"127.0.0.1:{port}": f"executor-{i}" for i, port in enumerate(stack.ports.executors)}
    assert address in names, f"the run is on {address!r}, not one of {sorted(names)}"
    return names[address]


def test_a_bad_data_sync_config_is_refused_on_save_with_its_reason(admin: Api) -> None:
    body = {"name": unique("sync"), "task_type": "data_sync_daily_data", "config": {"symbol": "12345"}}
    detail = error(admin.post("/tasks", json=body), 400, reason="TASK_INVALID")
    assert "股票代码无效: 12345" in detail
    assert not admin.ok("GET", "/tasks", params={"name": body["name"]})["tasks"]


def test_a_whole_market_sync_resumes_after_its_executor_is_killed_and_a_rerun_is_idempotent(
    stack: Stack, admin: Api, target: Engine
) -> None:
    config = {"provider": "recorded", "start_date": "2024-01-02", "fetch_delay_seconds": 0.15}
    task = admin.create_task(
        name=unique("sync"),
        task_type="data_sync_all_daily_data",
        config=config,
        max_retries=1,
        retry_interval=1,
    )
    task_id = task["id"]
    path = f"/tasks/{task_id}/executions"
    first_id = admin.ok("POST", f"/tasks/{task_id}/trigger", json={"logical_date": LOGICAL_DATE})[
        "execution_id"
    ]

    # Progress per symbol: the run reports the symbol it finished and how many of the 50 are done.
    steps: set[int] = set()

    def under_way() -> dict[str, Any] | None:
        run: dict[str, Any] = admin.ok("GET", f"{path}/{first_id}")
        result = run.get("result") or {}
        if run["status"] == "running" and result.get("current_item"):
            assert result["total_steps"] == SYMBOLS, result
            steps.add(result["current_step"])
        return run if len(steps) >= 3 and len(checkpoints(target, task_id)) >= 5 else None

    run = wait_for(under_way, 30, "the sync to be a few symbols in")
    stack.kill(executor_name(stack, run["executor"]))
    try:
        before = checkpoints(target, task_id)
        done_before = {symbol for symbol, (status, _) in before.items() if status == "done"}
        assert 3 <= len(done_before) < SYMBOLS, before

        lost = admin.wait_execution(task_id, first_id, timeout=30)
        assert lost["status"] == "failed" and LOST in lost["error_message"], lost
        runs = wait_for(
            lambda: (
                (found := admin.executions(task_id))
                and len(found) == 2
                and all(map(finished, found))
                and found
            ),
            40,
            "the retry to finish",
        )
        retry = next(execution for execution in runs if execution["id"] != first_id)
        assert (retry["trigger"], retry["status"], retry["logical_date"]) == (
            "retry",
            "success",
            LOGICAL_DATE,
        ), retry
        result = retry["result"]
        assert result["resumed_count"] == len(done_before), result
        assert result["success_count"] == SYMBOLS - len(done_before), result
        assert result["current_step"] == result["total_steps"] == SYMBOLS, result
    finally:
        stack.start_service(executor_name(stack, run["executor"]))

    after = checkpoints(target, task_id)
    assert len(after) == SYMBOLS and {status for status, _ in after.values()} == {"done"}
    # Finished symbols were not fetched again; at most the one in flight at the kill was.
    assert all(after[symbol][1] == 1 for symbol in done_before), after
    assert sum(fetches for _, fetches in after.values()) <= SYMBOLS + 1, after
    with target.connect() as conn:
        assert conn.execute(select(func.count()).select_from(store.daily_bars)).scalar_one() == SYMBOLS * 10
    stored = bars(target)

    # A re-run of the day that syncs every symbol again writes the very same rows.
    rerun_id = admin.ok(
        "POST",
        f"/tasks/{task_id}/trigger",
        json={"logical_date": LOGICAL_DATE, "params": {"resume": False, "fetch_delay_seconds": 0}},
    )["execution_id"]
    rerun = admin.wait_execution(task_id, rerun_id, timeout=30)
    assert rerun["status"] == "success" and rerun["result"]["success_count"] == SYMBOLS, rerun
    assert bars(target) == stored
    assert {symbol: fetches for symbol, (_, fetches) in checkpoints(target, task_id).items()} == {
        symbol: fetches + 1 for symbol, (_, fetches) in after.items()
    }

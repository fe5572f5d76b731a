"""GET /api/v1/scheduler/status through Envoy against the real stack: the leading scheduler, the
runs waiting, and what a trigger answers while no scheduler leads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stack import Stack
from tests.conftest import database_url
from tests.integration.api import Api, unique
from tests.integration.conftest import ADMIN_PASSWORD, start_stack
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Its own stack: the test stops the scheduler."""
    tmp: Path = tmp_path_factory.mktemp("status-stack")
    with database_url("sqlite", str(tmp)) as url:
        stack = start_stack(tmp, url, executors=1)
        try:
            yield stack
        finally:
            stack.stop()


def status(api: Api) -> dict[str, object]:
    result: dict[str, object] = api.ok("GET", "/status")
    return result


def test_status_follows_the_scheduler_and_the_trigger_says_when_none_leads(stack: Stack) -> None:
    admin = Api.login(stack.http_url, "admin", ADMIN_PASSWORD)
    scheduler = stack.config.scheduler_names[0]
    up = wait_for(lambda: (s := status(admin))["scheduler_up"] and s, 10, "a leading scheduler")
    assert up["leader"] and up["lease_expires_at"] and up["runs_pending"] == 0
    task = admin.create_task(name=unique("status"))
    triggered = admin.ok("POST", f"/tasks/{task['id']}/trigger")
    assert (triggered["message"], triggered["scheduler_up"]) == ("任务已触发", True)
    admin.wait_execution(task["id"], triggered["execution_id"])

    stack.stop_service(scheduler)
    try:
        down = status(admin)
        assert down["scheduler_up"] is False and down["leader"] == "" and "lease_expires_at" not in down
        triggered = admin.ok("POST", f"/tasks/{task['id']}/trigger")
        assert triggered["message"] == "任务已触发（调度器未运行，将在恢复后执行）"
        assert triggered["scheduler_up"] is False
        assert status(admin)["runs_pending"] == 1
    finally:
        stack.start_service(scheduler)

    wait_for(lambda: status(admin)["scheduler_up"], 15, "the scheduler leading again")
    # The run recorded while it was down is dispatched once it is back.
    admin.wait_execution(task["id"], triggered["execution_id"])
    assert status(admin)["runs_pending"] == 0


def test_status_lists_the_executors_and_their_free_slots(stack: Stack) -> None:
    admin = Api.login(stack.http_url, "admin", ADMIN_PASSWORD)

    def idle() -> dict[str, Any] | None:
        s: dict[str, Any] = admin.ok("GET", "/status")
        executors = s.get("executors", [])
        ready = s["scheduler_up"] and len(executors) == 1 and executors[0]["reachable"]
        return s if ready and executors[0]["active_runs"] == 0 else None

    seen = wait_for(idle, 15, "the leader to report its one executor")
    executor = seen["executors"][0]
    assert executor["capacity"] > 0 and executor["draining"] is False and executor["address"]
    assert seen["free_slots"] == executor["capacity"]

    task = admin.create_task(name=unique("busy"), config={"duration_seconds": 30, "steps": 30})
    run = admin.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]
    try:
        busy = wait_for(
            lambda: (s := admin.ok("GET", "/status"))["free_slots"] == executor["capacity"] - 1 and s,
            15,
            "the run to take a slot",
        )
        assert busy["executors"][0]["active_runs"] == 1
    finally:
        admin.ok("POST", f"/executions/{run}/terminate", json={})
    wait_for(idle, 30, "the slot to be free again")

"""REST through the real Envoy: execution history, live progress, the SSE watch stream, terminate and
statistics, plus the guide's own create payload run end to end."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from stack import Stack
from tests.integration.api import Api, assert_shape, error, parse_time, unique
from tests.waiting import wait_for

# The product's user guide is not in this repository: CI provides it at ../shared/seed/ next to
# the checkout (docs/guide.md sums it up).
GUIDE = Path(__file__).resolve().parents[3] / "shared" / "seed" / "scheduler_guide.zh.md"
EXECUTION_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": int,
    "task_id": int,
    "parent_execution_id": int,
    "status": str,
    "trigger": str,
    "duration_seconds": (int, float),
    "result": dict,
    "error_message": str,
    "retry_count": int,
    "executor": str,
    "created_at": str,
    "task_name": str,
    "logical_date": str,
    "params": dict,
    "rerun_of_execution_id": int,
    "triggered_by": str,
    "terminated_by": str,
    "note": str,
    "trace_id": str,
    "traceparent": str,
}
# Absent while unset (proto3 JSON does not print unset messages).
OPTIONAL_TIMES = {"scheduled_time", "start_time", "end_time"}
STATS_FIELDS = {
    "total_executions",
    "success_count",
    "failed_count",
    "running_count",
    "pending_count",
    "terminated_count",
    "skipped_count",
    "success_rate",
    "avg_duration_seconds",
}


# ---- helpers ----------------------------------------------------------------------------------


def assert_execution(execution: dict[str, Any]) -> dict[str, Any]:
    assert_shape(execution, EXECUTION_FIELDS, OPTIONAL_TIMES, ("created_at",))
    assert execution["status"] in ("pending", "running", "success", "failed", "terminated", "skipped")
    assert execution["trigger"] in ("schedule", "manual", "retry", "workflow")
    return execution


def create(api: Api, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": unique(),
        "task_type": "example_task",
        "config": {"duration_seconds": 0.2, "steps": 1},
        "max_retries": 0,
        "concurrency_policy": "allow",
    }
    body.update(fields)
    task: dict[str, Any] = api.ok("POST", "/tasks", json=body)
    return task


def trigger(api: Api, task_id: int) -> int:
    response = api.ok("POST", f"/tasks/{task_id}/trigger")
    assert response["message"] == "任务已触发"
    execution_id: int = response["execution_id"]
    return execution_id


def run(api: Api, task_id: int) -> dict[str, Any]:
    """Triggers the task and waits for the run to finish."""
    return assert_execution(api.wait_execution(task_id, trigger(api, task_id)))


def history(api: Api, path: str, **params: Any) -> tuple[list[int], int]:
    result = api.ok("GET", path, params=params)
    assert set(result) == {"executions", "total"}, result
    for execution in result["executions"]:
        assert_execution(execution)
    return [e["id"] for e in result["executions"]], result["total"]


def wait_running(api: Api, task_id: int, execution_id: int) -> dict[str, Any]:
    path = f"/tasks/{task_id}/executions/{execution_id}"
    running: dict[str, Any] = wait_for(
        lambda: (e := api.ok("GET", path))["status"] == "running" and e,
        15,
        f"execution {execution_id} to run",
    )
    return running


# ---- live progress ----------------------------------------------------------------------------


def test_get_execution_shows_live_progress_then_success(admin: Api) -> None:
    task = create(admin, config={"duration_seconds": 3, "steps": 3, "message": "完成了"})
    execution_id = trigger(admin, task["id"])
    path = f"/tasks/{task['id']}/executions/{execution_id}"
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        execution = assert_execution(admin.ok("GET", path))
        if execution["status"] not in ("pending", "running"):
            break
        if execution["status"] == "running" and execution["result"]:
            seen.append(execution["result"])
        time.sleep(0.1)
    else:
        pytest.fail("the run did not finish")
    progress = [result["progress_percent"] for result in seen]
    assert progress == sorted(progress), progress
    assert len({p for p in progress if 0 < p < 100}) >= 2, progress
    for result in seen:
        # The guide's progress structure while running.
        assert {"current_step", "total_steps", "progress_percent", "status", "message", "steps"} <= set(
            result
        )
        assert result["total_steps"] == 3 and result["status"] == "running"
        assert len([s for s in result["steps"] if s["status"] == "completed"]) <= result["current_step"]
    assert execution["status"] == "success", execution
    assert execution["task_id"] == task["id"] and execution["task_name"] == task["name"]
    assert execution["trigger"] == "manual" and execution["retry_count"] == 0
    assert execution["executor"] and execution["error_message"] == ""
    result = execution["result"]
    assert result["progress_percent"] == 100 and result["current_step"] == 3 and result["total_steps"] == 3
    assert result["message"] == "完成了"
    assert result["steps"] == [
        {"step": i, "status": "completed", "message": f"步骤 {i}/3 处理完成"} for i in (1, 2, 3)
    ]
    start, end = parse_time(execution["start_time"]), parse_time(execution["end_time"])
    assert 2.5 <= execution["duration_seconds"] <= 10
    assert abs((end - start).total_seconds() - execution["duration_seconds"]) < 0.01
    assert parse_time(execution["created_at"]) <= start
    # The global binding returns the same execution.
    assert admin.ok("GET", f"/executions/{execution_id}") == execution


def test_get_execution_errors(admin: Api) -> None:
    task, other = create(admin), create(admin)
    execution_id = run(admin, task["id"])["id"]
    error(
        admin.get(f"/tasks/{other['id']}/executions/{execution_id}"), 404, f"执行记录 {execution_id} 不存在"
    )
    error(admin.get(f"/tasks/{task['id']}/executions/99999999"), 404, "执行记录 99999999 不存在")
    error(admin.get(f"/tasks/99999999/executions/{execution_id}"), 404, "任务 99999999 不存在")
    error(admin.get("/executions/99999999"), 404, "执行记录 99999999 不存在")
    error(admin.get("/tasks/99999999/executions"), 404, "任务 99999999 不存在")


# ---- history and statistics -------------------------------------------------------------------


def test_history_filters_and_stats(admin: Api) -> None:
    task = create(admin)
    tid = task["id"]
    path = f"/tasks/{tid}/executions"
    first, second = run(admin, tid), run(admin, tid)
    admin.ok(
        "PUT", f"/tasks/{tid}", json={"config": {"duration_seconds": 0.2, "steps": 1, "success_rate": 0}}
    )
    third = run(admin, tid)
    assert [first["status"], second["status"], third["status"]] == ["success", "success", "failed"]
    assert third["error_message"], third
    e1, e2, e3 = first["id"], second["id"], third["id"]

    # Newest first, total over all pages.
    assert history(admin, path) == ([e3, e2, e1], 3)
    assert history(admin, path, skip=1, limit=1) == ([e2], 3)
    assert history(admin, path, limit=1) == ([e3], 3)
    # Status filter, comma separated.
    assert history(admin, path, status="failed") == ([e3], 1)
    assert history(admin, path, status="success") == ([e2, e1], 2)
    assert history(admin, path, status="success,failed") == ([e3, e2, e1], 3)
    assert history(admin, path, status="running,pending") == ([], 0)
    error(admin.get(path, params={"status": "done"}), 400, contains="无效的状态: done")
    # Time filters (RFC 3339): from is inclusive, to is exclusive.
    assert history(admin, path, start_time_from=second["start_time"]) == ([e3, e2], 2)
    assert history(admin, path, start_time_to=second["start_time"]) == ([e1], 1)
    assert history(admin, path, start_time_from=second["start_time"], start_time_to=third["start_time"]) == (
        [e2],
        1,
    )
    # The same instant with an offset.
    offset_form = parse_time(second["start_time"]).astimezone(ZoneInfo("Asia/Shanghai")).isoformat()
    assert offset_form.endswith("+08:00")
    assert history(admin, path, start_time_from=offset_form) == ([e3, e2], 2)
    error(admin.get(path, params={"start_time_from": "yesterday"}), 400, contains="start_time_from")
    error(admin.get(path, params={"start_time_to": "2026-13-01T00:00:00Z"}), 400, contains="start_time_to")
    error(admin.get(path, params={"start_time_from": "2026-01-01T00:00:00"}), 400, contains="start_time_from")
    error(admin.get(path, params={"limit": 1001}), 400, "limit 必须在1到1000之间")
    error(admin.get(path, params={"skip": -1}), 400, "skip 不能为负数")

    # The global history, with the task's name filled in.
    result = admin.ok("GET", "/executions", params={"task_id": tid, "status": "failed"})
    assert [e["id"] for e in result["executions"]] == [e3] and result["total"] == 1
    assert result["executions"][0]["task_name"] == task["name"]
    everything = admin.ok("GET", "/executions", params={"limit": 1000})
    assert everything["total"] >= 3 and {e1, e2, e3} <= {e["id"] for e in everything["executions"]}
    assert all(e["task_name"] for e in everything["executions"])
    ids = [e["id"] for e in everything["executions"]]
    assert ids == sorted(ids, reverse=True)
    assert [
        e["id"]
        for e in admin.ok("GET", "/executions", params={"status": "failed", "limit": 1000})["executions"]
    ].count(e3) == 1

    # Statistics of the task: success / (success + failed).
    stats = admin.ok("GET", "/stats", params={"task_id": tid})
    assert set(stats) == STATS_FIELDS | {"latest_execution_time"}, stats
    assert (stats["total_executions"], stats["success_count"], stats["failed_count"]) == (3, 2, 1)
    assert (
        stats["running_count"],
        stats["pending_count"],
        stats["terminated_count"],
        stats["skipped_count"],
    ) == (0, 0, 0, 0)
    assert stats["success_rate"] == pytest.approx(0.6667, abs=1e-4)
    mean = sum(e["duration_seconds"] for e in (first, second, third)) / 3
    assert stats["avg_duration_seconds"] == pytest.approx(mean, abs=0.002)
    assert stats["latest_execution_time"] == third["start_time"]
    error(admin.get("/stats", params={"task_id": 99999999}), 404, "任务 99999999 不存在")


def test_stats_of_a_task_that_never_ran(admin: Api) -> None:
    task = create(admin)
    stats = admin.ok("GET", "/stats", params={"task_id": task["id"]})
    assert set(stats) == STATS_FIELDS, stats  # no latest_execution_time yet
    assert all(stats[name] == 0 for name in STATS_FIELDS)


def test_global_stats_match_the_global_history(admin: Api) -> None:
    run(admin, create(admin)["id"])

    def consistent() -> dict[str, Any] | None:
        stats = admin.ok("GET", "/stats")
        counts = {
            status: admin.ok("GET", "/executions", params={"status": status, "limit": 1})["total"]
            for status in ("success", "failed", "running", "pending", "terminated", "skipped")
        }
        total = admin.ok("GET", "/executions", params={"limit": 1})["total"]
        if admin.ok("GET", "/stats") != stats:
            return None  # something changed meanwhile
        expected = {
            "total_executions": total,
            "success_count": counts["success"],
            "failed_count": counts["failed"],
            "running_count": counts["running"],
            "pending_count": counts["pending"],
            "terminated_count": counts["terminated"],
            "skipped_count": counts["skipped"],
        }
        result: dict[str, Any] | None = stats if {k: stats[k] for k in expected} == expected else None
        return result

    stats = wait_for(consistent, 20, "global stats to match the history", interval=0.3)
    assert stats["total_executions"] >= 1
    finished = stats["success_count"] + stats["failed_count"]
    assert stats["success_rate"] == pytest.approx(stats["success_count"] / finished, abs=1e-4)
    assert stats["avg_duration_seconds"] > 0
    parse_time(stats["latest_execution_time"])
    # task_id=0 is the same as no task id.
    assert admin.ok("GET", "/stats", params={"task_id": 0}).keys() == stats.keys()


# ---- terminate --------------------------------------------------------------------------------


def test_terminate_a_running_run(admin: Api, operator: Api) -> None:
    task = create(admin, config={"duration_seconds": 20, "steps": 20})
    execution_id = trigger(admin, task["id"])
    wait_running(admin, task["id"], execution_id)
    while_running = admin.ok("GET", f"/tasks/{task['id']}")
    assert while_running["schedule_status"] == "running"
    assert while_running["latest_execution_status"] == "running"
    listed = admin.ok("GET", "/tasks", params={"name": task["name"]})["tasks"]
    assert [t["latest_execution_status"] for t in listed] == ["running"]
    answer = assert_execution(operator.ok("POST", f"/executions/{execution_id}/terminate"))
    assert answer["id"] == execution_id and answer["status"] in ("running", "terminated")
    final = admin.wait_execution(task["id"], execution_id, timeout=10)
    assert final["status"] == "terminated", final
    # Stopped, not run to its end (20 s).
    assert "end_time" in final and final["duration_seconds"] < 15
    # Finished runs cannot be terminated again.
    error(
        operator.post(f"/executions/{execution_id}/terminate"),
        400,
        f"执行记录 {execution_id} 已结束（terminated），无法终止",
    )
    stats = admin.ok("GET", "/stats", params={"task_id": task["id"]})
    assert (stats["terminated_count"], stats["failed_count"], stats["success_count"]) == (1, 0, 0)
    after = admin.ok("GET", f"/tasks/{task['id']}")
    assert after["latest_execution_status"] == "terminated" and after["schedule_status"] == "manual"
    # A user-terminated run is not retried.
    time.sleep(0.5)
    assert history(admin, f"/tasks/{task['id']}/executions") == ([execution_id], 1)


def test_terminate_errors(admin: Api, operator: Api) -> None:
    task = create(admin)
    finished = run(admin, task["id"])
    assert finished["status"] == "success"
    error(
        operator.post(f"/executions/{finished['id']}/terminate"),
        400,
        f"执行记录 {finished['id']} 已结束（success），无法终止",
    )
    error(operator.post("/executions/99999999/terminate"), 404, "执行记录 99999999 不存在")
    assert admin.ok("GET", f"/executions/{finished['id']}")["status"] == "success"


# ---- SSE watch --------------------------------------------------------------------------------


def read_events(
    client: httpx.Client, url: str
) -> tuple[httpx.Response, list[tuple[float, dict[str, Any]]], float]:
    """Reads a whole SSE stream; returns the response, (arrival time, event) pairs and the close time."""
    events: list[tuple[float, dict[str, Any]]] = []
    with client.stream("GET", url, timeout=60) as response:
        if response.status_code != 200:
            response.read()
            return response, events, time.monotonic()
        for line in response.iter_lines():
            if not line:
                continue
            assert line.startswith("data: "), line
            events.append((time.monotonic(), json.loads(line[len("data: ") :])))
    return response, events, time.monotonic()


def test_watch_streams_progress_as_server_sent_events(admin: Api) -> None:
    task = create(admin, config={"duration_seconds": 3, "steps": 3})
    execution_id = trigger(admin, task["id"])
    opened = time.monotonic()
    response, events, closed = read_events(
        admin.http, f"/api/v1/scheduler/tasks/{task['id']}/executions/{execution_id}/watch"
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    kinds = [event["event_type"] for _, event in events]
    assert kinds[0] == "snapshot" and kinds[-1] == "end", kinds
    assert set(kinds) <= {"snapshot", "heartbeat", "end"} and kinds.count("end") == 1
    for _, event in events:
        assert set(event) == {"event_type", "execution"}
        assert_execution(event["execution"])
        assert event["execution"]["id"] == execution_id and event["execution"]["task_name"] == task["name"]
    # Frames arrive while the run progresses, not all at the end.
    arrivals = [at for at, _ in events]
    assert arrivals[0] - opened < 1.5
    assert arrivals[-1] - arrivals[0] >= 2
    progress = [
        event["execution"]["result"]["progress_percent"]
        for _, event in events
        if event["execution"]["status"] == "running" and "progress_percent" in event["execution"]["result"]
    ]
    assert progress == sorted(progress) and len({p for p in progress if 0 < p < 100}) >= 2, progress
    final = events[-1][1]["execution"]
    assert final["status"] == "success" and final["result"]["progress_percent"] == 100
    assert "end_time" in final
    # The stream closes right after the end event.
    assert closed - arrivals[-1] < 1.0
    assert admin.ok("GET", f"/executions/{execution_id}")["status"] == "success"


def test_watch_of_a_finished_run_ends_at_once(stack: Stack, admin: Api, viewer: Api) -> None:
    task = create(admin)
    execution = run(admin, task["id"])
    url = f"/api/v1/scheduler/tasks/{task['id']}/executions/{execution['id']}/watch"
    response, events, _ = read_events(viewer.http, url)
    assert response.status_code == 200
    assert [event["event_type"] for _, event in events] == ["snapshot", "end"]
    assert events[-1][1]["execution"] == events[0][1]["execution"]
    assert events[-1][1]["execution"]["status"] == "success"
    # EventSource cannot send an Authorization header: the access_token cookie works too.
    assert viewer.token is not None
    with httpx.Client(base_url=stack.http_url, cookies={"access_token": viewer.token}) as client:
        response, events, _ = read_events(client, url)
        assert response.status_code == 200
        assert [event["event_type"] for _, event in events] == ["snapshot", "end"]
    with httpx.Client(base_url=stack.http_url) as client:
        response, events, _ = read_events(client, url)
        assert response.status_code == 401 and events == []
        assert response.json() == {"detail": "Jwt is missing", "reason": "LOGIN_REQUIRED"}


def test_watch_of_a_missing_execution_is_404_json(admin: Api) -> None:
    task, other = create(admin), create(admin)
    execution_id = run(admin, task["id"])["id"]
    cases = [
        (f"/tasks/{task['id']}/executions/99999999/watch", "执行记录 99999999 不存在"),
        (f"/tasks/{other['id']}/executions/{execution_id}/watch", f"执行记录 {execution_id} 不存在"),
        (f"/tasks/99999999/executions/{execution_id}/watch", "任务 99999999 不存在"),
    ]
    for path, detail in cases:
        response = admin.get(path)
        error(response, 404, detail)


# ---- the guide's payload ----------------------------------------------------------------------


def guide_create_payload() -> dict[str, Any]:
    """The JSON body of 'API接口 → 创建任务', exactly as the guide prints it."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index("## API接口") :]
    section = section[section.index("### 创建任务") :]
    block = re.search(r"```http\n(.*?)```", section, re.S)
    assert block is not None
    payload: dict[str, Any] = json.loads(block.group(1)[block.group(1).index("{") :])
    return payload


def test_the_guides_create_payload_runs_end_to_end(admin: Api) -> None:
    payload = guide_create_payload()
    assert payload == {
        "name": "示例任务",
        "task_type": "example_task",
        "interval_seconds": 60,
        "config": {"duration_seconds": 3, "success_rate": 1.0},
        "enabled": True,
    }
    response = admin.post("/tasks", json=payload)
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["name"] == "示例任务" and task["task_type"] == "example_task"
    assert task["interval_seconds"] == 60 and task["enabled"] is True
    assert task["config"] == {"duration_seconds": 3, "success_rate": 1}
    assert task["schedule_status"] == "pending"
    parse_time(task["next_run_time"])
    try:
        listed = admin.ok("GET", "/tasks", params={"skip": 0, "limit": 20, "name": "示例任务"})
        assert [t["id"] for t in listed["tasks"]] == [task["id"]]
        execution_id = trigger(admin, task["id"])
        time.sleep(1)  # as the guide's client does
        latest = admin.ok("GET", f"/tasks/{task['id']}/executions", params={"limit": 1})["executions"]
        assert [e["id"] for e in latest] == [execution_id]
        final = admin.wait_execution(task["id"], execution_id)
        assert final["status"] == "success"
        assert final["result"]["progress_percent"] == 100 and final["result"]["total_steps"] == 5
        assert len(final["result"]["steps"]) == 5
        stats = admin.ok("GET", "/stats", params={"task_id": task["id"]})
        assert stats["success_count"] >= 1 and stats["success_rate"] == 1
    finally:
        admin.ok("DELETE", f"/tasks/{task['id']}", params={"force": "true"})

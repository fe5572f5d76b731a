"""REST through the real Envoy: task CRUD, validation, listing, state changes, trigger, delete, roles
and cron preview, with the JSON a user relies on (snake_case, numeric ids, RFC 3339 UTC times)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from stack import Stack
from tests.integration.api import Api, assert_shape, error, parse_time, unique
from tests.waiting import wait_for
from zquant.scheduler.v1 import task_service_pb2, task_service_pb2_grpc

TASK_FIELDS = {
    "id": int,
    "name": str,
    "task_type": str,
    "cron_expression": str,
    "interval_seconds": int,
    "timezone": str,
    "enabled": bool,
    "paused": bool,
    "description": str,
    "config": dict,
    "max_retries": int,
    "retry_interval": int,
    "timeout_seconds": int,
    "concurrency_policy": str,
    "misfire_policy": str,
    "misfire_grace_seconds": int,
    "created_at": str,
    "updated_at": str,
    "created_by": str,
    "updated_by": str,
    "schedule_status": str,
    "latest_execution_status": str,
    "dependencies": list,
    "node_name": str,
    "calendar": str,
    "calendar_shift": int,
    "calendar_holidays": str,
    "tags": list,
}
# Timestamps that are absent while unset (proto3 JSON does not print unset messages).
OPTIONAL_TIMES = {"run_at", "next_run_time", "latest_execution_time"}
EXAMPLE_CONFIG = {"duration_seconds": 0.2, "steps": 2}
LONG_CONFIG = {"duration_seconds": 20, "steps": 20}
COMMAND_CONFIG = {"command": ["echo", "hello"]}
TWO_SCHEDULES = "Cron表达式、间隔秒数和一次性运行时间只能设置其中一个"
ADMIN_ONLY = "需要管理员权限"
OPERATOR_ONLY = "需要操作员权限"
# Text and numbers a hand-made JSON printer easily gets wrong. One key per object: the transcoder
# prints a Struct's keys in an arbitrary order (see test_list_sorts_config_keys).
TRICKY_TEXT = "<b>&\"'\\/ 中文 😀 \t\u2028\x7f"
# Names are one line (no tab or DEL: control characters are refused there) and trimmed.
TRICKY_NAME = "<b>&\"'\\/ 中文 😀 \u2028 end"
TRICKY_CONFIG: dict[str, Any] = {
    "values": [0.2, 2.0, 1 / 3, 1e21, 1e-7, -1.5, 0, None, True, TRICKY_TEXT, {"k": [{}, []]}]
}


# ---- helpers ----------------------------------------------------------------------------------


def assert_task(task: dict[str, Any]) -> dict[str, Any]:
    return assert_shape(task, TASK_FIELDS, OPTIONAL_TIMES, ("created_at", "updated_at"))


def body(name: str | None = None, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": name or unique(),
        "task_type": "example_task",
        "config": EXAMPLE_CONFIG,
    }
    payload.update(fields)
    return payload


def create(api: Api, **fields: Any) -> dict[str, Any]:
    return assert_task(api.ok("POST", "/tasks", json=body(**fields)))


def trigger(api: Api, task_id: int) -> int:
    response = api.ok("POST", f"/tasks/{task_id}/trigger")
    assert set(response) == {"message", "execution_id", "scheduler_up"}, response
    assert response["message"] == "任务已触发"
    execution_id = response["execution_id"]
    assert isinstance(execution_id, int) and execution_id > 0
    return execution_id


def schedule_view(task: dict[str, Any]) -> dict[str, Any]:
    keys = ("enabled", "paused", "cron_expression", "interval_seconds", "run_at", "next_run_time", "timezone")
    return {key: task.get(key) for key in keys}


def listing(api: Api, **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = api.ok("GET", "/tasks", params=params)
    assert set(result) == {"tasks", "total", "next_after_id"}, result
    assert isinstance(result["total"], int)
    for task in result["tasks"]:
        assert_task(task)
    return result


# ---- create -----------------------------------------------------------------------------------


def test_create_example_task_with_interval(admin: Api) -> None:
    name = unique("example")
    task = create(admin, name=name, interval_seconds=60, description="示例", enabled=True)
    assert task["id"] > 0
    assert task["name"] == name and task["task_type"] == "example_task"
    assert task["interval_seconds"] == 60 and task["cron_expression"] == "" and "run_at" not in task
    assert task["config"] == {"duration_seconds": 0.2, "steps": 2}
    assert task["description"] == "示例"
    assert task["enabled"] is True and task["paused"] is False
    # Defaults of the contract.
    assert (task["max_retries"], task["retry_interval"], task["timeout_seconds"]) == (3, 60, 0)
    assert (task["concurrency_policy"], task["misfire_policy"], task["misfire_grace_seconds"]) == (
        "forbid",
        "run_once",
        60,
    )
    assert task["timezone"] == "Asia/Shanghai"
    assert task["created_by"] == task["updated_by"] == "admin"
    assert task["created_at"] == task["updated_at"]
    assert task["schedule_status"] == "pending"
    assert task["latest_execution_status"] == "" and "latest_execution_time" not in task
    gap = parse_time(task["next_run_time"]) - parse_time(task["created_at"])
    assert timedelta(seconds=59) <= gap <= timedelta(seconds=61)
    assert task["dependencies"] == [] and task["node_name"] == ""


def test_create_common_task_with_command_and_cron(admin: Api) -> None:
    task = create(
        admin,
        task_type="common_task",
        cron_expression="0 18 * * *",
        timezone="Asia/Shanghai",
        config={"command": "echo hi", "work_dir": ""},
        max_retries=0,
        retry_interval=5,
        timeout_seconds=30,
        concurrency_policy="allow",
        misfire_policy="skip",
        misfire_grace_seconds=10,
    )
    assert task["task_type"] == "common_task"
    assert task["cron_expression"] == "0 18 * * *" and task["interval_seconds"] == 0
    assert task["config"] == {"command": "echo hi", "work_dir": ""}
    assert (task["max_retries"], task["retry_interval"], task["timeout_seconds"]) == (0, 5, 30)
    assert (task["concurrency_policy"], task["misfire_policy"], task["misfire_grace_seconds"]) == (
        "allow",
        "skip",
        10,
    )
    # 18:00 in Shanghai is 10:00 UTC.
    next_run = parse_time(task["next_run_time"])
    assert (next_run.hour, next_run.minute, next_run.second) == (10, 0, 0)
    assert next_run - datetime.now(UTC) <= timedelta(days=1)
    assert task["schedule_status"] == "pending"


def test_create_common_task_with_task_action_and_no_schedule(admin: Api) -> None:
    task = create(
        admin, task_type="common_task", config={"task_action": "example_task", "duration_seconds": 0.1}
    )
    assert task["config"] == {"task_action": "example_task", "duration_seconds": 0.1}
    assert task["cron_expression"] == "" and task["interval_seconds"] == 0
    assert "next_run_time" not in task
    assert task["schedule_status"] == "manual"


def test_create_manual_task(admin: Api) -> None:
    task = create(admin, task_type="manual_task", config=COMMAND_CONFIG)
    assert task["task_type"] == "manual_task"
    assert task["enabled"] is True
    assert "next_run_time" not in task
    assert task["schedule_status"] == "manual"


def test_create_one_time_task(admin: Api) -> None:
    run_at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    task = create(admin, run_at=run_at.isoformat().replace("+00:00", "Z"))
    assert parse_time(task["run_at"]) == run_at
    assert parse_time(task["next_run_time"]) == run_at
    assert task["schedule_status"] == "pending"
    # An offset is accepted and stored as the same instant.
    shanghai = run_at.astimezone(ZoneInfo("Asia/Shanghai")).isoformat()
    assert shanghai.endswith("+08:00")
    other = create(admin, run_at=shanghai)
    assert parse_time(other["run_at"]) == run_at


def test_create_workflow(admin: Api) -> None:
    first, second = create(admin), create(admin)
    config = {
        "workflow_type": "serial",
        "tasks": [
            {"task_id": first["id"], "name": "第一步", "dependencies": []},
            {"task_id": second["id"], "name": "第二步", "dependencies": [first["id"]]},
        ],
        "on_failure": "stop",
    }
    task = create(admin, task_type="workflow", config=config, cron_expression="0 3 * * *")
    assert task["task_type"] == "workflow"
    assert task["config"] == config


def test_a_name_of_100_characters_is_accepted(admin: Api) -> None:
    name = "名" * 90 + uuid.uuid4().hex[:10]
    assert create(admin, name=name)["name"] == name


INVALID_CREATES: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    # (id, fields, exact detail, substring of detail)
    ("cron-hour", {"cron_expression": "0 25 * * *"}, None, "第2个字段(时)"),
    ("cron-minute", {"cron_expression": "61 * * * *"}, None, "第1个字段(分)"),
    ("cron-weekday", {"cron_expression": "0 0 * * 8"}, None, "第5个字段"),
    ("cron-fields", {"cron_expression": "* * *"}, None, "Cron表达式无效"),
    ("cron-garbage", {"cron_expression": "every day"}, None, "Cron表达式无效"),
    (
        "manual-cron",
        {"task_type": "manual_task", "config": COMMAND_CONFIG, "cron_expression": "0 18 * * *"},
        "手动任务不支持 Cron 表达式调度",
        None,
    ),
    (
        "manual-interval",
        {"task_type": "manual_task", "config": COMMAND_CONFIG, "interval_seconds": 60},
        "手动任务不支持间隔调度",
        None,
    ),
    ("cron-and-interval", {"cron_expression": "0 18 * * *", "interval_seconds": 60}, TWO_SCHEDULES, None),
    ("interval-and-run-at", {"interval_seconds": 60, "run_at": "2099-01-01T00:00:00Z"}, TWO_SCHEDULES, None),
    ("interval-negative", {"interval_seconds": -5}, None, "间隔秒数"),
    ("run-at-garbage", {"run_at": "tomorrow"}, None, None),
    ("max-retries-high", {"max_retries": 101}, None, "最大重试次数"),
    ("max-retries-negative", {"max_retries": -1}, None, "最大重试次数"),
    ("retry-interval-negative", {"retry_interval": -1}, None, "重试间隔"),
    ("timezone", {"timezone": "Mars/Olympus_Mons"}, "无效的时区: Mars/Olympus_Mons", None),
    ("name-too-long", {"name": "x" * 101}, "任务名称不能超过100个字符", None),
    ("name-empty", {"name": ""}, "任务名称不能为空", None),
    ("name-blank", {"name": "   "}, "任务名称不能为空", None),
    ("type-unknown", {"task_type": "cron_job"}, None, "无效的任务类型: cron_job"),
    ("type-missing", {"task_type": ""}, None, "无效的任务类型"),
    ("concurrency", {"concurrency_policy": "queue"}, None, "无效的并发策略: queue"),
    ("misfire", {"misfire_policy": "later"}, None, "无效的错过执行策略: later"),
    (
        "common-without-command",
        {"task_type": "common_task", "config": {"foo": 1}},
        "通用任务配置中必须包含 'command' 或 'task_action' 字段",
        None,
    ),
    (
        "manual-without-command",
        {"task_type": "manual_task", "config": {}},
        "手动任务配置中必须包含 'command' 或 'task_action' 字段",
        None,
    ),
    ("example-steps-0", {"config": {"steps": 0}}, "配置项 steps 必须是大于 0 的整数", None),
    (
        "example-success-rate",
        {"config": {"success_rate": 2}},
        "配置项 success_rate 必须是介于 0 到 1 之间的数字",
        None,
    ),
    ("example-duration", {"config": {"duration_seconds": -1}}, None, "duration_seconds"),
    ("config-not-object", {"config": [1, 2]}, None, None),
    ("workflow-empty", {"task_type": "workflow", "config": {}}, None, "编排任务配置无效: "),
]


@pytest.mark.parametrize(
    ("fields", "detail", "contains"),
    [case[1:] for case in INVALID_CREATES],
    ids=[case[0] for case in INVALID_CREATES],
)
def test_create_validation_is_400_with_the_reason(
    admin: Api, fields: dict[str, Any], detail: str | None, contains: str | None
) -> None:
    payload = body(name=unique("invalid"))
    payload.update(fields)
    error(admin.post("/tasks", json=payload), 400, detail, contains)
    if payload["name"].strip():
        assert listing(admin, name=payload["name"][:50], include_children=True)["total"] == 0


def test_bad_cron_says_where_and_why(admin: Api) -> None:
    detail = error(admin.post("/tasks", json=body(cron_expression="0 25 * * *")), 400, reason="CRON_INVALID")
    assert detail == "Cron表达式无效: 第2个字段(时) '25': 超出范围 0-23"


def test_duplicate_name_is_409(admin: Api) -> None:
    task = create(admin)
    error(
        admin.post("/tasks", json=body(name=task["name"])),
        409,
        f"任务名称 '{task['name']}' 已存在",
        reason="TASK_NAME_TAKEN",
    )
    other = create(admin)
    error(
        admin.put(f"/tasks/{other['id']}", json={"name": task["name"]}),
        409,
        f"任务名称 '{task['name']}' 已存在",
    )
    # Renaming a task to its own name is fine.
    assert admin.ok("PUT", f"/tasks/{task['id']}", json={"name": task["name"]})["name"] == task["name"]


# ---- get and list -----------------------------------------------------------------------------


def test_get_returns_the_task_and_404_when_missing(admin: Api) -> None:
    task = create(admin, interval_seconds=3600)
    got = assert_task(admin.ok("GET", f"/tasks/{task['id']}"))
    assert got == task
    error(admin.get("/tasks/99999999"), 404, "任务 99999999 不存在", reason="TASK_NOT_FOUND")


def test_list_total_counts_all_pages(admin: Api) -> None:
    prefix = unique("page")
    ids = [create(admin, name=f"{prefix}_{i:02d}")["id"] for i in range(25)]
    pages = [listing(admin, name=prefix, skip=skip, limit=10) for skip in (0, 10, 20)]
    assert [len(page["tasks"]) for page in pages] == [10, 10, 5]
    assert all(page["total"] == 25 for page in pages)
    seen = [task["id"] for page in pages for task in page["tasks"]]
    # Default order: newest (highest id) first, no task twice.
    assert seen == sorted(ids, reverse=True)
    beyond = listing(admin, name=prefix, skip=30, limit=10)
    assert beyond["tasks"] == [] and beyond["total"] == 25
    # limit 0 means the default page size (20), per the proto.
    assert len(listing(admin, name=prefix, limit=0)["tasks"]) == 20
    assert len(listing(admin, name=prefix)["tasks"]) == 20


def test_list_filters(admin: Api) -> None:
    prefix = unique("Filter")
    example = create(admin, name=f"{prefix}_a")
    common = create(admin, name=f"{prefix}_b", task_type="common_task", config=COMMAND_CONFIG)
    disabled = create(admin, name=f"{prefix}_c", enabled=False)
    create(admin, name=unique("unrelated"))

    def ids(**params: Any) -> set[int]:
        result = listing(admin, name=prefix, **params)
        assert result["total"] == len(result["tasks"])
        return {task["id"] for task in result["tasks"]}

    assert ids() == {example["id"], common["id"], disabled["id"]}
    assert ids(task_type="common_task") == {common["id"]}
    assert ids(task_type="example_task") == {example["id"], disabled["id"]}
    assert ids(enabled="false") == {disabled["id"]}
    assert ids(enabled="true") == {example["id"], common["id"]}
    assert ids(enabled="true", task_type="example_task") == {example["id"]}
    # The name filter is a case-insensitive substring.
    upper = listing(admin, name=f"{prefix.upper()}_B")
    assert [task["id"] for task in upper["tasks"]] == [common["id"]] and upper["total"] == 1
    middle = listing(admin, name=prefix[3:])
    assert {task["id"] for task in middle["tasks"]} == {example["id"], common["id"], disabled["id"]}
    # LIKE wildcards in the filter are literal.
    assert listing(admin, name=f"{prefix}%")["total"] == 0
    assert listing(admin, name=f"{prefix}__")["total"] == 0
    error(admin.get("/tasks", params={"task_type": "cron_job"}), 400, contains="无效的任务类型")


def test_list_order(admin: Api) -> None:
    prefix = unique("order")
    created = [
        create(admin, name=f"{prefix}_{letter}", max_retries=retries)
        for letter, retries in zip("cab", (1, 3, 2), strict=True)
    ]

    def names(**params: Any) -> list[str]:
        return [task["name"][-1] for task in listing(admin, name=prefix, **params)["tasks"]]

    assert names(order_by="name", order="asc") == ["a", "b", "c"]
    assert names(order_by="name", order="desc") == ["c", "b", "a"]
    assert names(order_by="name") == ["c", "b", "a"]  # default desc
    assert names(order_by="max_retries", order="asc") == ["c", "b", "a"]
    assert names(order_by="created_at", order="asc") == ["c", "a", "b"]
    assert names(order_by="id", order="ASC") == ["c", "a", "b"]
    assert [t["id"] for t in listing(admin, name=prefix)["tasks"]] == sorted(
        (t["id"] for t in created), reverse=True
    )
    error(admin.get("/tasks", params={"order_by": "password"}), 400, contains="不支持的排序字段: password")
    error(admin.get("/tasks", params={"order": "sideways"}), 400, contains="order")


def test_list_limits(admin: Api) -> None:
    error(admin.get("/tasks", params={"limit": 1001}), 400, "limit 必须在1到1000之间")
    error(admin.get("/tasks", params={"limit": -1}), 400, "limit 必须在1到1000之间")
    error(admin.get("/tasks", params={"skip": -1}), 400, "skip 不能为负数")
    assert isinstance(listing(admin, limit=1000)["tasks"], list)


def test_list_shows_latest_execution(admin: Api) -> None:
    task = create(admin)
    execution_id = trigger(admin, task["id"])
    admin.wait_execution(task["id"], execution_id)
    [listed] = listing(admin, name=task["name"])["tasks"]
    assert listed["latest_execution_status"] == "success"
    parse_time(listed["latest_execution_time"])
    got = admin.ok("GET", f"/tasks/{task['id']}")
    assert got["latest_execution_status"] == "success"
    assert got["latest_execution_time"] == listed["latest_execution_time"]


def test_list_body_is_what_the_transcoder_prints(stack: Stack, admin: Api) -> None:
    """GET /tasks is JSON the registry renders itself (TaskService.ListTasksJson). It must stay the
    bytes the gateway's transcoder prints for the same tasks, as GET /tasks/{id} still does; gRPC
    clients still get the page as a ListTasksResponse."""
    prefix = unique("bytes")
    run_at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    tasks = [
        create(admin, name=f"{prefix}_a {TRICKY_NAME}", description=TRICKY_TEXT, config=TRICKY_CONFIG),
        create(admin, name=f"{prefix}_b", cron_expression="0 18 * * *", config={}),
        create(admin, name=f"{prefix}_c", task_type="manual_task", config={"command": ["echo"]}),
        create(admin, name=f"{prefix}_d", run_at=run_at.isoformat().replace("+00:00", "Z"), config={}),
        create(admin, name=f"{prefix}_e", interval_seconds=3600, config={"duration_seconds": 0.2}),
    ]
    admin.wait_execution(tasks[4]["id"], trigger(admin, tasks[4]["id"]))  # sets latest_execution_*
    params = {"name": prefix, "order_by": "id", "order": "asc"}

    listed = admin.get("/tasks", params=params)
    assert listed.status_code == 200, listed.text
    assert listed.headers["content-type"] == "application/json"
    singles = [admin.get(f"/tasks/{task['id']}").content for task in tasks]
    assert listed.content == b'{"tasks":[' + b",".join(singles) + b'],"total":5,"next_after_id":0}'
    shown = json.loads(listed.content)["tasks"]
    assert shown[0]["config"] == TRICKY_CONFIG and shown[0]["name"] == f"{prefix}_a {TRICKY_NAME}"
    assert shown[4]["latest_execution_status"] == "success"

    address = stack.http_url.removeprefix("http://")
    with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel:
        page = task_service_pb2_grpc.TaskServiceStub(channel).ListTasks(
            task_service_pb2.ListTasksRequest(name=prefix, order_by="id", order="asc"),
            metadata=(("authorization", f"Bearer {admin.token}"),),
        )
    assert isinstance(page, task_service_pb2.ListTasksResponse)
    assert json.loads(listed.content) == json_format.MessageToDict(
        page, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def test_list_sorts_config_keys(admin: Api) -> None:
    """The transcoder printed a config's keys in a hash order that changed between registry
    processes; the list prints them sorted, at every level."""
    config = {"zeta": 1, "alpha": {"b": [{"y": 1, "x": 2}], "a": True}, "Mid": "x", "beta": None}
    task = create(admin, config=config)
    [shown] = listing(admin, name=task["name"])["tasks"]
    assert shown == admin.ok("GET", f"/tasks/{task['id']}")
    assert list(shown["config"]) == ["Mid", "alpha", "beta", "zeta"]
    assert list(shown["config"]["alpha"]) == ["a", "b"]
    assert list(shown["config"]["alpha"]["b"][0]) == ["x", "y"]


# ---- update -----------------------------------------------------------------------------------


def test_partial_update_changes_only_the_sent_fields(admin: Api) -> None:
    task = create(admin, interval_seconds=3600, description="before", max_retries=2)
    updated = assert_task(
        admin.ok("PUT", f"/tasks/{task['id']}", json={"description": "after", "max_retries": 5})
    )
    assert updated["description"] == "after" and updated["max_retries"] == 5
    changed = {"description", "max_retries", "updated_at", "updated_by"}
    assert {k: v for k, v in updated.items() if k not in changed} == {
        k: v for k, v in task.items() if k not in changed
    }
    assert parse_time(updated["updated_at"]) >= parse_time(task["updated_at"])
    assert updated["created_at"] == task["created_at"]
    # What the update returned is what is stored.
    assert admin.ok("GET", f"/tasks/{task['id']}") == updated
    # The guide's example: name and config.
    name = unique("renamed")
    renamed = admin.ok("PUT", f"/tasks/{task['id']}", json={"name": name, "config": {"steps": 3}})
    assert renamed["name"] == name and renamed["config"] == {"steps": 3}
    assert [t["id"] for t in listing(admin, name=name)["tasks"]] == [task["id"]]
    assert listing(admin, name=task["name"])["total"] == 0
    assert renamed["description"] == "after" and renamed["interval_seconds"] == 3600
    # An empty body changes nothing.
    same = admin.ok("PUT", f"/tasks/{task['id']}", json={})
    assert {k: v for k, v in same.items() if k not in ("updated_at",)} == {
        k: v for k, v in renamed.items() if k not in ("updated_at",)
    }


def test_null_and_empty_string_clear_fields(admin: Api) -> None:
    path = f"/tasks/{create(admin, cron_expression='0 18 * * *', description='x')['id']}"
    cleared = admin.ok("PUT", path, json={"cron_expression": None, "description": None})
    assert cleared["cron_expression"] == "" and cleared["description"] == ""
    assert "next_run_time" not in cleared and cleared["schedule_status"] == "manual"

    interval = admin.ok("PUT", path, json={"interval_seconds": 120, "description": "y"})
    assert interval["interval_seconds"] == 120 and "next_run_time" in interval
    cleared = admin.ok("PUT", path, json={"interval_seconds": "", "description": ""})
    assert cleared["interval_seconds"] == 0 and cleared["description"] == ""
    assert "next_run_time" not in cleared

    one_time = admin.ok("PUT", path, json={"run_at": "2099-06-01T08:00:00Z"})
    assert one_time["run_at"] == "2099-06-01T08:00:00Z"
    cleared = admin.ok("PUT", path, json={"run_at": None})
    assert "run_at" not in cleared

    admin.ok("PUT", path, json={"cron_expression": "0 1 * * *"})
    cleared = admin.ok("PUT", path, json={"cron_expression": ""})
    assert cleared["cron_expression"] == ""
    assert admin.ok("GET", path)["cron_expression"] == ""


def test_switch_cron_to_interval_in_one_update(admin: Api) -> None:
    task = create(admin, cron_expression="0 18 * * *")
    path = f"/tasks/{task['id']}"
    # Adding an interval while the cron stays is two schedules.
    error(admin.put(path, json={"interval_seconds": 30}), 400, TWO_SCHEDULES)
    switched = admin.ok("PUT", path, json={"cron_expression": None, "interval_seconds": 30})
    assert switched["cron_expression"] == "" and switched["interval_seconds"] == 30
    gap = parse_time(switched["next_run_time"]) - parse_time(switched["updated_at"])
    assert timedelta(seconds=29) <= gap <= timedelta(seconds=31)
    back = admin.ok(
        "PUT", path, json={"cron_expression": "0 6 * * *", "interval_seconds": None, "timezone": "UTC"}
    )
    assert back["cron_expression"] == "0 6 * * *" and back["interval_seconds"] == 0
    assert back["timezone"] == "UTC" and "T06:00:00" in back["next_run_time"]


def test_update_refuses_read_only_and_unknown_fields(admin: Api) -> None:
    task = create(admin)
    path = f"/tasks/{task['id']}"
    error(admin.put(path, json={"id": 5}), 400, "以下字段不能修改: id")
    error(admin.put(path, json={"task_type": "common_task"}), 400, "以下字段不能修改: task_type")
    error(admin.put(path, json={"created_at": "2020-01-01T00:00:00Z"}), 400, contains="created_at")
    error(admin.put(path, json={"paused": True}), 400, contains="paused")
    error(admin.put(path, json={"bogus": 1, "description": "x"}), 400, contains="bogus")
    assert admin.ok("GET", path) == task


def test_update_validation(admin: Api) -> None:
    task = create(admin)
    path = f"/tasks/{task['id']}"
    error(admin.put(path, json={"cron_expression": "0 25 * * *"}), 400, contains="第2个字段(时)")
    error(admin.put(path, json={"name": ""}), 400, "任务名称不能为空")
    error(admin.put(path, json={"name": None}), 400, "任务名称不能为空")
    error(admin.put(path, json={"name": "x" * 101}), 400, "任务名称不能超过100个字符")
    error(admin.put(path, json={"max_retries": 101}), 400, contains="最大重试次数")
    error(admin.put(path, json={"interval_seconds": -1}), 400, contains="间隔秒数")
    error(admin.put(path, json={"timezone": "Nowhere/City"}), 400, "无效的时区: Nowhere/City")
    error(admin.put(path, json={"concurrency_policy": "queue"}), 400, contains="无效的并发策略")
    error(admin.put(path, json={"config": {"steps": 0}}), 400, "配置项 steps 必须是大于 0 的整数")
    error(admin.put(path, json={"enabled": "yes"}), 400)
    # The rules of the stored type apply.
    manual = create(admin, task_type="manual_task", config=COMMAND_CONFIG)
    error(
        admin.put(f"/tasks/{manual['id']}", json={"cron_expression": "0 18 * * *"}),
        400,
        "手动任务不支持 Cron 表达式调度",
    )
    error(admin.put(f"/tasks/{manual['id']}", json={"interval_seconds": 60}), 400, "手动任务不支持间隔调度")
    error(admin.put(f"/tasks/{manual['id']}", json={"config": {}}), 400, contains="command")
    assert admin.ok("GET", path) == task


def test_update_of_a_missing_task_is_404(admin: Api) -> None:
    error(admin.put("/tasks/99999999", json={"description": "x"}), 404, "任务 99999999 不存在")


# ---- enable / disable / pause / resume --------------------------------------------------------


def test_state_round_trip(admin: Api) -> None:
    task = create(admin, interval_seconds=3600)
    base = f"/tasks/{task['id']}"
    assert task["schedule_status"] == "pending"

    disabled = assert_task(admin.ok("POST", f"{base}/disable"))
    assert disabled["enabled"] is False and disabled["schedule_status"] == "disabled"
    assert "next_run_time" not in disabled
    assert admin.ok("POST", f"{base}/disable")["enabled"] is False  # idempotent
    # The list shows the new state at once.
    assert [t["schedule_status"] for t in listing(admin, name=task["name"])["tasks"]] == ["disabled"]
    assert listing(admin, name=task["name"], enabled="false")["total"] == 1
    assert admin.ok("GET", base)["schedule_status"] == "disabled"

    enabled = admin.ok("POST", f"{base}/enable")
    assert enabled["enabled"] is True and enabled["schedule_status"] == "pending"
    assert "next_run_time" in enabled

    paused = admin.ok("POST", f"{base}/pause")
    assert paused["paused"] is True and paused["enabled"] is True and paused["schedule_status"] == "paused"
    assert "next_run_time" not in paused
    assert admin.ok("POST", f"{base}/pause")["paused"] is True  # idempotent

    resumed = admin.ok("POST", f"{base}/resume")
    assert resumed["paused"] is False and resumed["schedule_status"] == "pending"
    assert "next_run_time" in resumed

    # Pausing a disabled task is allowed; disabled wins in the status.
    admin.ok("POST", f"{base}/disable")
    both = admin.ok("POST", f"{base}/pause")
    assert both["enabled"] is False and both["paused"] is True and both["schedule_status"] == "disabled"
    assert admin.ok("POST", f"{base}/enable")["schedule_status"] == "paused"
    final = admin.ok("POST", f"{base}/resume")
    assert final["schedule_status"] == "pending"
    assert admin.ok("GET", base) == final


@pytest.mark.parametrize("action", ["enable", "disable", "pause", "resume", "trigger"])
def test_state_changes_of_a_missing_task_are_404(admin: Api, action: str) -> None:
    error(admin.post(f"/tasks/99999999/{action}"), 404, "任务 99999999 不存在")


# ---- trigger ----------------------------------------------------------------------------------


def test_trigger_works_for_every_type_and_state(admin: Api) -> None:
    child_a, child_b = create(admin), create(admin)
    workflow = create(
        admin,
        task_type="workflow",
        config={
            "workflow_type": "parallel",
            "tasks": [
                {"task_id": child_a["id"], "name": "A", "dependencies": []},
                {"task_id": child_b["id"], "name": "B", "dependencies": []},
            ],
        },
    )
    disabled = create(admin, interval_seconds=3600, enabled=False)
    paused = create(admin, interval_seconds=3600)
    paused = admin.ok("POST", f"/tasks/{paused['id']}/pause")
    tasks = [
        create(admin, interval_seconds=3600),
        create(admin, cron_expression="0 3 * * *"),
        create(admin, task_type="manual_task", config=COMMAND_CONFIG),
        create(admin, task_type="common_task", config=COMMAND_CONFIG),  # no schedule at all
        create(
            admin, task_type="common_task", config={"task_action": "example_task", "duration_seconds": 0.1}
        ),
        workflow,
        disabled,
        paused,
    ]
    runs = [(task, trigger(admin, task["id"])) for task in tasks]
    assert len({execution_id for _, execution_id in runs}) == len(runs)
    for task, execution_id in runs:
        if task is workflow:
            # How a workflow run goes is the workflow engine's business (its own tests); here: the
            # trigger made a run of the workflow itself.
            run = admin.ok("GET", f"/tasks/{task['id']}/executions/{execution_id}")
            assert run["task_id"] == task["id"] and run["trigger"] == "manual"
        else:
            finished = admin.wait_execution(task["id"], execution_id)
            assert finished["task_id"] == task["id"] and finished["trigger"] == "manual"
            assert finished["status"] == "success", finished
        after = admin.ok("GET", f"/tasks/{task['id']}")
        # Triggering never changes enabled, paused or the schedule.
        assert schedule_view(after) == schedule_view(task), task["name"]
        assert after["updated_at"] == task["updated_at"]
    assert admin.ok("GET", f"/tasks/{disabled['id']}")["schedule_status"] == "disabled"
    assert admin.ok("GET", f"/tasks/{paused['id']}")["schedule_status"] == "paused"


def test_two_triggers_make_two_runs(admin: Api) -> None:
    task = create(admin, concurrency_policy="allow")
    first, second = trigger(admin, task["id"]), trigger(admin, task["id"])
    assert second > first
    for execution_id in (first, second):
        assert admin.wait_execution(task["id"], execution_id)["status"] == "success"


# ---- delete -----------------------------------------------------------------------------------


def test_delete_then_404(admin: Api) -> None:
    task = create(admin)
    execution_id = trigger(admin, task["id"])
    admin.wait_execution(task["id"], execution_id)
    deleted = admin.ok("DELETE", f"/tasks/{task['id']}")
    assert deleted == {"message": "任务已删除"}
    error(admin.get(f"/tasks/{task['id']}"), 404, f"任务 {task['id']} 不存在")
    error(admin.delete(f"/tasks/{task['id']}"), 404, f"任务 {task['id']} 不存在")
    error(admin.get(f"/tasks/{task['id']}/executions"), 404, f"任务 {task['id']} 不存在")
    error(admin.get(f"/executions/{execution_id}"), 404, f"执行记录 {execution_id} 不存在")
    assert listing(admin, name=task["name"])["total"] == 0
    # The name is free again.
    create(admin, name=task["name"])


def test_delete_is_refused_while_a_run_is_active_unless_forced(admin: Api) -> None:
    task = create(admin, config=LONG_CONFIG)
    execution_id = trigger(admin, task["id"])
    wait_for(
        lambda: admin.ok("GET", f"/tasks/{task['id']}/executions/{execution_id}")["status"] == "running",
        10,
        "the run to start",
    )
    error(admin.delete(f"/tasks/{task['id']}"), 409, contains="有正在等待或运行的执行记录")
    assert admin.ok("GET", f"/tasks/{task['id']}")["id"] == task["id"]
    assert admin.ok("DELETE", f"/tasks/{task['id']}", params={"force": "true"}) == {"message": "任务已删除"}
    error(admin.get(f"/tasks/{task['id']}"), 404, f"任务 {task['id']} 不存在")
    error(admin.get(f"/executions/{execution_id}"), 404, f"执行记录 {execution_id} 不存在")


def test_delete_of_a_missing_task_is_404(admin: Api) -> None:
    error(admin.delete("/tasks/99999999"), 404, "任务 99999999 不存在")
    error(admin.delete("/tasks/99999999", params={"force": "true"}), 404, "任务 99999999 不存在")


# ---- batch create -----------------------------------------------------------------------------

BATCH = "/tasks:batchCreate"


def test_a_batch_creates_every_task_in_order_and_the_scheduler_runs_them(admin: Api) -> None:
    prefix = unique("batch")
    items = [body(f"{prefix}_{i}", interval_seconds=3600) for i in range(50)]
    items[7] = body(f"{prefix}_7", interval_seconds=1, max_retries=0)  # the scheduler hears of it
    created = admin.ok("POST", BATCH, json={"tasks": items})["tasks"]
    assert [task["name"] for task in created] == [item["name"] for item in items]
    for task in created:
        assert_task(task)
    assert created[0]["created_by"] == "admin" and created[0]["max_retries"] == 3  # CreateTask's defaults
    listed = listing(admin, name=prefix, limit=100, order_by="id", order="asc")
    assert listed["total"] == 50 and [t["id"] for t in listed["tasks"]] == [t["id"] for t in created]
    wait_for(lambda: admin.executions(created[7]["id"]), 10, "a run of the batch's 1 s task")
    admin.ok("POST", f"/tasks/{created[7]['id']}/disable")


def test_a_batch_with_one_invalid_item_creates_none_and_names_the_item(admin: Api) -> None:
    prefix = unique("batch")
    items = [body(f"{prefix}_0"), body(f"{prefix}_1", task_type="manual_task", cron_expression="0 18 * * *")]
    items.append(body(f"{prefix}_2"))
    detail = error(
        admin.post(BATCH, json={"tasks": items}), 400, contains="tasks[1]: 手动任务不支持 Cron 表达式调度"
    )
    assert "tasks[0]" not in detail and "tasks[2]" not in detail
    assert listing(admin, name=prefix)["total"] == 0


def test_names_taken_in_the_batch_or_before_are_409_per_item_and_nothing_is_created(admin: Api) -> None:
    taken = create(admin)["name"]
    prefix = unique("batch")
    items = [body(f"{prefix}_a"), body(taken), body(f"{prefix}_a"), body(f"{prefix}_b")]
    detail = error(admin.post(BATCH, json={"tasks": items}), 409)
    assert f"tasks[1]: 任务名称 '{taken}' 已存在" in detail
    assert f"tasks[2]: 任务名称 '{prefix}_a' 与 tasks[0] 重复" in detail
    assert listing(admin, name=prefix)["total"] == 0
    # A mix of a taken name and another invalid item is a 400 naming both.
    items[3] = body(f"{prefix}_b", interval_seconds=-5)
    detail = error(admin.post(BATCH, json={"tasks": items}), 400, contains="tasks[3]: 间隔秒数必须在1到")
    assert "tasks[1]" in detail


def test_a_batch_is_admin_only(admin: Api, operator: Api, viewer: Api) -> None:
    prefix = unique("batch")
    for user in (viewer, operator):
        error(user.post(BATCH, json={"tasks": [body(f"{prefix}_x")]}), 403, ADMIN_ONLY)
    assert listing(admin, name=prefix)["total"] == 0


def test_a_batch_of_more_than_1000_is_refused_and_an_empty_one_creates_nothing(admin: Api) -> None:
    prefix = unique("batch")
    items = [body(f"{prefix}_{i}") for i in range(1001)]
    error(admin.post(BATCH, json={"tasks": items}), 400, "一次最多创建1000个任务，收到1001个")
    assert listing(admin, name=prefix)["total"] == 0
    assert admin.ok("POST", BATCH, json={"tasks": []}) == {"tasks": []}
    assert len(admin.ok("POST", BATCH, json={"tasks": items[:1000]})["tasks"]) == 1000


def test_grpc_clients_get_the_invalid_items_as_field_violations(stack: Stack, admin: Api) -> None:
    prefix = unique("batch")
    request = task_service_pb2.BatchCreateTasksRequest(
        tasks=[
            task_service_pb2.CreateTaskRequest(
                name=f"{prefix}_0", task_type="manual_task", interval_seconds=60
            ),
            task_service_pb2.CreateTaskRequest(name="", task_type="example_task"),
            task_service_pb2.CreateTaskRequest(name=f"{prefix}_2", task_type="example_task"),
        ]
    )
    address = stack.http_url.removeprefix("http://")
    with (
        grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        task_service_pb2_grpc.TaskServiceStub(channel).BatchCreateTasks(
            request, metadata=(("authorization", f"Bearer {admin.token}"),)
        )
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None and status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    violations = error_details_pb2.BadRequest()
    assert [detail for detail in status.details if detail.Unpack(violations)]
    assert [(v.field, v.description) for v in violations.field_violations] == [
        ("tasks[0]", "手动任务不支持间隔调度"),
        ("tasks[1]", "任务名称不能为空"),
    ]


# ---- roles ------------------------------------------------------------------------------------


def test_viewer_gets_403_on_every_mutation(admin: Api, viewer: Api) -> None:
    task = create(admin, interval_seconds=3600)
    execution_id = trigger(admin, task["id"])
    admin.wait_execution(task["id"], execution_id)
    base = f"/tasks/{task['id']}"
    error(viewer.post("/tasks", json=body()), 403, ADMIN_ONLY)
    error(viewer.put(base, json={"description": "x"}), 403, ADMIN_ONLY)
    error(viewer.delete(base), 403, ADMIN_ONLY)
    error(viewer.delete(base, params={"force": "true"}), 403, ADMIN_ONLY)
    for action in ("enable", "disable", "pause", "resume", "trigger"):
        error(viewer.post(f"{base}/{action}"), 403, OPERATOR_ONLY)
    error(viewer.post(f"/executions/{execution_id}/terminate"), 403, OPERATOR_ONLY)
    # Nothing changed and nothing ran.
    after = admin.ok("GET", base)
    assert schedule_view(after) == schedule_view(task)
    assert after["description"] == task["description"] and after["updated_at"] == task["updated_at"]
    assert admin.ok("GET", f"{base}/executions")["total"] == 1


def test_operator_may_change_state_and_trigger_but_not_edit(admin: Api, operator: Api) -> None:
    task = create(admin, interval_seconds=3600)
    base = f"/tasks/{task['id']}"
    error(operator.post("/tasks", json=body()), 403, ADMIN_ONLY)
    error(operator.put(base, json={"description": "x"}), 403, ADMIN_ONLY)
    error(operator.delete(base), 403, ADMIN_ONLY)
    assert operator.ok("POST", f"{base}/disable")["enabled"] is False
    assert operator.ok("POST", f"{base}/enable")["enabled"] is True
    assert operator.ok("POST", f"{base}/pause")["paused"] is True
    resumed = operator.ok("POST", f"{base}/resume")
    assert resumed["paused"] is False and resumed["updated_by"] == "op"
    execution_id = trigger(operator, task["id"])
    assert operator.wait_execution(task["id"], execution_id)["status"] == "success"
    assert admin.ok("GET", base)["description"] == ""


def test_viewer_can_read_everything(admin: Api, viewer: Api) -> None:
    child = create(admin)
    workflow = create(
        admin,
        task_type="workflow",
        config={"workflow_type": "serial", "tasks": [{"task_id": child["id"], "name": "only"}]},
    )
    execution_id = trigger(admin, child["id"])
    admin.wait_execution(child["id"], execution_id)
    assert viewer.ok("GET", f"/tasks/{child['id']}")["id"] == child["id"]
    assert viewer.ok("GET", "/tasks", params={"name": workflow["name"]})["total"] == 1
    assert viewer.ok("GET", f"/tasks/{child['id']}/executions")["total"] == 1
    assert viewer.ok("GET", f"/tasks/{child['id']}/executions/{execution_id}")["status"] == "success"
    assert viewer.ok("GET", f"/executions/{execution_id}")["id"] == execution_id
    assert viewer.ok("GET", "/executions", params={"task_id": child["id"]})["total"] == 1
    assert viewer.ok("GET", "/stats", params={"task_id": child["id"]})["success_count"] == 1
    assert viewer.ok("GET", "/stats")["total_executions"] >= 1
    assert [t["id"] for t in viewer.ok("GET", f"/tasks/{workflow['id']}/workflow")["tasks"]] == [child["id"]]
    validated = viewer.ok("POST", f"/tasks/{workflow['id']}/workflow/validate", json=workflow["config"])
    assert validated == {"valid": True, "message": "配置有效", "reason": "", "task_ids": []}
    assert (
        len(viewer.ok("GET", "/cron/preview", params={"cron_expression": "0 18 * * *"})["next_run_times"])
        == 5
    )
    watch = viewer.get(f"/tasks/{child['id']}/executions/{execution_id}/watch")
    assert watch.status_code == 200 and '"event_type":"end"' in watch.text


# ---- cron preview -----------------------------------------------------------------------------


def preview(api: Api, **params: Any) -> list[datetime]:
    result = api.ok("GET", "/cron/preview", params=params)
    # Without a calendar, its fields are empty (tests/integration/test_calendars.py covers them).
    assert result.keys() == {"next_run_times", "calendar_data_end", "calendar_note"}
    assert result["calendar_data_end"] == result["calendar_note"] == ""
    return [parse_time(text) for text in result["next_run_times"]]


def test_cron_preview_in_the_time_zone(admin: Api) -> None:
    times = preview(admin, cron_expression="0 18 * * *", timezone="Asia/Shanghai")
    assert len(times) == 5
    now = datetime.now(UTC)
    assert now < times[0] <= now + timedelta(days=1)
    assert all((t.hour, t.minute, t.second) == (10, 0, 0) for t in times)  # 18:00 +08:00
    assert all(b - a == timedelta(days=1) for a, b in pairwise(times))
    # Without a zone: the registry's default (Asia/Shanghai).
    assert preview(admin, cron_expression="0 18 * * *") == times
    utc = preview(admin, cron_expression="0 18 * * *", timezone="UTC")
    assert all(t.hour == 18 for t in utc)


def test_cron_preview_count_and_dialect(admin: Api) -> None:
    assert len(preview(admin, cron_expression="*/30 * * * *", count=3)) == 3
    assert len(preview(admin, cron_expression="*/30 * * * *", count=50)) == 50
    assert len(preview(admin, cron_expression="*/30 * * * *", count=0)) == 5
    # Standard crontab weekdays (1-5 = Monday to Friday, 7 = Sunday), not APScheduler's 0 = Monday.
    zone = "Asia/Shanghai"
    weekdays = preview(admin, cron_expression="0 9 * * 1-5", timezone=zone, count=10)
    local = [t.astimezone(ZoneInfo(zone)) for t in weekdays]
    assert {t.isoweekday() for t in local} == {1, 2, 3, 4, 5} and all(t.hour == 9 for t in local)
    sundays = preview(admin, cron_expression="0 0 * * 7", timezone="UTC", count=3)
    assert all(t.isoweekday() == 7 for t in sundays)
    assert preview(admin, cron_expression="0 0 * * SUN", timezone="UTC", count=3) == sundays
    # Six fields: seconds first.
    seconds = preview(admin, cron_expression="0/15 * * * * *", timezone="UTC", count=4)
    assert all(b - a == timedelta(seconds=15) for a, b in pairwise(seconds))
    assert all(t.second % 15 == 0 for t in seconds)
    last = preview(admin, cron_expression="0 0 L * ?", timezone="UTC", count=3)
    assert all((t + timedelta(days=1)).day == 1 for t in last)


def test_cron_preview_across_daylight_saving_time(admin: Api) -> None:
    """A local time that does not exist fires at the end of the gap; a repeated one fires once."""
    zone = ZoneInfo("America/New_York")
    spring = preview(admin, cron_expression="30 2 * 3 *", timezone="America/New_York", count=31)
    local = [t.astimezone(zone) for t in spring]
    assert len({t.date() for t in local}) == 31
    gaps = 0
    for moment in local:
        wall = datetime(moment.year, moment.month, moment.day, 2, 30, tzinfo=zone)
        exists = wall.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None)
        if exists:
            assert (moment.hour, moment.minute) == (2, 30), moment
        else:
            gaps += 1
            assert (moment.hour, moment.minute) == (3, 0), moment
    assert gaps == 1
    autumn = preview(admin, cron_expression="30 1 * 11 *", timezone="America/New_York", count=30)
    dates = [t.astimezone(zone).date() for t in autumn]
    assert len(set(dates)) == 30 and dates == sorted(dates)


def test_cron_preview_errors(admin: Api) -> None:
    error(
        admin.get("/cron/preview", params={"cron_expression": "0 25 * * *"}),
        400,
        "Cron表达式无效: 第2个字段(时) '25': 超出范围 0-23",
    )
    error(
        admin.get("/cron/preview", params={"cron_expression": "* * *"}),
        400,
        contains="Cron表达式无效",
        reason="CRON_INVALID",
    )
    error(admin.get("/cron/preview", params={"cron_expression": ""}), 400, "Cron表达式不能为空")
    error(admin.get("/cron/preview"), 400, "Cron表达式不能为空")
    error(
        admin.get("/cron/preview", params={"cron_expression": "0 18 * * *", "timezone": "Mars/Base"}),
        400,
        "无效的时区: Mars/Base",
    )
    error(
        admin.get("/cron/preview", params={"cron_expression": "0 18 * * *", "count": 51}),
        400,
        "count 必须在1到50之间",
    )
    error(
        admin.get("/cron/preview", params={"cron_expression": "0 18 * * *", "count": -1}),
        400,
        "count 必须在1到50之间",
    )


def test_a_one_time_run_in_the_past_is_400(admin: Api) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    error(admin.post("/tasks", json=body(run_at=past)), 400, "一次性运行时间必须晚于当前时间")
    task = create(admin)
    error(admin.put(f"/tasks/{task['id']}", json={"run_at": past}), 400, "一次性运行时间必须晚于当前时间")

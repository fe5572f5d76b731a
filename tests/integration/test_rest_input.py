"""Strict input through the real Envoy, on both backends: what a client sends is either stored as
sent or refused with a 400 and its reason, never silently changed and never a 5xx; and `forbid`
applies to manual triggers (REST and gRPC)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from stack import Stack
from tests.integration.api import Api, error, unique
from zquant.scheduler.v1 import task_service_pb2, task_service_pb2_grpc

JSON = {"content-type": "application/json"}


def body(**fields: Any) -> dict[str, Any]:
    return {"name": unique("in"), "task_type": "example_task", "config": {"steps": 1}, **fields}


def post_raw(api: Api, path: str, text: str) -> httpx.Response:
    return api.post(path, content=text.encode(), headers=JSON)


# ---- the JSON itself ----------------------------------------------------------------------------


def test_a_misspelt_field_is_refused_by_its_name(admin: Api) -> None:
    error(
        admin.post("/tasks", json=body(interval_second=5)),
        400,
        contains="interval_second",
        reason="TASK_INVALID",
    )


def test_a_trailing_comma_is_not_json(admin: Api) -> None:
    text = json.dumps(body())[:-1] + ",}"
    error(post_raw(admin, "/tasks", text), 400, contains="JSON", reason="INVALID_ARGUMENT")


def test_duplicate_keys_and_nan_are_refused(admin: Api) -> None:
    name = unique("dup")
    error(post_raw(admin, "/tasks", f'{{"name":"{name}","name":"x","task_type":"manual_task"}}'), 400)
    error(
        post_raw(admin, "/tasks", f'{{"name":"{name}","task_type":"example_task","config":{{"steps":NaN}}}}'),
        400,
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"enabled": "yes"},
        {"enabled": 1},
        {"interval_seconds": "60"},
        {"max_retries": True},
        {"interval_seconds": 0},
        {"description": 5},
    ],
    ids=[
        "bool-as-string",
        "bool-as-number",
        "number-as-string",
        "number-as-bool",
        "interval-0",
        "text-as-number",
    ],
)
def test_types_are_exact(admin: Api, fields: dict[str, Any]) -> None:
    error(admin.post("/tasks", json=body(**fields)), 400, reason="TASK_INVALID")


def test_an_update_is_as_strict(admin: Api) -> None:
    task = admin.create_task(name=unique("upd"))
    path = f"/tasks/{task['id']}"
    error(admin.put(path, json={"enabled": "yes"}), 400, reason="TASK_INVALID")
    error(admin.put(path, json={"interval_second": 5}), 400, contains="interval_second")
    error(admin.put(path, json={"interval_seconds": 0}), 400, reason="TASK_INVALID")
    error(post_raw_put(admin, path, '{"description":"x",}'), 400, contains="JSON")
    assert admin.ok("GET", path)["description"] == ""


def post_raw_put(api: Api, path: str, text: str) -> httpx.Response:
    return api.put(path, content=text.encode(), headers=JSON)


def test_a_batch_is_as_strict(admin: Api) -> None:
    error(admin.post("/tasks:batchCreate", json={"tasks": [body()], "extra": 1}), 400, contains="extra")
    response = admin.post("/tasks:batchCreate", json={"tasks": [body(), body(enabled="yes")]})
    assert "tasks[1]" in error(response, 400, reason="TASK_INVALID")
    response = admin.post("/tasks:batchCreate", json={"tasks": [body(), 7]})
    assert "tasks[1]" in error(response, 400, reason="TASK_INVALID")


# ---- text fields ----------------------------------------------------------------------------------


def test_a_nul_byte_is_a_400_in_every_text_field(admin: Api, anonymous: Api) -> None:
    error(admin.post("/tasks", json=body(description="a\x00b")), 400)
    error(admin.post("/tasks", json=body(name="a\x00b")), 400)
    error(admin.post("/tasks", json=body(config={"steps": 1, "k\x00": "v"})), 400)
    error(admin.get("/tasks", params={"name": "a\x00b"}), 400)
    login = anonymous.post("/api/v1/auth/login", json={"username": "ad\x00min", "password": "x"})
    error(login, 400)
    error(admin.get("/cron/preview", params={"cron_expression": "* * * * *", "timezone": "UTC\x00"}), 400)


def test_control_characters_are_refused_in_one_line_fields_only(admin: Api) -> None:
    error(admin.post("/tasks", json=body(name="line\nbreak")), 400, reason="TASK_INVALID")
    task = admin.ok("POST", "/tasks", json=body(description="two\nlines"))
    assert task["description"] == "two\nlines"


def test_a_valid_cron_longer_than_its_column_is_a_400(admin: Api) -> None:
    every = ",".join(str(value) for value in range(60))
    long_cron = f"{every} {every} * * * *"  # valid: every second, spelt out
    assert len(long_cron) > 200
    error(admin.post("/tasks", json=body(cron_expression=long_cron)), 400, reason="CRON_INVALID")


def test_text_limits(admin: Api) -> None:
    error(admin.post("/tasks", json=body(name="n" * 101)), 400, reason="TASK_INVALID")
    error(admin.post("/tasks", json=body(timezone="A" * 65)), 400, reason="TIMEZONE_INVALID")
    error(admin.get("/tasks", params={"name": "n" * 201}), 400, reason="FILTER_INVALID")


def test_a_huge_bad_input_makes_a_small_error(admin: Api) -> None:
    response = admin.post("/tasks", json=body(task_type="x" * 500_000))
    detail = error(response, 400, reason="TASK_INVALID")
    assert len(detail) < 500


# ---- JSON size and depth ----------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_deep_or_huge_configs_are_refused(admin: Api) -> None:
    error(admin.post("/tasks", json=body(config={"steps": 1, **nested(40)})), 400)
    error(
        admin.post("/tasks", json=body(config={"steps": 1, "blob": "x" * 70_000})), 400, reason="TASK_INVALID"
    )
    task = admin.create_task(name=unique("wf"))
    validate = f"/tasks/{task['id']}/workflow/validate"
    error(admin.post(validate, json=nested(40)), 400)
    error(admin.post(validate, json={"blob": "x" * 70_000}), 400, reason="WORKFLOW_INVALID")


# ---- schedules and configs --------------------------------------------------------------------


def test_a_cron_that_never_fires_is_refused_with_the_reason(admin: Api) -> None:
    detail = error(admin.post("/tasks", json=body(cron_expression="0 0 30 2 *")), 400, reason="CRON_INVALID")
    assert "永远不会触发" in detail
    error(admin.get("/cron/preview", params={"cron_expression": "0 0 30 2 *"}), 400, reason="CRON_INVALID")


@pytest.mark.parametrize(
    "fields",
    [
        {"task_type": "example_task", "config": {"steps": 1e12}},
        {"task_type": "common_task", "config": {"command": 42}},
        {"task_type": "common_task", "config": {"command": ["echo", 1]}},
        {"task_type": "common_task", "config": {"command": "echo 'unclosed"}},
        {"task_type": "common_task", "config": {"command": "true", "env": {"A": 1}}},
        {"task_type": "common_task", "config": {"task_action": "example_task", "steps": 0}},
    ],
    ids=[
        "steps-1e12",
        "command-number",
        "command-list-of-non-strings",
        "command-unparsable",
        "env",
        "action",
    ],
)
def test_configs_are_checked_with_the_executors_rules_on_save(admin: Api, fields: dict[str, Any]) -> None:
    error(admin.post("/tasks", json=body(**fields)), 400, reason="TASK_INVALID")


def test_extreme_timestamps_are_a_400(admin: Api) -> None:
    for moment in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "+99999-01-01T00:00:00Z"):
        error(admin.get("/executions", params={"start_time_from": moment}), 400, reason="FILTER_INVALID")
        error(admin.post("/tasks", json=body(run_at=moment)), 400, reason="TASK_INVALID")


def test_an_update_racing_a_delete_is_a_404_never_a_500(admin: Api) -> None:
    for _ in range(5):
        task = admin.create_task(name=unique("race"))
        path = f"/tasks/{task['id']}"
        with ThreadPoolExecutor(max_workers=6) as pool:
            updates = [pool.submit(admin.put, path, json={"description": str(n)}) for n in range(5)]
            deleted = pool.submit(admin.delete, path)
        assert deleted.result().status_code == 200
        assert sorted({update.result().status_code for update in updates}) in ([200], [200, 404], [404])
    error(admin.put(path, json={"description": "late"}), 404, reason="TASK_NOT_FOUND")


def test_an_accepted_create_reads_back_as_sent(admin: Api) -> None:
    sent = body(
        description="d",
        interval_seconds=90,
        enabled=False,
        max_retries=2,
        retry_interval=5,
        timeout_seconds=30,
        concurrency_policy="allow",
        misfire_policy="skip",
        misfire_grace_seconds=7,
        timezone="UTC",
        config={"steps": 2, "duration_seconds": 0.5, "nested": {"list": [1, "a", None, True]}},
    )
    created = admin.ok("POST", "/tasks", json=sent)
    read = admin.ok("GET", f"/tasks/{created['id']}")
    assert {key: read[key] for key in sent} == sent


# ---- forbid applies to manual triggers --------------------------------------------------------


def slow_forbid_task(admin: Api) -> dict[str, Any]:
    return admin.create_task(name=unique("forbid"), config={"steps": 1, "duration_seconds": 30})


def test_triggering_a_forbid_task_with_a_live_run_is_a_409_naming_the_run(admin: Api) -> None:
    task = slow_forbid_task(admin)
    first = admin.ok("POST", f"/tasks/{task['id']}/trigger", json={})["execution_id"]
    detail = error(admin.post(f"/tasks/{task['id']}/trigger", json={}), 409, reason="RUN_ALREADY_ACTIVE")
    assert str(first) in detail
    admin.ok("POST", f"/executions/{first}/terminate", json={})
    admin.wait_execution(task["id"], first)
    second = admin.ok("POST", f"/tasks/{task['id']}/trigger", json={})["execution_id"]
    admin.ok("POST", f"/executions/{second}/terminate", json={})


def test_an_allow_task_may_run_twice(admin: Api) -> None:
    task = admin.create_task(
        name=unique("allow"), concurrency_policy="allow", config={"steps": 1, "duration_seconds": 5}
    )
    runs = [admin.ok("POST", f"/tasks/{task['id']}/trigger", json={})["execution_id"] for _ in range(2)]
    assert len(set(runs)) == 2
    for run in runs:
        admin.ok("POST", f"/executions/{run}/terminate", json={})


def test_fifty_parallel_triggers_of_a_forbid_task_start_exactly_one_run(admin: Api) -> None:
    task = slow_forbid_task(admin)
    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(lambda _: admin.post(f"/tasks/{task['id']}/trigger", json={}), range(50)))
    codes = sorted(response.status_code for response in responses)
    assert codes.count(200) == 1 and codes.count(409) == 49, codes
    runs = admin.executions(task["id"])
    assert len(runs) == 1
    admin.ok("POST", f"/executions/{runs[0]['id']}/terminate", json={})


def test_grpc_clients_get_the_same_conflict_with_the_run_as_a_detail(stack: Stack, admin: Api) -> None:
    task = slow_forbid_task(admin)
    first = admin.ok("POST", f"/tasks/{task['id']}/trigger", json={})["execution_id"]
    address = stack.http_url.removeprefix("http://")
    with (
        grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        task_service_pb2_grpc.TaskServiceStub(channel).TriggerTask(
            task_service_pb2.TriggerTaskRequest(task_id=task["id"]),
            metadata=(("authorization", f"Bearer {admin.token}"),),
        )
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None and status.code == grpc.StatusCode.ABORTED.value[0]
    assert str(first) in status.message
    info, resource = error_details_pb2.ErrorInfo(), error_details_pb2.ResourceInfo()
    assert [d for d in status.details if d.Unpack(info)] and info.reason == "RUN_ALREADY_ACTIVE"
    assert [d for d in status.details if d.Unpack(resource)]
    assert (resource.resource_type, resource.resource_name) == ("execution", str(first))
    admin.ok("POST", f"/executions/{first}/terminate", json={})


def test_calls_that_take_no_body_refuse_a_field_by_its_name(admin: Api) -> None:
    task = admin.create_task(name=unique("act"), concurrency_policy="allow")
    for action in ("trigger", "enable", "disable", "pause", "resume"):
        error(admin.post(f"/tasks/{task['id']}/{action}", json={"force": True}), 400, contains="force")
        error(post_raw(admin, f"/tasks/{task['id']}/{action}", "{,}"), 400, contains="JSON")
    run = admin.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]  # no body at all is fine
    error(admin.post(f"/executions/{run}/terminate", json={"grace": 1}), 400, contains="grace")
    admin.ok("POST", f"/executions/{run}/terminate", json={})


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand: protobuf itself refuses to build messages
    this deep."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_a_grpc_request_too_deep_to_parse_is_invalid_not_internal(stack: Stack, admin: Api) -> None:
    task = admin.create_task(name=unique("deep"))
    value = b"\x11" + b"\x00" * 7 + b"\x3f"  # google.protobuf.Value{number_value: 0.0078125}
    for _ in range(120):
        struct = _field(1, _field(1, b"a") + _field(2, value))  # Struct{fields: {"a": value}}
        value = _field(5, struct)  # Value{struct_value: struct}
    request = b"\x08" + _varint(task["id"]) + _field(2, struct)  # UpdateTaskRequest{task_id, changes}
    address = stack.http_url.removeprefix("http://")
    with (
        grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        update = channel.unary_unary("/zquant.scheduler.v1.TaskService/UpdateTask", None, None)
        update(request, metadata=(("authorization", f"Bearer {admin.token}"),))
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None and status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], status
    assert "Error" not in status.message and "upb" not in status.message

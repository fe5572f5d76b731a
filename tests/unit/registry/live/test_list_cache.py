"""The task-list cache: which changes drop which pages and totals, and its REST body: the JSON a
REST client gets for GET /api/v1/scheduler/tasks, rendered once per cached page, byte for byte as
Envoy's transcoder prints the page (checked against the real Envoy in
tests/integration/test_rest_tasks.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.api import httpbody_pb2
from google.protobuf import duration_pb2, json_format, message, struct_pb2, type_pb2, wrappers_pb2

from services.common.structs import dict_to_struct
from services.registry import rest_json
from services.registry.convert import to_timestamp
from services.registry.live.list_cache import RECENT_RUN_CHANGES, TaskListCache
from zquant.scheduler.v1 import task_pb2, task_service_pb2

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def task(**fields: Any) -> task_pb2.Task:
    defaults: dict[str, Any] = {
        "id": 7,
        "name": "daily",
        "task_type": "example_task",
        "interval_seconds": 3600,
        "timezone": "Asia/Shanghai",
        "enabled": True,
        "config": dict_to_struct({"steps": 2}),
        "max_retries": 3,
        "created_at": to_timestamp(NOW),
        "updated_at": to_timestamp(NOW + timedelta(microseconds=250)),
        "created_by": "admin",
        "next_run_time": to_timestamp(NOW + timedelta(hours=1)),
        "schedule_status": "pending",
    }
    defaults.update(fields)
    return task_pb2.Task(**defaults)


def page(*tasks: task_pb2.Task) -> task_service_pb2.ListTasksResponse:
    return task_service_pb2.ListTasksResponse(tasks=list(tasks), total=len(tasks))


def body(cache: TaskListCache, key: str) -> bytes:
    entry = cache.get(key)
    assert entry is not None
    data: bytes = entry.http_body().data
    return data


def test_the_body_is_the_gateways_json_for_the_page() -> None:
    cache = TaskListCache()
    config = {"steps": 2.0, "ratio": 0.1, "third": 1 / 3, "big": 1e21, "z": {"b": None, "a": [1, "<x>"]}}
    cache.put("k", page(task(name='日报 "<b>" 😀\u2028\t', config=dict_to_struct(config))), NOW)
    entry = cache.get("k")
    assert entry is not None
    assert entry.http_body().content_type == "application/json"
    assert entry.http_body().data == (
        b'{"tasks":[{"id":7,"name":"\xe6\x97\xa5\xe6\x8a\xa5 \\"\\u003cb\\u003e\\" \xf0\x9f\x98\x80\\u2028\\t",'
        b'"task_type":"example_task","cron_expression":"","interval_seconds":3600,'
        b'"timezone":"Asia/Shanghai","enabled":true,"paused":false,"description":"",'
        b'"config":{"big":1e+21,"ratio":0.1,"steps":2,"third":0.33333333333333331,'
        b'"z":{"a":[1,"\\u003cx\\u003e"],"b":null}},'
        b'"max_retries":3,"retry_interval":0,"timeout_seconds":0,"concurrency_policy":"",'
        b'"misfire_policy":"","misfire_grace_seconds":0,"created_at":"2025-03-01T08:00:00Z",'
        b'"updated_at":"2025-03-01T08:00:00.000250Z","created_by":"admin","updated_by":"",'
        b'"next_run_time":"2025-03-01T09:00:00Z","schedule_status":"pending",'
        b'"latest_execution_status":"","dependencies":[],"node_name":"","calendar":"","calendar_shift":0,'
        b'"calendar_holidays":"","tags":[]}],"total":1,"next_after_id":0}'
    )


def test_the_body_holds_what_the_page_holds() -> None:
    cache = TaskListCache()
    tasks = [
        task(id=3, run_at=to_timestamp(NOW + timedelta(days=1)), interval_seconds=0),
        task(id=2, config=dict_to_struct({}), latest_execution_status="failed", dependencies=[1, 4]),
        task(id=1, task_type="manual_task", next_run_time=None, latest_execution_time=to_timestamp(NOW)),
    ]
    cache.put("k", page(*tasks), NOW)
    assert json.loads(body(cache, "k")) == json_format.MessageToDict(
        page(*tasks), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def test_an_empty_page() -> None:
    cache = TaskListCache()
    cache.put("k", task_service_pb2.ListTasksResponse(total=5), NOW)
    assert body(cache, "k") == b'{"tasks":[],"total":5,"next_after_id":0}'


def test_the_body_is_rendered_once_per_cache_fill() -> None:
    clock = Clock()
    cache = TaskListCache(max_age=5, clock=clock)
    cache.put("k", page(task(name="before")), NOW)
    first = cache.get("k")
    assert first is not None
    assert first.http_body() is first.http_body()
    again = cache.get("k")
    assert again is not None and again.http_body() is first.http_body()
    # A change drops the page and its body; the next fill renders the new data.
    cache.task_changed(7)
    assert cache.get("k") is None
    cache.put("k", page(task(name="after")), NOW)
    assert b'"name":"after"' in body(cache, "k")
    clock.now += 5
    assert cache.get("k") is None


def test_a_page_read_across_a_task_change_is_served_but_not_cached() -> None:
    cache = TaskListCache()
    began = cache.read_start()
    cache.task_changed(99)  # any task: it may now belong on the page
    entry = cache.put("k", page(task(name="read before the change")), NOW, began)
    assert b"read before the change" in entry.http_body().data
    assert cache.get("k") is None
    cache.put("k", page(task(name="read after it")), NOW, cache.read_start())
    assert b"read after it" in body(cache, "k")


def test_a_run_change_drops_only_the_pages_that_show_its_task() -> None:
    cache = TaskListCache()
    cache.put("first", page(task(id=1), task(id=2)), NOW)
    cache.put("second", page(task(id=3)), NOW)
    cache.run_changed(2)
    assert cache.get("first") is None
    assert cache.get("second") is not None
    cache.run_changed(None)  # any run may have changed
    assert cache.get("second") is None


def test_a_page_read_across_run_changes_is_cached_unless_one_is_of_its_tasks() -> None:
    cache = TaskListCache()
    began = cache.read_start()
    cache.run_changed(5)  # a task the page does not show
    cache.put("k", page(task(id=1)), NOW, began)
    assert cache.get("k") is not None
    began = cache.read_start()
    cache.run_changed(5)
    cache.run_changed(1)  # one it shows
    cache.put("other", page(task(id=1)), NOW, began)
    assert cache.get("other") is None


def test_a_page_read_across_more_run_changes_than_are_remembered_is_not_cached() -> None:
    cache = TaskListCache()
    began = cache.read_start()
    for _ in range(RECENT_RUN_CHANGES + 1):
        cache.run_changed(5)
    cache.put("k", page(task(id=1)), NOW, began)
    assert cache.get("k") is None


def test_a_total_outlives_run_changes_but_not_a_task_change() -> None:
    cache = TaskListCache()
    matches = ("", None, "sync", False, "")
    cache.put_total(matches, 42, cache.read_start())
    cache.run_changed(7)
    cache.run_changed(None)
    assert cache.total(matches) == 42
    cache.task_changed(7)
    assert cache.total(matches) is None


def test_a_total_counted_across_a_task_change_is_not_kept() -> None:
    cache = TaskListCache()
    began = cache.read_start()
    cache.task_changed(None)
    cache.put_total(("",), 41, began)
    assert cache.total(("",)) is None


def test_a_total_expires_like_a_page() -> None:
    clock = Clock()
    cache = TaskListCache(max_age=5, clock=clock)
    cache.put_total(("",), 3, cache.read_start())
    clock.now += 5
    assert cache.total(("",)) is None


def test_a_page_too_stale_to_cache_still_has_a_body() -> None:
    cache = TaskListCache()
    stale = page(task(next_run_time=to_timestamp(NOW - timedelta(seconds=1))))
    entry = cache.put("k", stale, NOW)
    assert cache.get("k") is None
    assert json.loads(entry.http_body().data)["tasks"][0]["next_run_time"] == "2025-03-01T07:59:59Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (wrappers_pb2.Int64Value(value=2**53 + 1), b'"9007199254740993"'),  # 64-bit ints are strings
        (wrappers_pb2.UInt64Value(), b'"0"'),
        (wrappers_pb2.FloatValue(value=0.1), b"0.1"),
        (wrappers_pb2.DoubleValue(value=float("nan")), b'"NaN"'),
        (wrappers_pb2.BoolValue(), b"false"),
        (duration_pb2.Duration(seconds=-1, nanos=-500_000_000), b'"-1.500s"'),
        (httpbody_pb2.HttpBody(data=b"\xff\x00a"), b'{"content_type":"","data":"/wBh","extensions":[]}'),
        (  # enums by name; fields in field-number order, defaults included
            type_pb2.Field(kind=type_pb2.Field.TYPE_INT64, number=3),
            b'{"kind":"TYPE_INT64","cardinality":"CARDINALITY_UNKNOWN","number":3,"name":"",'
            b'"type_url":"","oneof_index":0,"packed":false,"options":[],"json_name":"","default_value":""}',
        ),
        (struct_pb2.ListValue(values=[struct_pb2.Value(), struct_pb2.Value(number_value=-0.5)]), b"[-0.5]"),
    ],
)
def test_other_types_print_as_the_transcoder_prints_them(value: message.Message, expected: bytes) -> None:
    assert rest_json.render(value) == expected

"""The input rules every public call obeys (services.common.input_checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import struct_pb2

from services.common.errors import InvalidArgument, Reason
from services.common.input_checks import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    check_empty_body,
    check_json,
    check_request,
    check_text,
    parse_json_object,
    parse_rfc3339,
    shown,
)
from zquant.scheduler.v1 import task_service_pb2


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"a": 1,}', "不是有效的 JSON"),
        (b'{"a": 1, "a": 2}', "字段重复: a"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": 1e400}', "数值超出范围"),
        (b'{"a": 9007199254740993}', "整数超出范围"),
        (b'{"a": "\\ud800"}', "代理项"),
        (b'{"a": "x\\u0000"}', "NUL"),
        (b'{"a\\u0000": 1}', "NUL"),
        (b"[1]", "必须是 JSON 对象"),
        (b"\xff", "UTF-8"),
        (b"[" * 100_000, "嵌套"),
    ],
)
def test_a_request_body_is_parsed_strictly(body: bytes, says: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse_json_object(body)
    assert says in refused.value.message


def test_a_plain_object_parses_as_sent() -> None:
    assert parse_json_object(b'{"a": [1, 2.5, null, true, "x"], "b": {}}') == {
        "a": [1, 2.5, None, True, "x"],
        "b": {},
    }


def test_json_depth_and_size_have_limits() -> None:
    check_json(nested(MAX_JSON_DEPTH), "配置")
    with pytest.raises(InvalidArgument, match="嵌套"):
        check_json(nested(MAX_JSON_DEPTH + 1), "配置")
    with pytest.raises(InvalidArgument, match="字节"):
        check_json({"blob": "x" * MAX_JSON_BYTES}, "配置")


def test_text_limits_and_control_characters() -> None:
    assert check_text("ok", "名称", 2) == "ok"
    with pytest.raises(InvalidArgument, match="不能超过2个字符"):
        check_text("long", "名称", 2)
    with pytest.raises(InvalidArgument, match="控制字符"):
        check_text("a\tb", "名称", 10)
    assert check_text("a\nb", "描述", 10, one_line=False) == "a\nb"
    with pytest.raises(InvalidArgument, match="控制字符"):
        check_text("a\x00b", "描述", 10, one_line=False)


def test_what_an_error_echoes_is_short_and_visible() -> None:
    assert shown("x" * 1000).startswith("x" * 60) and len(shown("x" * 1000)) < 80
    assert shown("a\x00b") == "a\\x00b"


def test_a_nul_anywhere_in_a_request_is_refused_with_its_field() -> None:
    config = struct_pb2.Struct()
    config.update({"outer": {"list": ["ok", "bad\x00"]}})
    with pytest.raises(InvalidArgument, match=r"config\.outer\.list\[1\] 不能包含 NUL"):
        check_request(task_service_pb2.CreateTaskRequest(name="t", config=config))
    with pytest.raises(InvalidArgument, match="name"):
        check_request(task_service_pb2.ListTasksRequest(name="a\x00"))
    check_request(task_service_pb2.CreateTaskRequest(name="fine", description="two\nlines"))


def test_a_struct_nested_too_deep_is_refused() -> None:
    deep = struct_pb2.Struct()
    deep.update(nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(InvalidArgument, match="嵌套"):
        check_request(task_service_pb2.UpdateTaskRequest(task_id=1, changes=deep))


def test_a_body_that_must_be_empty() -> None:
    check_empty_body(b"")
    check_empty_body(b" {} ")
    with pytest.raises(InvalidArgument, match="force"):
        check_empty_body(b'{"force": true}')


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "+99999-01-01T00:00:00Z"]
)
def test_times_out_of_range_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse_rfc3339(text, "start_time_from", reason=Reason.FILTER_INVALID)
    assert refused.value.reason == Reason.FILTER_INVALID


def test_times_are_read_as_utc() -> None:
    moment = parse_rfc3339("2026-01-01T08:00:00+08:00", "t", reason=Reason.TASK_INVALID)
    assert moment == datetime(2026, 1, 1, tzinfo=UTC) and moment.tzinfo is UTC

"""Rules every public input obeys whatever its field: checked first, before a store or parser sees it.

Two kinds of rule live here. `check_request` walks a whole request message and refuses what no
field may hold: a NUL byte in any string (PostgreSQL cannot store one, in text or JSON), and JSON
(`google.protobuf.Struct`/`ListValue`) nested deeper than MAX_JSON_DEPTH. The registry's server runs
it on every public call before the handler, so it covers fields no handler validates (the login's
username, list filters). `check_text` and `check_json` are the per-field rules the stores apply:
a length limit, no control characters in one-line fields, a JSON size limit.

Error messages echo at most ECHO_CHARS of what was sent (`shown`): a huge bad input must not make a
huge error, which the gateway could not pass on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.common.errors import InvalidArgument, Reason

# Deeper JSON is refused: configs are flat in practice, and recursion over it must stay bounded.
MAX_JSON_DEPTH = 32
# A task's config (and a workflow to validate), as compact JSON.
MAX_JSON_BYTES = 64 * 1024
ECHO_CHARS = 60
# Integers JSON numbers keep exactly once stored as doubles (protobuf's Struct).
MAX_EXACT_INTEGER = 2**53
# C0 controls and DEL; one-line fields (names, cron, time zones, usernames, filters) refuse them.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def shown(value: Any) -> str:
    """`value` for an error message: its first ECHO_CHARS characters, marked when cut."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape").decode("ascii") if _CONTROL.search(text) else text
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + f"…（共{len(text)}个字符）"


def check_text(
    value: str, label: str, max_chars: int, *, one_line: bool = True, reason: Reason = Reason.INVALID_ARGUMENT
) -> str:
    """`value` unchanged, or InvalidArgument when too long or holding a character it may not."""
    if len(value) > max_chars:
        raise InvalidArgument(f"{label}不能超过{max_chars}个字符", reason=reason)
    if "\x00" in value or (one_line and _CONTROL.search(value)):
        raise InvalidArgument(f"{label}不能包含控制字符: {shown(value)}", reason=reason)
    return value


def check_json(value: Any, label: str, *, reason: Reason = Reason.INVALID_ARGUMENT) -> None:
    """Refuses JSON nested deeper than MAX_JSON_DEPTH or longer than MAX_JSON_BYTES compact."""
    _check_depth(value, label, reason)
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_JSON_BYTES:
        raise InvalidArgument(f"{label}不能超过{MAX_JSON_BYTES}字节（收到{size}字节）", reason=reason)


def _check_depth(value: Any, label: str, reason: Reason) -> None:
    # Iterative: the depth is what is being checked, so recursion could fail first.
    level: list[Any] = [value]
    for _ in range(MAX_JSON_DEPTH + 1):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item if isinstance(item, list) else ())
            if isinstance(child, dict | list)
        ]
        if not level:
            return
    raise InvalidArgument(f"{label}嵌套不能超过{MAX_JSON_DEPTH}层", reason=reason)


def check_request(message: Message) -> None:
    """Refuses a request holding a NUL byte in any string, or JSON nested too deep (see above).
    Fields are named as a client wrote them: `config.outer.list[1]`."""
    # Iterative: (message, its path, its JSON depth).
    pending: list[tuple[Message, str, int]] = [(message, "", 0)]
    while pending:
        current, path, depth = pending.pop()
        if isinstance(current, struct_pb2.Struct | struct_pb2.ListValue):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidArgument(f"{path or '请求'}: JSON 嵌套不能超过{MAX_JSON_DEPTH}层")
        if isinstance(current, struct_pb2.Struct):
            for key, item in current.fields.items():
                _check_string(f"{path}.{shown(key)}", key)
                pending.append((item, f"{path}.{shown(key)}", depth))
        elif isinstance(current, struct_pb2.ListValue):
            pending.extend((item, f"{path}[{index}]", depth) for index, item in enumerate(current.values))
        elif isinstance(current, struct_pb2.Value):
            kind = current.WhichOneof("kind")
            if kind == "string_value":
                _check_string(path, current.string_value)
            elif kind in ("struct_value", "list_value"):
                pending.append((getattr(current, kind), path, depth))
        else:
            for field, value in current.ListFields():
                name = f"{path}.{field.name}" if path else field.name
                if field.message_type is not None and field.message_type.GetOptions().map_entry:
                    value_field = field.message_type.fields_by_name["value"]
                    for key, item in value.items():
                        _check_string(f"{name}.{shown(key)}", key)
                        _check_item(value_field, item, f"{name}.{shown(key)}", depth, pending)
                elif field.is_repeated:
                    for index, item in enumerate(value):
                        _check_item(field, item, f"{name}[{index}]", depth, pending)
                else:
                    _check_item(field, value, name, depth, pending)


def _check_item(
    field: FieldDescriptor, value: Any, path: str, depth: int, pending: list[tuple[Message, str, int]]
) -> None:
    if field.type == FieldDescriptor.TYPE_STRING:
        _check_string(path, value)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        pending.append((value, path, depth))


def _check_string(path: str, value: object) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise InvalidArgument(f"{path} 不能包含 NUL 字符: {shown(value)}")


def _check_json_scalar(label: str, value: object) -> None:
    """What JSON can say but a stored value cannot hold exactly: a NUL, a lone UTF-16 surrogate
    ("\\ud800": not UTF-8), a number a double cannot hold (protobuf's Struct stores doubles)."""
    if isinstance(value, str):
        _check_string(label, value)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgument(f"{label}包含无效的 Unicode 字符（单独的代理项）") from None
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_EXACT_INTEGER:
        raise InvalidArgument(f"{label}中的整数超出范围（绝对值最大 2^53）: {shown(value)}")
    elif isinstance(value, float) and not math.isfinite(value):  # 1e400 reads as infinity
        raise InvalidArgument(f"{label}中的数值超出范围")


def parse_json_object(data: bytes, label: str = "请求体") -> dict[str, Any]:
    """A JSON object from a request body, strictly: UTF-8, no duplicate keys, no NaN or Infinity,
    nothing after the value (json.loads already refuses trailing commas), at most MAX_JSON_DEPTH
    deep below the top level object."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{label}不是有效的 UTF-8: 第{exc.start}字节") from None
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            f"{label}不是有效的 JSON: {exc.msg}（第{exc.lineno}行第{exc.colno}列）"
        ) from None
    except RecursionError:
        raise InvalidArgument(f"{label}: JSON 嵌套不能超过{MAX_JSON_DEPTH}层") from None
    except _Refused as exc:
        raise InvalidArgument(f"{label}{exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{label}必须是 JSON 对象")
    _check_depth(value, label, Reason.INVALID_ARGUMENT)
    _refuse_nul(value, label)
    return value


def _refuse_nul(value: Any, label: str) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                _check_json_scalar(f"{label}中的字段名", key)
                pending.append(child)
        elif isinstance(item, list):
            pending.extend(item)
        else:
            _check_json_scalar(label, item)


class _Refused(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"中的字段重复: {shown(key)}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise _Refused(f"不能包含 {name}（不是 JSON）")


def parse_rfc3339(
    value: str, label: str, *, reason: Reason, example: str = "2026-01-01T18:00:00Z"
) -> datetime:
    """An RFC 3339 time with an offset, as UTC; refused when malformed, naive, or out of range."""
    text = check_text(value.strip(), label, 64, reason=reason)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidArgument(
            f"{label}格式无效: {shown(text)}（需要 RFC 3339，例如 {example}）", reason=reason
        ) from exc
    if moment.tzinfo is None:
        raise InvalidArgument(f"{label}必须带时区偏移，例如 {example.replace('Z', '+08:00')}", reason=reason)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 lies after year 9999 in UTC
        raise InvalidArgument(f"{label}超出范围: {shown(text)}", reason=reason) from None


def parse_body_fields(data: bytes, allowed: Iterable[str]) -> dict[str, Any]:
    """The body of a REST call whose fields are all optional: empty = {}; an unknown field is
    refused by name; `null` is the same as leaving a field out."""
    body = parse_json_object(data) if data.strip() else {}
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidArgument(f"不支持的字段: {shown(', '.join(unknown))}")
    return {key: value for key, value in body.items() if value is not None}


def check_empty_body(data: bytes) -> None:
    """The body of a REST call that takes nothing: empty or `{}`; a field is refused by name."""
    if not data.strip():
        return
    body = parse_json_object(data)
    if body:
        raise InvalidArgument(f"不支持的字段: {shown(', '.join(sorted(body)))}")

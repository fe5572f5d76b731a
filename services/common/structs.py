"""google.protobuf.Struct <-> plain dicts, the one conversion every service needs for config and
result. Struct numbers are doubles: integral ones come back as ints, so `"steps": 5` stays 5."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2

_MAX_EXACT_INT = 2**53


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() and abs(value) <= _MAX_EXACT_INT else value


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    # Walked directly: json_format.MessageToDict costs several times more (progress reports take
    # this path on every event).
    return {key: _value(item) for key, item in struct.fields.items()}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return _number(value.number_value)
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    return None  # null_value


def dict_to_struct(data: Mapping[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if data:
        struct.update(data)
    return struct

"""google.protobuf.Struct <-> plain dicts, the one conversion every service needs for config and
result. Struct numbers are doubles: integral ones come back as ints, so `"steps": 5` stays 5."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2

_MAX_EXACT_INT = 2**53


def plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= _MAX_EXACT_INT:
        return int(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    data: dict[str, Any] = plain(json_format.MessageToDict(struct))
    return data


def dict_to_struct(data: Mapping[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if data:
        struct.update(data)
    return struct

"""Protobuf -> JSON bytes exactly as Envoy's grpc_json_transcoder prints them.

For responses the registry renders itself and sends as `google.api.HttpBody` (the task list), so a
REST client gets the very bytes the transcoder would have sent. The options are the gateway's
print_options (gateway/envoy.yaml.tmpl): proto field names, every field without presence printed,
enums as names, no whitespace. Where json_format differs from protobuf's C++ printer (which Envoy
uses: json/internal/unparser.cc and writer.cc), the C++ one is followed: fields in field-number
order (json_format puts default values last), doubles as %.15g unless that does not read back
(Struct's 2.0 -> 2, not 2.0), non-ASCII kept as UTF-8 but `<`, `>`, DEL and invisible characters
\\u-escaped, unset `google.protobuf.Value`s left out. One deliberate difference: map entries (a
Struct's keys) are sorted, where the transcoder's order was arbitrary (see _map).
"""

from __future__ import annotations

import base64
import math
import re
import struct
from collections.abc import Iterable
from typing import Any, cast

from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2, timestamp_pb2, wrappers_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_INTS = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_FIXED32,
    }
)
# 64-bit integers are JSON strings (a JavaScript number cannot hold them).
_LONGS = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED64,
    }
)
_WRAPPERS = (
    wrappers_pb2.DoubleValue,
    wrappers_pb2.FloatValue,
    wrappers_pb2.Int64Value,
    wrappers_pb2.UInt64Value,
    wrappers_pb2.Int32Value,
    wrappers_pb2.UInt32Value,
    wrappers_pb2.BoolValue,
    wrappers_pb2.StringValue,
    wrappers_pb2.BytesValue,
)
# Printed as strings, which their ToJsonString formats as the C++ printer does.
_STRING_WKTS = (timestamp_pb2.Timestamp, duration_pb2.Duration, field_mask_pb2.FieldMask)

# writer.cc MustEscape: JSON's own escapes, plus characters escaped against JavaScript/HTML pitfalls.
_MUST_ESCAPE = re.compile(
    '[\x00-\x1f"\\\\<>\x7f-\x9f\u00ad\u0600-\u0603\u06dd\u070f\u17b4\u17b5\u200b-\u200f'
    "\u2028-\u202e\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\f": "\\f", "\b": "\\b", "\\": "\\\\"}


def render(message: Message) -> bytes:
    """The transcoder's JSON for `message`, UTF-8 encoded."""
    out: list[str] = []
    _message(message, out)
    return "".join(out).encode()


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _string(text: str) -> str:
    return '"' + _MUST_ESCAPE.sub(_escape, text) + '"'


def _double(value: float) -> str:
    if math.isnan(value):
        return '"NaN"'
    if math.isinf(value):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    # C++ SimpleDtoa: %.15g (DBL_DIG) when it reads back as the same double, else %.17g.
    text = f"{value:.15g}"
    return text if float(text) == value else f"{value:.17g}"


def _to_float32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def _float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return _double(value)
    # C++ SimpleFtoa: %.6g (FLT_DIG) when it reads back as the same float, else %.9g.
    text = f"{value:.6g}"
    return text if _to_float32(float(text)) == _to_float32(value) else f"{value:.9g}"


def _is_unset_value(value: Any) -> bool:
    """An empty google.protobuf.Value, which the C++ printer drops (it has no JSON)."""
    return isinstance(value, struct_pb2.Value) and value.WhichOneof("kind") is None


def _scalar(field: FieldDescriptor, value: Any, out: list[str]) -> None:
    """One value of `field` (an element, for repeated fields)."""
    kind = field.type
    if kind in _INTS:
        out.append(str(value))
    elif kind in _LONGS:
        out.append(f'"{value}"')
    elif kind == FieldDescriptor.TYPE_BOOL:
        out.append("true" if value else "false")
    elif kind == FieldDescriptor.TYPE_STRING:
        out.append(_string(value))
    elif kind == FieldDescriptor.TYPE_BYTES:
        out.append('"' + base64.b64encode(value).decode() + '"')
    elif kind == FieldDescriptor.TYPE_DOUBLE:
        out.append(_double(value))
    elif kind == FieldDescriptor.TYPE_FLOAT:
        out.append(_float(value))
    elif kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        known = field.enum_type.values_by_number.get(value)
        out.append(_string(known.name) if known is not None else str(value))
    else:
        _message(value, out)


def _message(message: Message, out: list[str]) -> None:
    if isinstance(message, struct_pb2.Struct):
        _map(message, struct_pb2.Struct.DESCRIPTOR.fields_by_name["fields"], out)
    elif isinstance(message, struct_pb2.ListValue):
        _repeated(struct_pb2.ListValue.DESCRIPTOR.fields_by_name["values"], message.values, out)
    elif isinstance(message, struct_pb2.Value):
        _value(message, out)
    elif isinstance(message, _STRING_WKTS):
        out.append(_string(message.ToJsonString()))
    elif isinstance(message, _WRAPPERS):
        _scalar(message.DESCRIPTOR.fields_by_name["value"], message.value, out)
    elif message.DESCRIPTOR.full_name == "google.protobuf.Any":
        raise ValueError("google.protobuf.Any is not supported: printing it needs a type registry")
    else:
        _fields(message, out)


def _fields(message: Message, out: list[str]) -> None:
    out.append("{")
    first = True
    descriptor = cast(Descriptor, message.DESCRIPTOR)  # the stubs also allow upb's own type
    for field in sorted(descriptor.fields, key=lambda f: f.number):
        if field.has_presence and not message.HasField(field.name):
            continue  # unset messages, oneof members and proto3 `optional` scalars are left out
        value = getattr(message, field.name)
        if not field.is_repeated and _is_unset_value(value):
            continue
        if not first:
            out.append(",")
        first = False
        out.append(_string(field.name))
        out.append(":")
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _map(message, field, out)
        elif field.is_repeated:
            _repeated(field, value, out)
        else:
            _scalar(field, value, out)
    out.append("}")


def _repeated(field: FieldDescriptor, items: Iterable[Any], out: list[str]) -> None:
    out.append("[")
    first = True
    for item in items:
        if _is_unset_value(item):
            continue
        if not first:
            out.append(",")
        first = False
        _scalar(field, item, out)
    out.append("]")


def _map(parent: Message, field: FieldDescriptor, out: list[str]) -> None:
    """Entries sorted by key, so the body is stable. The transcoder prints them in wire order, and
    upb writes a map in a hash order seeded per process and changed by every copy: the order of a
    Struct's keys was arbitrary, so there is nothing to reproduce."""
    assert field.message_type is not None
    entries = getattr(parent, field.name)
    value_field = field.message_type.fields_by_name["value"]
    out.append("{")
    first = True
    for key in sorted(entries):
        value = entries[key]
        if _is_unset_value(value):
            continue
        if not first:
            out.append(",")
        first = False
        out.append(_string(str(key).lower() if isinstance(key, bool) else str(key)))
        out.append(":")
        _scalar(value_field, value, out)
    out.append("}")


def _value(message: struct_pb2.Value, out: list[str]) -> None:
    kind = message.WhichOneof("kind")
    if kind == "struct_value":
        _message(message.struct_value, out)
    elif kind == "list_value":
        _message(message.list_value, out)
    elif kind == "string_value":
        out.append(_string(message.string_value))
    elif kind == "number_value":
        if not math.isfinite(message.number_value):
            raise ValueError("google.protobuf.Value cannot hold NaN or Infinity in JSON")
        out.append(_double(message.number_value))
    elif kind == "bool_value":
        out.append("true" if message.bool_value else "false")
    else:
        out.append("null")

import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PreviewCronRequest(_message.Message):
    __slots__ = ("cron_expression", "timezone", "count", "calendar", "calendar_shift")
    CRON_EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CALENDAR_FIELD_NUMBER: _ClassVar[int]
    CALENDAR_SHIFT_FIELD_NUMBER: _ClassVar[int]
    cron_expression: str
    timezone: str
    count: int
    calendar: str
    calendar_shift: int
    def __init__(self, cron_expression: _Optional[str] = ..., timezone: _Optional[str] = ..., count: _Optional[int] = ..., calendar: _Optional[str] = ..., calendar_shift: _Optional[int] = ...) -> None: ...

class PreviewCronResponse(_message.Message):
    __slots__ = ("next_run_times", "calendar_data_end", "calendar_note")
    NEXT_RUN_TIMES_FIELD_NUMBER: _ClassVar[int]
    CALENDAR_DATA_END_FIELD_NUMBER: _ClassVar[int]
    CALENDAR_NOTE_FIELD_NUMBER: _ClassVar[int]
    next_run_times: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    calendar_data_end: str
    calendar_note: str
    def __init__(self, next_run_times: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ..., calendar_data_end: _Optional[str] = ..., calendar_note: _Optional[str] = ...) -> None: ...

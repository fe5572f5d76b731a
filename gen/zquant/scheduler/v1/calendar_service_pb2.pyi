from google.api import annotations_pb2 as _annotations_pb2
from zquant.scheduler.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListCalendarsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCalendarsResponse(_message.Message):
    __slots__ = ("calendars",)
    CALENDARS_FIELD_NUMBER: _ClassVar[int]
    calendars: _containers.RepeatedCompositeFieldContainer[_task_pb2.Calendar]
    def __init__(self, calendars: _Optional[_Iterable[_Union[_task_pb2.Calendar, _Mapping]]] = ...) -> None: ...

class CreateCalendarRequest(_message.Message):
    __slots__ = ("name", "base", "added_dates", "removed_dates", "data_end", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    ADDED_DATES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_DATES_FIELD_NUMBER: _ClassVar[int]
    DATA_END_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    base: str
    added_dates: _containers.RepeatedScalarFieldContainer[str]
    removed_dates: _containers.RepeatedScalarFieldContainer[str]
    data_end: str
    description: str
    def __init__(self, name: _Optional[str] = ..., base: _Optional[str] = ..., added_dates: _Optional[_Iterable[str]] = ..., removed_dates: _Optional[_Iterable[str]] = ..., data_end: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class UpdateCalendarRequest(_message.Message):
    __slots__ = ("name", "base", "added_dates", "removed_dates", "data_end", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    ADDED_DATES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_DATES_FIELD_NUMBER: _ClassVar[int]
    DATA_END_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    base: str
    added_dates: _containers.RepeatedScalarFieldContainer[str]
    removed_dates: _containers.RepeatedScalarFieldContainer[str]
    data_end: str
    description: str
    def __init__(self, name: _Optional[str] = ..., base: _Optional[str] = ..., added_dates: _Optional[_Iterable[str]] = ..., removed_dates: _Optional[_Iterable[str]] = ..., data_end: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class DeleteCalendarRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteCalendarResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

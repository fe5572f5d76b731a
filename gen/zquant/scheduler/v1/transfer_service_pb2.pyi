from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExportTasksRequest(_message.Message):
    __slots__ = ("after_id", "limit")
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after_id: int
    limit: int
    def __init__(self, after_id: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ExportTasksResponse(_message.Message):
    __slots__ = ("version", "tasks", "next_after_id")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    version: int
    tasks: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    next_after_id: int
    def __init__(self, version: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., next_after_id: _Optional[int] = ...) -> None: ...

class ImportTasksRequest(_message.Message):
    __slots__ = ("tasks", "dry_run")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    dry_run: bool
    def __init__(self, tasks: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ImportTasksJsonRequest(_message.Message):
    __slots__ = ("dry_run", "body")
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    body: _httpbody_pb2.HttpBody
    def __init__(self, dry_run: _Optional[bool] = ..., body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class ImportTasksResponse(_message.Message):
    __slots__ = ("dry_run", "created", "updated", "unchanged", "tasks")
    class Item(_message.Message):
        __slots__ = ("name", "action", "task_id")
        NAME_FIELD_NUMBER: _ClassVar[int]
        ACTION_FIELD_NUMBER: _ClassVar[int]
        TASK_ID_FIELD_NUMBER: _ClassVar[int]
        name: str
        action: str
        task_id: int
        def __init__(self, name: _Optional[str] = ..., action: _Optional[str] = ..., task_id: _Optional[int] = ...) -> None: ...
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    created: int
    updated: int
    unchanged: int
    tasks: _containers.RepeatedCompositeFieldContainer[ImportTasksResponse.Item]
    def __init__(self, dry_run: _Optional[bool] = ..., created: _Optional[int] = ..., updated: _Optional[int] = ..., unchanged: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[ImportTasksResponse.Item, _Mapping]]] = ...) -> None: ...

import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("scheduler_up", "leader", "lease_expires_at", "runs_pending", "executors", "free_slots")
    SCHEDULER_UP_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    RUNS_PENDING_FIELD_NUMBER: _ClassVar[int]
    EXECUTORS_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    scheduler_up: bool
    leader: str
    lease_expires_at: _timestamp_pb2.Timestamp
    runs_pending: int
    executors: _containers.RepeatedCompositeFieldContainer[ExecutorState]
    free_slots: int
    def __init__(self, scheduler_up: _Optional[bool] = ..., leader: _Optional[str] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., runs_pending: _Optional[int] = ..., executors: _Optional[_Iterable[_Union[ExecutorState, _Mapping]]] = ..., free_slots: _Optional[int] = ...) -> None: ...

class ExecutorState(_message.Message):
    __slots__ = ("address", "reachable", "capacity", "active_runs", "draining")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_RUNS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    address: str
    reachable: bool
    capacity: int
    active_runs: int
    draining: bool
    def __init__(self, address: _Optional[str] = ..., reachable: _Optional[bool] = ..., capacity: _Optional[int] = ..., active_runs: _Optional[int] = ..., draining: _Optional[bool] = ...) -> None: ...

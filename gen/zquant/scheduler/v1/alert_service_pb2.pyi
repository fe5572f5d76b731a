import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AlertChannel(_message.Message):
    __slots__ = ("id", "name", "type", "config", "secrets_set", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    SECRETS_SET_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    type: str
    config: _struct_pb2.Struct
    secrets_set: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., secrets_set: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAlertChannelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAlertChannelsResponse(_message.Message):
    __slots__ = ("channels",)
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[AlertChannel]
    def __init__(self, channels: _Optional[_Iterable[_Union[AlertChannel, _Mapping]]] = ...) -> None: ...

class CreateAlertChannelRequest(_message.Message):
    __slots__ = ("name", "type", "config")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    config: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class UpdateAlertChannelRequest(_message.Message):
    __slots__ = ("id", "name", "type", "config")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    type: str
    config: _struct_pb2.Struct
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class DeleteAlertChannelRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class DeleteAlertChannelResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class TestAlertChannelRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class TestAlertChannelResponse(_message.Message):
    __slots__ = ("ok", "error", "delivery_id")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    delivery_id: int
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ..., delivery_id: _Optional[int] = ...) -> None: ...

class AlertRule(_message.Message):
    __slots__ = ("id", "name", "events", "channel_ids", "task_id", "slow_seconds", "rate_limit_count", "rate_limit_seconds", "enabled", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SLOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_COUNT_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    events: _containers.RepeatedScalarFieldContainer[str]
    channel_ids: _containers.RepeatedScalarFieldContainer[int]
    task_id: int
    slow_seconds: int
    rate_limit_count: int
    rate_limit_seconds: int
    enabled: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ..., channel_ids: _Optional[_Iterable[int]] = ..., task_id: _Optional[int] = ..., slow_seconds: _Optional[int] = ..., rate_limit_count: _Optional[int] = ..., rate_limit_seconds: _Optional[int] = ..., enabled: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAlertRulesRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    def __init__(self, task_id: _Optional[int] = ...) -> None: ...

class ListAlertRulesResponse(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[AlertRule]
    def __init__(self, rules: _Optional[_Iterable[_Union[AlertRule, _Mapping]]] = ...) -> None: ...

class CreateAlertRuleRequest(_message.Message):
    __slots__ = ("name", "events", "channel_ids", "task_id", "slow_seconds", "rate_limit_count", "rate_limit_seconds", "enabled")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SLOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_COUNT_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    name: str
    events: _containers.RepeatedScalarFieldContainer[str]
    channel_ids: _containers.RepeatedScalarFieldContainer[int]
    task_id: int
    slow_seconds: int
    rate_limit_count: int
    rate_limit_seconds: int
    enabled: bool
    def __init__(self, name: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ..., channel_ids: _Optional[_Iterable[int]] = ..., task_id: _Optional[int] = ..., slow_seconds: _Optional[int] = ..., rate_limit_count: _Optional[int] = ..., rate_limit_seconds: _Optional[int] = ..., enabled: _Optional[bool] = ...) -> None: ...

class UpdateAlertRuleRequest(_message.Message):
    __slots__ = ("id", "name", "events", "channel_ids", "task_id", "slow_seconds", "rate_limit_count", "rate_limit_seconds", "enabled")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SLOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_COUNT_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    events: _containers.RepeatedScalarFieldContainer[str]
    channel_ids: _containers.RepeatedScalarFieldContainer[int]
    task_id: int
    slow_seconds: int
    rate_limit_count: int
    rate_limit_seconds: int
    enabled: bool
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ..., channel_ids: _Optional[_Iterable[int]] = ..., task_id: _Optional[int] = ..., slow_seconds: _Optional[int] = ..., rate_limit_count: _Optional[int] = ..., rate_limit_seconds: _Optional[int] = ..., enabled: _Optional[bool] = ...) -> None: ...

class DeleteAlertRuleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class DeleteAlertRuleResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class AlertAttempt(_message.Message):
    __slots__ = ("at", "ok", "error")
    AT_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    ok: bool
    error: str
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class AlertDelivery(_message.Message):
    __slots__ = ("id", "event", "rule_id", "channel_id", "task_id", "execution_id", "state", "attempts", "last_error", "created_at", "sent_at", "payload", "attempt_log")
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_LOG_FIELD_NUMBER: _ClassVar[int]
    id: int
    event: str
    rule_id: int
    channel_id: int
    task_id: int
    execution_id: int
    state: str
    attempts: int
    last_error: str
    created_at: _timestamp_pb2.Timestamp
    sent_at: _timestamp_pb2.Timestamp
    payload: _struct_pb2.Struct
    attempt_log: _containers.RepeatedCompositeFieldContainer[AlertAttempt]
    def __init__(self, id: _Optional[int] = ..., event: _Optional[str] = ..., rule_id: _Optional[int] = ..., channel_id: _Optional[int] = ..., task_id: _Optional[int] = ..., execution_id: _Optional[int] = ..., state: _Optional[str] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., attempt_log: _Optional[_Iterable[_Union[AlertAttempt, _Mapping]]] = ...) -> None: ...

class ListAlertDeliveriesRequest(_message.Message):
    __slots__ = ("skip", "limit", "state", "channel_id", "task_id", "execution_id")
    SKIP_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    skip: int
    limit: int
    state: str
    channel_id: int
    task_id: int
    execution_id: int
    def __init__(self, skip: _Optional[int] = ..., limit: _Optional[int] = ..., state: _Optional[str] = ..., channel_id: _Optional[int] = ..., task_id: _Optional[int] = ..., execution_id: _Optional[int] = ...) -> None: ...

class ListAlertDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "total")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[AlertDelivery]
    total: int
    def __init__(self, deliveries: _Optional[_Iterable[_Union[AlertDelivery, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

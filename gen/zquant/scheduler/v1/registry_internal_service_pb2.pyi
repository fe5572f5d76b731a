import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from zquant.scheduler.v1 import status_service_pb2 as _status_service_pb2
from zquant.scheduler.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchSchedulerEventsRequest(_message.Message):
    __slots__ = ("snapshot_pages", "trigger_offers", "batch_events")
    SNAPSHOT_PAGES_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_OFFERS_FIELD_NUMBER: _ClassVar[int]
    BATCH_EVENTS_FIELD_NUMBER: _ClassVar[int]
    snapshot_pages: bool
    trigger_offers: bool
    batch_events: bool
    def __init__(self, snapshot_pages: _Optional[bool] = ..., trigger_offers: _Optional[bool] = ..., batch_events: _Optional[bool] = ...) -> None: ...

class WatchSchedulerEventsResponse(_message.Message):
    __slots__ = ("type", "task", "task_id", "execution", "schedule_anchor", "last_scheduled_time", "custom_calendar", "snapshot_tasks", "trigger_offer", "then")
    class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EVENT_TYPE_UNSPECIFIED: _ClassVar[WatchSchedulerEventsResponse.EventType]
        EVENT_TYPE_TASK_UPSERT: _ClassVar[WatchSchedulerEventsResponse.EventType]
        EVENT_TYPE_TASK_DELETE: _ClassVar[WatchSchedulerEventsResponse.EventType]
        EVENT_TYPE_SNAPSHOT_DONE: _ClassVar[WatchSchedulerEventsResponse.EventType]
        EVENT_TYPE_EXECUTION_READY: _ClassVar[WatchSchedulerEventsResponse.EventType]
        EVENT_TYPE_TERMINATE_REQUESTED: _ClassVar[WatchSchedulerEventsResponse.EventType]
        EVENT_TYPE_HEARTBEAT: _ClassVar[WatchSchedulerEventsResponse.EventType]
        EVENT_TYPE_SNAPSHOT_PAGE: _ClassVar[WatchSchedulerEventsResponse.EventType]
        EVENT_TYPE_TRIGGER_OFFER: _ClassVar[WatchSchedulerEventsResponse.EventType]
    EVENT_TYPE_UNSPECIFIED: WatchSchedulerEventsResponse.EventType
    EVENT_TYPE_TASK_UPSERT: WatchSchedulerEventsResponse.EventType
    EVENT_TYPE_TASK_DELETE: WatchSchedulerEventsResponse.EventType
    EVENT_TYPE_SNAPSHOT_DONE: WatchSchedulerEventsResponse.EventType
    EVENT_TYPE_EXECUTION_READY: WatchSchedulerEventsResponse.EventType
    EVENT_TYPE_TERMINATE_REQUESTED: WatchSchedulerEventsResponse.EventType
    EVENT_TYPE_HEARTBEAT: WatchSchedulerEventsResponse.EventType
    EVENT_TYPE_SNAPSHOT_PAGE: WatchSchedulerEventsResponse.EventType
    EVENT_TYPE_TRIGGER_OFFER: WatchSchedulerEventsResponse.EventType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ANCHOR_FIELD_NUMBER: _ClassVar[int]
    LAST_SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_CALENDAR_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_TASKS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_OFFER_FIELD_NUMBER: _ClassVar[int]
    THEN_FIELD_NUMBER: _ClassVar[int]
    type: WatchSchedulerEventsResponse.EventType
    task: _task_pb2.Task
    task_id: int
    execution: _task_pb2.Execution
    schedule_anchor: _timestamp_pb2.Timestamp
    last_scheduled_time: _timestamp_pb2.Timestamp
    custom_calendar: _task_pb2.Calendar
    snapshot_tasks: _containers.RepeatedCompositeFieldContainer[WatchSchedulerEventsResponse]
    trigger_offer: TriggerOffer
    then: _containers.RepeatedCompositeFieldContainer[WatchSchedulerEventsResponse]
    def __init__(self, type: _Optional[_Union[WatchSchedulerEventsResponse.EventType, str]] = ..., task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ..., task_id: _Optional[int] = ..., execution: _Optional[_Union[_task_pb2.Execution, _Mapping]] = ..., schedule_anchor: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_scheduled_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., custom_calendar: _Optional[_Union[_task_pb2.Calendar, _Mapping]] = ..., snapshot_tasks: _Optional[_Iterable[_Union[WatchSchedulerEventsResponse, _Mapping]]] = ..., trigger_offer: _Optional[_Union[TriggerOffer, _Mapping]] = ..., then: _Optional[_Iterable[_Union[WatchSchedulerEventsResponse, _Mapping]]] = ...) -> None: ...

class TriggerOffer(_message.Message):
    __slots__ = ("offer_id", "task_id")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    offer_id: int
    task_id: int
    def __init__(self, offer_id: _Optional[int] = ..., task_id: _Optional[int] = ...) -> None: ...

class OfferAnswer(_message.Message):
    __slots__ = ("offer_id", "executor", "lease_seconds")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    offer_id: int
    executor: str
    lease_seconds: int
    def __init__(self, offer_id: _Optional[int] = ..., executor: _Optional[str] = ..., lease_seconds: _Optional[int] = ...) -> None: ...

class CreateExecutionRequest(_message.Message):
    __slots__ = ("task_id", "trigger", "scheduled_time", "status", "error_message", "parent_execution_id", "retry_count", "dedup_key", "start_executor", "lease_seconds", "logical_date", "params", "note", "traceparent")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PARENT_EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEDUP_KEY_FIELD_NUMBER: _ClassVar[int]
    START_EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_DATE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    trigger: str
    scheduled_time: _timestamp_pb2.Timestamp
    status: str
    error_message: str
    parent_execution_id: int
    retry_count: int
    dedup_key: str
    start_executor: str
    lease_seconds: int
    logical_date: str
    params: _struct_pb2.Struct
    note: str
    traceparent: str
    def __init__(self, task_id: _Optional[int] = ..., trigger: _Optional[str] = ..., scheduled_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., error_message: _Optional[str] = ..., parent_execution_id: _Optional[int] = ..., retry_count: _Optional[int] = ..., dedup_key: _Optional[str] = ..., start_executor: _Optional[str] = ..., lease_seconds: _Optional[int] = ..., logical_date: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., note: _Optional[str] = ..., traceparent: _Optional[str] = ...) -> None: ...

class CreateExecutionResponse(_message.Message):
    __slots__ = ("execution", "created", "attempt")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    execution: _task_pb2.Execution
    created: bool
    attempt: int
    def __init__(self, execution: _Optional[_Union[_task_pb2.Execution, _Mapping]] = ..., created: _Optional[bool] = ..., attempt: _Optional[int] = ...) -> None: ...

class RecordRunsRequest(_message.Message):
    __slots__ = ("updates",)
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[RunUpdate]
    def __init__(self, updates: _Optional[_Iterable[_Union[RunUpdate, _Mapping]]] = ...) -> None: ...

class RunUpdate(_message.Message):
    __slots__ = ("create", "progress", "finish", "log", "start", "offer_answer")
    CREATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    OFFER_ANSWER_FIELD_NUMBER: _ClassVar[int]
    create: CreateExecutionRequest
    progress: ReportProgressRequest
    finish: FinishExecutionRequest
    log: AppendExecutionLogRequest
    start: StartExecutionRequest
    offer_answer: OfferAnswer
    def __init__(self, create: _Optional[_Union[CreateExecutionRequest, _Mapping]] = ..., progress: _Optional[_Union[ReportProgressRequest, _Mapping]] = ..., finish: _Optional[_Union[FinishExecutionRequest, _Mapping]] = ..., log: _Optional[_Union[AppendExecutionLogRequest, _Mapping]] = ..., start: _Optional[_Union[StartExecutionRequest, _Mapping]] = ..., offer_answer: _Optional[_Union[OfferAnswer, _Mapping]] = ...) -> None: ...

class RecordRunsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RunUpdateResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RunUpdateResult, _Mapping]]] = ...) -> None: ...

class RecordRunStreamRequest(_message.Message):
    __slots__ = ("batch_id", "updates")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    updates: _containers.RepeatedCompositeFieldContainer[RunUpdate]
    def __init__(self, batch_id: _Optional[int] = ..., updates: _Optional[_Iterable[_Union[RunUpdate, _Mapping]]] = ...) -> None: ...

class RecordRunStreamResponse(_message.Message):
    __slots__ = ("batch_id", "results", "code", "message", "reason")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    results: _containers.RepeatedCompositeFieldContainer[RunUpdateResult]
    code: int
    message: str
    reason: str
    def __init__(self, batch_id: _Optional[int] = ..., results: _Optional[_Iterable[_Union[RunUpdateResult, _Mapping]]] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RunUpdateResult(_message.Message):
    __slots__ = ("code", "message", "reason", "create", "progress", "finish", "log", "start")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    reason: str
    create: CreateExecutionResponse
    progress: ReportProgressResponse
    finish: FinishExecutionResponse
    log: AppendExecutionLogResponse
    start: StartExecutionResponse
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ..., create: _Optional[_Union[CreateExecutionResponse, _Mapping]] = ..., progress: _Optional[_Union[ReportProgressResponse, _Mapping]] = ..., finish: _Optional[_Union[FinishExecutionResponse, _Mapping]] = ..., log: _Optional[_Union[AppendExecutionLogResponse, _Mapping]] = ..., start: _Optional[_Union[StartExecutionResponse, _Mapping]] = ...) -> None: ...

class StartExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "executor", "lease_seconds", "adopt")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ADOPT_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    executor: str
    lease_seconds: int
    adopt: bool
    def __init__(self, execution_id: _Optional[int] = ..., executor: _Optional[str] = ..., lease_seconds: _Optional[int] = ..., adopt: _Optional[bool] = ...) -> None: ...

class StartExecutionResponse(_message.Message):
    __slots__ = ("execution", "attempt", "task")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    execution: _task_pb2.Execution
    attempt: int
    task: _task_pb2.Task
    def __init__(self, execution: _Optional[_Union[_task_pb2.Execution, _Mapping]] = ..., attempt: _Optional[int] = ..., task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ...) -> None: ...

class RequeueExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "attempt")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    attempt: int
    def __init__(self, execution_id: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class RequeueExecutionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReportProgressRequest(_message.Message):
    __slots__ = ("execution_id", "attempt", "result", "lease_seconds")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    attempt: int
    result: _struct_pb2.Struct
    lease_seconds: int
    def __init__(self, execution_id: _Optional[int] = ..., attempt: _Optional[int] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., lease_seconds: _Optional[int] = ...) -> None: ...

class ReportProgressResponse(_message.Message):
    __slots__ = ("terminate_requested",)
    TERMINATE_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    terminate_requested: bool
    def __init__(self, terminate_requested: _Optional[bool] = ...) -> None: ...

class FinishExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "attempt", "status", "result", "error_message")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    attempt: int
    status: str
    result: _struct_pb2.Struct
    error_message: str
    def __init__(self, execution_id: _Optional[int] = ..., attempt: _Optional[int] = ..., status: _Optional[str] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error_message: _Optional[str] = ...) -> None: ...

class FinishExecutionResponse(_message.Message):
    __slots__ = ("execution", "retry")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    execution: _task_pb2.Execution
    retry: _task_pb2.Execution
    def __init__(self, execution: _Optional[_Union[_task_pb2.Execution, _Mapping]] = ..., retry: _Optional[_Union[_task_pb2.Execution, _Mapping]] = ...) -> None: ...

class AppendExecutionLogRequest(_message.Message):
    __slots__ = ("execution_id", "data")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    data: bytes
    def __init__(self, execution_id: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class AppendExecutionLogResponse(_message.Message):
    __slots__ = ("end_offset",)
    END_OFFSET_FIELD_NUMBER: _ClassVar[int]
    end_offset: int
    def __init__(self, end_offset: _Optional[int] = ...) -> None: ...

class ListActiveExecutionsRequest(_message.Message):
    __slots__ = ("limit", "after_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    after_id: int
    def __init__(self, limit: _Optional[int] = ..., after_id: _Optional[int] = ...) -> None: ...

class ListActiveExecutionsResponse(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[_task_pb2.Execution]
    def __init__(self, executions: _Optional[_Iterable[_Union[_task_pb2.Execution, _Mapping]]] = ...) -> None: ...

class AcquireLeadershipRequest(_message.Message):
    __slots__ = ("candidate", "ttl_seconds", "executors")
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXECUTORS_FIELD_NUMBER: _ClassVar[int]
    candidate: str
    ttl_seconds: int
    executors: _containers.RepeatedCompositeFieldContainer[_status_service_pb2.ExecutorState]
    def __init__(self, candidate: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., executors: _Optional[_Iterable[_Union[_status_service_pb2.ExecutorState, _Mapping]]] = ...) -> None: ...

class AcquireLeadershipResponse(_message.Message):
    __slots__ = ("leader", "holder", "term", "expires_at")
    LEADER_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    leader: bool
    holder: str
    term: int
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, leader: _Optional[bool] = ..., holder: _Optional[str] = ..., term: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class HoldLeadershipRequest(_message.Message):
    __slots__ = ("candidate", "ttl_seconds", "renew_seconds", "executors")
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RENEW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXECUTORS_FIELD_NUMBER: _ClassVar[int]
    candidate: str
    ttl_seconds: int
    renew_seconds: float
    executors: _containers.RepeatedCompositeFieldContainer[_status_service_pb2.ExecutorState]
    def __init__(self, candidate: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., renew_seconds: _Optional[float] = ..., executors: _Optional[_Iterable[_Union[_status_service_pb2.ExecutorState, _Mapping]]] = ...) -> None: ...

class HoldLeadershipResponse(_message.Message):
    __slots__ = ("leader", "holder", "term", "expires_at")
    LEADER_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    leader: bool
    holder: str
    term: int
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, leader: _Optional[bool] = ..., holder: _Optional[str] = ..., term: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReleaseLeadershipRequest(_message.Message):
    __slots__ = ("candidate",)
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    candidate: str
    def __init__(self, candidate: _Optional[str] = ...) -> None: ...

class ReleaseLeadershipResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AdvanceBackfillsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AdvanceBackfillsResponse(_message.Message):
    __slots__ = ("executions", "running")
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[_task_pb2.Execution]
    running: bool
    def __init__(self, executions: _Optional[_Iterable[_Union[_task_pb2.Execution, _Mapping]]] = ..., running: _Optional[bool] = ...) -> None: ...

class RunHousekeepingRequest(_message.Message):
    __slots__ = ("candidate", "term")
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    candidate: str
    term: int
    def __init__(self, candidate: _Optional[str] = ..., term: _Optional[int] = ...) -> None: ...

class RunHousekeepingResponse(_message.Message):
    __slots__ = ("done", "alerts_sent", "alerts_failed", "alerts_suppressed", "runs_purged")
    DONE_FIELD_NUMBER: _ClassVar[int]
    ALERTS_SENT_FIELD_NUMBER: _ClassVar[int]
    ALERTS_FAILED_FIELD_NUMBER: _ClassVar[int]
    ALERTS_SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    RUNS_PURGED_FIELD_NUMBER: _ClassVar[int]
    done: bool
    alerts_sent: int
    alerts_failed: int
    alerts_suppressed: int
    runs_purged: int
    def __init__(self, done: _Optional[bool] = ..., alerts_sent: _Optional[int] = ..., alerts_failed: _Optional[int] = ..., alerts_suppressed: _Optional[int] = ..., runs_purged: _Optional[int] = ...) -> None: ...

"""What run recording takes and gives back: plain values, no RPC messages (convert.py maps them).

A run's results are protobuf `Execution`s because that is what its watchers, the scheduler's feed
and the cluster bus carry; a reported result stays the `Struct` it arrived as (see `live.progress`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf import struct_pb2

from services.common.errors import DomainError
from services.registry.store.executions import NewExecution
from zquant.scheduler.v1 import task_pb2


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create; with `executor`, started on it at once (claimed, leased)."""

    execution: NewExecution
    executor: str = ""
    lease_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Start:
    """A pending run claimed for `executor` (leased; 0 s = the default lease), or with `adopt` a
    running one taken over there (a new attempt: the old one's reports are refused)."""

    execution_id: int
    executor: str
    lease_seconds: float = 0.0
    adopt: bool = False


@dataclass(frozen=True, slots=True)
class OfferAnswer:
    """The scheduler's answer to a trigger offer: the executor for the run ("" declines)."""

    offer_id: int
    executor: str
    lease_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Report:
    """A running attempt's newest progress, or a heartbeat (`result` None) that renews its lease."""

    execution_id: int
    attempt: int
    result: struct_pb2.Struct | None = None


@dataclass(frozen=True, slots=True)
class End:
    """An attempt's end as its reporter sees it; `result` is merged over the live progress."""

    execution_id: int
    attempt: int
    status: str
    result: struct_pb2.Struct = field(default_factory=struct_pb2.Struct)
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class LogAppend:
    """Lines for a run's log (whole lines, as the executor sent them)."""

    execution_id: int
    data: bytes


Update = NewRun | Start | Report | End | LogAppend


@dataclass(frozen=True, slots=True)
class Created:
    execution: task_pb2.Execution
    created: bool
    # The started run's attempt; 0 when it was not started (or already existed).
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class Ended:
    execution: task_pb2.Execution
    retry: task_pb2.Execution | None = None


@dataclass(frozen=True, slots=True)
class Reported:
    terminate_requested: bool


@dataclass(frozen=True, slots=True)
class Started:
    execution: task_pb2.Execution
    attempt: int
    task: task_pb2.Task


@dataclass(frozen=True, slots=True)
class Appended:
    # The log's size after the append.
    end_offset: int


@dataclass(frozen=True, slots=True)
class Declined:
    """A trigger offer the scheduler declined: its run is created pending."""


# Each update of a batch gets its own outcome; a refused one its error (with its Reason).
Outcome = Created | Started | Ended | Reported | Appended | Declined | DomainError

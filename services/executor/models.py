"""Domain types of the executor: what to run and what the run reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One Run request, independent of the proto."""

    execution_id: int
    attempt: int
    task_id: int
    task_name: str
    task_type: str
    # The run's config: the task's, with the run's params over it and its templates filled in.
    config: dict[str, Any]
    # 0 = no limit.
    timeout_seconds: int
    # The date the run is for (services/common/run_params.py).
    logical_date: date
    # The trading day before it by the task's calendar; None = the previous weekday.
    prev_trading_day: date | None = None


class RunEventKind(StrEnum):
    """What a message of a run's stream is (the wire's RunResponse.EventType)."""

    ACCEPTED = "accepted"
    PROGRESS = "progress"
    HEARTBEAT = "heartbeat"
    FINISHED = "finished"
    LOG = "log"


@dataclass(frozen=True, slots=True)
class RunEvent:
    kind: RunEventKind
    # progress: the progress snapshot; finished: the final result.
    result: dict[str, Any] | None = None
    # finished: success | failed | terminated.
    status: str = ""
    error_message: str = ""
    # log: whole stamped lines.
    log: bytes = b""


ACCEPTED = RunEvent(RunEventKind.ACCEPTED)
HEARTBEAT = RunEvent(RunEventKind.HEARTBEAT)

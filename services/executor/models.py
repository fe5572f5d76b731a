"""Domain types of the executor: what to run and what the run reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One Run request, independent of the proto."""

    execution_id: int
    attempt: int
    task_id: int
    task_name: str
    task_type: str
    config: dict[str, Any]
    # 0 = no limit.
    timeout_seconds: int


@dataclass(frozen=True, slots=True)
class RunEvent:
    # accepted | progress | heartbeat | finished.
    event_type: str
    # progress: the progress snapshot; finished: the final result.
    result: dict[str, Any] | None = None
    # finished: success | failed | terminated.
    status: str = ""
    error_message: str = ""


ACCEPTED = RunEvent("accepted")
HEARTBEAT = RunEvent("heartbeat")

"""What waits for a lagging stream: progress events are whole snapshots, so only the newest waits,
and none waits behind the run's outcome (its result is the final snapshot)."""

from __future__ import annotations

from services.executor.models import ACCEPTED, RunEvent, RunEventKind
from services.executor.runner import RunListener


def progress(step: int) -> RunEvent:
    return RunEvent(RunEventKind.PROGRESS, {"current_step": step})


def waiting(listener: RunListener) -> list[str]:
    """Each waiting event's kind, with the step of a progress snapshot."""
    return [
        f"{event.kind.value}:{(event.result or {})['current_step']}"
        if event.kind is RunEventKind.PROGRESS
        else event.kind.value
        for event in listener.pending
    ]


def test_only_the_newest_progress_waits_for_a_lagging_stream() -> None:
    listener = RunListener([ACCEPTED])
    for step in (1, 2, 3):
        listener.push(progress(step))
    assert waiting(listener) == ["accepted", "progress:3"]


def test_no_progress_waits_behind_the_outcome() -> None:
    listener = RunListener([ACCEPTED])
    listener.push(progress(1))
    listener.push(RunEvent(RunEventKind.FINISHED, {"current_step": 1, "status": "success"}, "success"))
    assert waiting(listener) == ["accepted", "finished"]

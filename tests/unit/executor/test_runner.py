"""What waits for a lagging stream: progress events are whole snapshots, so only the newest waits,
and none waits behind the run's outcome (its result is the final snapshot); what waits goes out as
one batch."""

from __future__ import annotations

from datetime import date

import pytest

from services.executor.models import ACCEPTED, RunEvent, RunEventKind, RunSpec
from services.executor.runner import RunListener, Runner
from services.executor.settings import ExecutorSettings
from tests.waiting import eventually


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


@pytest.mark.asyncio
async def test_the_events_waiting_for_a_stream_go_out_as_one_batch() -> None:
    runner = Runner(ExecutorSettings(service_token="t"))
    run = runner.start(
        RunSpec(
            execution_id=1,
            attempt=1,
            task_id=7,
            task_name="quick",
            task_type="example_task",
            config={"duration_seconds": 0, "steps": 2},
            timeout_seconds=0,
            logical_date=date(2026, 12, 4),
        )
    )
    await eventually(lambda: run.outcome, "the job's outcome")
    # A stream that attaches now finds accepted, the newest progress and the outcome waiting.
    batches = [[event.kind for event in batch] async for batch in run.event_batches(attach=True)]
    assert batches == [[RunEventKind.ACCEPTED, RunEventKind.PROGRESS, RunEventKind.FINISHED]]

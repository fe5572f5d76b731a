"""What the executor stream (services.scheduler.executor_stream) tells Prometheus about a run, driven
through the Dispatcher: how long after it was due an executor accepted it, how long it ran (by task
type and status), and why a run lost its executor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.unit.scheduler.test_dispatch import (
    TASK,
    ScriptedCall,
    ScriptedExecutor,
    ScriptedRegistry,
    dispatch_one,
)
from zquant.scheduler.v1 import executor_service_pb2, task_pb2

pytestmark = pytest.mark.asyncio


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class VanishingExecutor(ScriptedExecutor):
    """Accepts the run, then its stream ends without the run's end (the process died)."""

    def Run(self, request: executor_service_pb2.RunRequest, **call: Any) -> ScriptedCall:
        self.runs.append(request.attempt)
        accepted = executor_service_pb2.RunResponse(type=executor_service_pb2.RunResponse.EVENT_TYPE_ACCEPTED)
        return ScriptedCall([accepted], None)


async def test_a_run_records_its_start_delay_from_its_planned_time_and_its_duration() -> None:
    delays = sample("zq_run_start_delay_seconds_count", task_type=TASK.task_type)
    late = sample("zq_run_start_delay_seconds_bucket", task_type=TASK.task_type, le="30.0")
    durations = sample("zq_run_duration_seconds_count", task_type=TASK.task_type, status="success")
    run = task_pb2.Execution(id=9, task_id=TASK.id, status="pending")
    # Planned 40 s ago: an executor accepting it now started it 40 s late.
    run.scheduled_time.FromDatetime(datetime.now(UTC) - timedelta(seconds=40))
    # The dispatcher waits for a retry's due time only when it lies ahead; this one is past.
    await dispatch_one(ScriptedRegistry(), ScriptedExecutor(), run=run)
    assert sample("zq_run_start_delay_seconds_count", task_type=TASK.task_type) == delays + 1
    assert sample("zq_run_start_delay_seconds_bucket", task_type=TASK.task_type, le="30.0") == late
    assert (
        sample("zq_run_duration_seconds_count", task_type=TASK.task_type, status="success") == durations + 1
    )


async def test_a_run_without_a_planned_or_creation_time_records_no_start_delay() -> None:
    delays = sample("zq_run_start_delay_seconds_count", task_type=TASK.task_type)
    await dispatch_one(ScriptedRegistry(), ScriptedExecutor())
    assert sample("zq_run_start_delay_seconds_count", task_type=TASK.task_type) == delays


async def test_a_stream_that_ends_without_the_runs_end_counts_as_a_lost_executor() -> None:
    lost = sample("zq_executor_lost_total", reason="stream_ended")
    registry = ScriptedRegistry()
    await dispatch_one(registry, VanishingExecutor())
    assert [f.status for f in registry.finishes] == ["failed"]
    assert sample("zq_executor_lost_total", reason="stream_ended") == lost + 1

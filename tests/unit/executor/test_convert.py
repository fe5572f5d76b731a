"""The Run request as the executor's domain types: the job gets its run's config (params merged,
templates filled in) and its logical date."""

from __future__ import annotations

from datetime import date

from services.executor.convert import run_spec_from_proto
from zquant.scheduler.v1 import executor_service_pb2, task_pb2


def test_a_run_spec_carries_the_runs_config_with_params_and_templates_and_its_logical_date() -> None:
    request = executor_service_pb2.RunRequest(
        execution_id=5,
        attempt=1,
        task=task_pb2.Task(id=2, task_type="common_task"),
        logical_date="2024-01-02",
    )
    request.task.config.update({"command": "sync {{ logical_date }}", "symbol": "all"})
    request.params.update({"symbol": "600000", "out": "/d/{{ logical_date_nodash }}"})
    spec = run_spec_from_proto(request)
    assert spec.logical_date == date(2024, 1, 2)
    assert spec.config == {"command": "sync 2024-01-02", "symbol": "600000", "out": "/d/20240102"}


def test_a_run_without_a_logical_date_is_for_today() -> None:
    before = date.today()
    spec = run_spec_from_proto(executor_service_pb2.RunRequest(task=task_pb2.Task(task_type="example_task")))
    assert spec.logical_date in (before, date.today()) and spec.config == {}  # across midnight too

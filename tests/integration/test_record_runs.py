"""RecordRuns, the scheduler's batched hot path, against the real registry process on each backend:
every update gets the answer its single call would have given, a failing update never takes the
others down with it, and what lands is what REST shows."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, text

from services.common.auth import service_metadata
from services.common.structs import dict_to_struct
from services.registry.db import normalize_url
from stack import Stack
from tests.conftest import BACKENDS, database_url
from tests.integration.api import Api, unique
from tests.integration.conftest import ADMIN_PASSWORD, start_stack, stop_and_check
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2
from zquant.scheduler.v1 import registry_internal_service_pb2_grpc as pb2_grpc

OK = grpc.StatusCode.OK.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]


class Registry:
    def __init__(self, stack: Stack, url: str) -> None:
        self.channel = grpc.insecure_channel(stack.registry_addr)
        self.stub = pb2_grpc.RegistryInternalServiceStub(self.channel)
        self.metadata = service_metadata(stack.service_token)
        self.url = url

    def record(self, *updates: pb2.RunUpdate) -> list[pb2.RunUpdateResult]:
        response = self.stub.RecordRuns(pb2.RecordRunsRequest(updates=updates), metadata=self.metadata)
        assert len(response.results) == len(updates)
        return list(response.results)

    def sql(self, statement: str, **params: Any) -> None:
        engine = create_engine(normalize_url(self.url))
        with engine.begin() as conn:
            conn.execute(text(statement), params)
        engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Registry, Api]]:
    """Registry and Envoy only: no scheduler acts on the runs these tests make."""
    tmp: Path = tmp_path_factory.mktemp(f"record-{request.param}")
    with database_url(request.param, str(tmp)) as url:
        stack = start_stack(
            tmp, url, scheduler=False, executors=0, static=False, extra_env={"ZQ_LEASE_SECONDS": "120"}
        )
        try:
            registry = Registry(stack, url)
            yield registry, Api.login(stack.http_url, "admin", ADMIN_PASSWORD)
            registry.channel.close()
        finally:
            stop_and_check(stack)


def create(task_id: int, key: str = "", **fields: Any) -> pb2.RunUpdate:
    request = pb2.CreateExecutionRequest(
        task_id=task_id,
        trigger=fields.pop("trigger", "schedule"),
        dedup_key=key or secrets.token_hex(8),
        **fields,
    )
    return pb2.RunUpdate(create=request)


def progress(execution_id: int, attempt: int, result: dict[str, Any]) -> pb2.RunUpdate:
    request = pb2.ReportProgressRequest(
        execution_id=execution_id, attempt=attempt, result=dict_to_struct(result)
    )
    return pb2.RunUpdate(progress=request)


def finish(execution_id: int, attempt: int, status: str = "success", **result: Any) -> pb2.RunUpdate:
    request = pb2.FinishExecutionRequest(
        execution_id=execution_id, attempt=attempt, status=status, result=dict_to_struct(result)
    )
    return pb2.RunUpdate(finish=request)


def started_runs(registry: Registry, task_id: int, count: int) -> list[pb2.CreateExecutionResponse]:
    results = registry.record(*(create(task_id, start_executor="127.0.0.1:1") for _ in range(count)))
    assert all(result.code == OK and result.create.attempt == 1 for result in results), results
    return [result.create for result in results]


def test_creates_in_one_call_each_get_their_own_answer(setup: tuple[Registry, Api]) -> None:
    registry, admin = setup
    task = admin.create_task(name=unique(), interval_seconds=3600)
    key = unique("key")
    results = registry.record(
        create(task["id"], key, start_executor="127.0.0.1:1"),
        create(task["id"], key, start_executor="127.0.0.1:1"),  # the same planned run again
        create(task["id"], trigger="bogus"),
        create(task["id"]),
    )
    started, again, invalid, pending = results
    assert started.code == OK and started.create.created and started.create.attempt == 1
    run = started.create.execution
    assert (run.status, run.executor, run.task_name) == ("running", "127.0.0.1:1", task["name"])
    assert again.code == OK and not again.create.created and again.create.execution.id == run.id
    assert again.create.attempt == 0
    assert invalid.code == INVALID_ARGUMENT and "bogus" in invalid.message
    assert pending.code == OK and pending.create.created and pending.create.attempt == 0
    assert pending.create.execution.status == "pending"
    shown = admin.ok("GET", f"/tasks/{task['id']}/executions/{run.id}")
    assert (shown["status"], shown["executor"]) == ("running", "127.0.0.1:1")
    assert (
        admin.ok("GET", f"/tasks/{task['id']}/executions/{pending.create.execution.id}")["status"]
        == "pending"
    )


def test_a_missing_task_fails_only_its_own_create(setup: tuple[Registry, Api]) -> None:
    registry, admin = setup
    task = admin.create_task(name=unique(), interval_seconds=3600)
    gone = admin.create_task(name=unique(), interval_seconds=3600)
    admin.ok("DELETE", f"/tasks/{gone['id']}")
    first, missing, last = registry.record(create(task["id"]), create(gone["id"]), create(task["id"]))
    assert missing.code == NOT_FOUND and str(gone["id"]) in missing.message
    assert first.code == OK and last.code == OK and first.create.created and last.create.created
    listed = admin.ok("GET", f"/tasks/{task['id']}/executions")
    assert {item["id"] for item in listed["executions"]} == {
        first.create.execution.id,
        last.create.execution.id,
    }


def test_progress_and_ends_in_one_call(setup: tuple[Registry, Api]) -> None:
    registry, admin = setup
    task = admin.create_task(name=unique(), interval_seconds=3600)
    one, two = started_runs(registry, task["id"], 2)
    report = {"current_step": 1, "total_steps": 1, "progress_percent": 100, "message": "step 1"}
    results = registry.record(
        progress(one.execution.id, 1, report),
        progress(two.execution.id, 7, report),  # an attempt that never was
        finish(one.execution.id, 1, message="done"),
        finish(two.execution.id, 1),
    )
    reported, stale, ended_one, ended_two = results
    assert reported.code == OK and not reported.progress.terminate_requested
    assert stale.code == FAILED_PRECONDITION
    assert ended_one.code == OK and ended_two.code == OK
    assert ended_one.finish.execution.status == "success" and not ended_one.finish.HasField("retry")
    shown = admin.ok("GET", f"/tasks/{task['id']}/executions/{one.execution.id}")
    # The final result is merged over the live progress.
    assert shown["status"] == "success" and shown["end_time"] and shown["duration_seconds"] >= 0
    assert shown["result"]["current_step"] == 1 and shown["result"]["message"] == "done"
    assert admin.ok("GET", f"/tasks/{task['id']}/executions/{two.execution.id}")["status"] == "success"
    # Ending a run twice: refused, and it does not keep another run from ending.
    three = started_runs(registry, task["id"], 1)[0]
    twice, other = registry.record(finish(one.execution.id, 1), finish(three.execution.id, 1))
    assert twice.code == FAILED_PRECONDITION and other.code == OK
    assert admin.ok("GET", f"/tasks/{task['id']}/executions/{three.execution.id}")["status"] == "success"


def test_a_run_ended_elsewhere_fails_only_its_own_end(setup: tuple[Registry, Api]) -> None:
    registry, admin = setup
    task = admin.create_task(name=unique(), interval_seconds=3600)
    one, two = started_runs(registry, task["id"], 2)
    # Ended behind this registry's back (as another replica would): its live copy still tracks it.
    registry.sql("UPDATE zq_task_task_executions SET status = 'failed' WHERE id = :id", id=one.execution.id)
    ended_elsewhere, ended = registry.record(finish(one.execution.id, 1), finish(two.execution.id, 1))
    assert ended_elsewhere.code == FAILED_PRECONDITION and "failed" in ended_elsewhere.message
    assert ended.code == OK
    assert admin.ok("GET", f"/tasks/{task['id']}/executions/{one.execution.id}")["status"] == "failed"
    assert admin.ok("GET", f"/tasks/{task['id']}/executions/{two.execution.id}")["status"] == "success"


def test_a_failed_run_with_retries_left_gets_its_retry(setup: tuple[Registry, Api]) -> None:
    registry, admin = setup
    task = admin.create_task(name=unique(), interval_seconds=3600, max_retries=1, retry_interval=5)
    run = started_runs(registry, task["id"], 1)[0]
    (failed,) = registry.record(finish(run.execution.id, 1, "failed"))
    assert failed.code == OK and failed.finish.execution.status == "failed"
    retry = failed.finish.retry
    assert (retry.status, retry.trigger, retry.retry_count) == ("pending", "retry", 1)
    shown = admin.ok("GET", f"/tasks/{task['id']}/executions/{retry.id}")
    assert shown["status"] == "pending" and shown["retry_count"] == 1


def test_an_empty_update_is_refused_alone(setup: tuple[Registry, Api]) -> None:
    registry, admin = setup
    task = admin.create_task(name=unique(), interval_seconds=3600)
    empty, created = registry.record(pb2.RunUpdate(), create(task["id"]))
    assert empty.code == INVALID_ARGUMENT and created.code == OK


def log(execution_id: int, text: str) -> pb2.RunUpdate:
    return pb2.RunUpdate(log=pb2.AppendExecutionLogRequest(execution_id=execution_id, data=text.encode()))


def test_log_lines_travel_in_the_batch_and_are_stored_before_its_ends(setup: tuple[Registry, Api]) -> None:
    registry, admin = setup
    task = admin.create_task(name=unique(), interval_seconds=3600)
    one, two = started_runs(registry, task["id"], 2)
    results = registry.record(
        log(one.execution.id, "one: first\n"),
        log(two.execution.id, "two: only\n"),
        finish(one.execution.id, 1),  # its last lines are in the same batch, after it
        log(one.execution.id, "one: last\n"),
        log(999_999_999, "nobody's\n"),
    )
    first, only, ended, last, gone = results
    assert (first.code, only.code, ended.code, last.code) == (OK, OK, OK, OK)
    assert first.log.end_offset == len("one: first\n")
    assert last.log.end_offset == len("one: first\none: last\n")
    assert only.log.end_offset == len("two: only\n")
    assert gone.code == NOT_FOUND
    shown = admin.ok("GET", f"/executions/{one.execution.id}/log")
    assert shown["text"] == "one: first\none: last\n" and shown["complete"] is True
    assert admin.ok("GET", f"/executions/{two.execution.id}/log")["text"] == "two: only\n"

"""Run records are never wrong (issue 11): a job keeps running while its scheduler or registry
changes, its outcome reaches the registry through whichever scheduler leads next, and no run is
run twice. Real processes on each backend; commands append to a file, so a second run would show."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.common.auth import service_metadata
from services.executor.outcomes import read_stored
from services.scheduler.reasons import CLOCK_MARGIN
from stack import Stack
from tests.conftest import BACKENDS, database_url
from tests.integration.api import Api, unique
from tests.integration.conftest import start_stack
from tests.integration.test_high_availability import leader_pid
from tests.waiting import wait_for
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2
from zquant.scheduler.v1 import registry_internal_service_pb2_grpc as pb2_grpc

BURST_TASKS = 6
# Every run takes this long, so at any moment several of them are in flight or finishing.
RUN_SECONDS = 1.5
LEASE_SECONDS = 15  # the services' default (ZQ_LEASE_SECONDS)
# The scheduler's default (ZQ_LEADER_RENEW_SECONDS): a silent run is reaped at the first renewal of
# the leader's term after its lease ran out.
LEADER_RENEW_SECONDS = 10


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"outcomes-{request.param}")
    with database_url(request.param, str(tmp)) as url:
        stack = start_stack(tmp, url, executors=2, schedulers=2)
        try:
            yield stack
        finally:
            # Not stop_and_check: a registry restarted under load answers its first calls slowly
            # (seen: GetExecution, AcquireLeadership, Login over 100 ms on a busy 2-core machine);
            # the loop watchdog is asserted by the tests that do not kill services.
            stack.stop()


def appending(path: Path, seconds: float) -> dict[str, Any]:
    script = f'sleep {seconds}; echo "$ZQ_EXECUTION_ID" >> {path}'
    return {"command": ["sh", "-c", script]}


def leader(stack: Stack) -> str:
    """The scheduler holding the leadership."""

    def find() -> str | None:
        pid = leader_pid(stack.database_url)
        return next((n for n in stack.config.scheduler_names if pid and stack.pid(n) == pid), None)

    found: str = wait_for(find, 20, "a leader")
    return found


def all_runs(admin: Api, task_ids: list[int]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for task_id in task_ids:
        runs += admin.ok("GET", "/executions", params={"task_id": task_id, "limit": 1000})["executions"]
    return runs


def claimed_run(task_id: int, executor: str) -> pb2.RunUpdate:
    """A fire's run created already claimed for `executor`, as a leader creates it (then sends it)."""
    create = pb2.CreateExecutionRequest(
        task_id=task_id, trigger="schedule", dedup_key=secrets.token_hex(8), start_executor=executor
    )
    return pb2.RunUpdate(create=create)


def test_a_leader_change_during_a_burst_of_finishes_keeps_every_success_and_runs_nothing_twice(
    stack: Stack, admin: Api, job_file: Path
) -> None:
    ids = [
        int(
            admin.create_task(
                name=unique("burst"),
                task_type="common_task",
                interval_seconds=1,
                config=appending(job_file, RUN_SECONDS),
                max_retries=1,  # a run wrongly failed would run again: the file would show it
            )["id"]
        )
        for _ in range(BURST_TASKS)
    ]
    try:
        time.sleep(4)
        old = leader(stack)
        stack.kill(old)  # runs finish while no scheduler leads; the next one must collect them
        time.sleep(8)
    finally:
        for task_id in ids:
            admin.ok("POST", f"/tasks/{task_id}/disable")
    wait_for(
        lambda: all(r["status"] not in ("pending", "running") for r in all_runs(admin, ids)),
        60,
        "every run to end",
    )
    if not stack.is_running(old):
        stack.start_service(old)

    runs = [r for r in all_runs(admin, ids) if r["status"] != "skipped"]
    assert runs
    statuses = Counter(r["status"] for r in runs)
    failures = [(r["id"], r["error_message"]) for r in runs if r["status"] != "success"]
    assert statuses["success"] == len(runs), (statuses, failures)
    assert not any(r["retry_count"] for r in runs)  # nothing was retried
    per_planned = Counter((r["task_id"], r["scheduled_time"]) for r in runs)
    assert max(per_planned.values()) == 1
    ran = Counter(int(line) for line in job_file.read_text().split())
    assert max(ran.values()) == 1, [e for e, n in ran.items() if n > 1]  # no job ran twice
    assert set(ran) == {r["id"] for r in runs}  # and every recorded success ran, once


def test_a_run_its_leader_claimed_and_never_sent_runs_once_under_the_next_leader_instead_of_failing(
    stack: Stack, admin: Api, job_file: Path
) -> None:
    task = admin.create_task(
        name=unique("unsent"), task_type="common_task", config=appending(job_file, 0), max_retries=0
    )
    executor = stack.config.executor_addrs[0]
    # Claimed once the executor has been up longer than the clocks' margin: an executor that came up
    # within it of the claim may have had the run and lost it.
    time.sleep(CLOCK_MARGIN.total_seconds() + 1)
    # As a leader would, a fire's run created already claimed for an executor; the leader then
    # dies before sending it (the current leader leaves a run someone else claimed alone).
    with grpc.insecure_channel(stack.registry_addr) as channel:
        created = pb2_grpc.RegistryInternalServiceStub(channel).RecordRuns(
            pb2.RecordRunsRequest(updates=[claimed_run(task["id"], executor)]),
            metadata=service_metadata(stack.service_token),
        )
    execution_id = created.results[0].create.execution.id
    assert admin.ok("GET", f"/executions/{execution_id}")["status"] == "running"
    old = leader(stack)
    stack.kill(old)  # the next leader adopts every running run, this one too
    try:
        run = admin.wait_execution(task["id"], execution_id, timeout=LEASE_SECONDS)
    finally:
        if not stack.is_running(old):
            stack.start_service(old)
    # Its executor never had it (up since before the claim): back to pending and run, once; not
    # failed as lost.
    assert (run["status"], run["error_message"]) == ("success", "")
    assert [int(line) for line in job_file.read_text().split()].count(execution_id) == 1
    log = admin.ok("GET", f"/executions/{execution_id}/log")
    assert "从未收到此运行" in json.dumps(log, ensure_ascii=False)


def test_a_registry_killed_during_a_long_run_leaves_it_running_to_success(
    stack: Stack, admin: Api, job_file: Path
) -> None:
    task = admin.create_task(
        name=unique("long"),
        task_type="common_task",
        config={
            "command": [
                "sh",
                "-c",
                f'for i in $(seq 1 40); do echo "::progress:: $i/40"; sleep 1; done; echo "$ZQ_EXECUTION_ID" >> {job_file}',
            ]
        },
        max_retries=1,
    )
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]
    wait_for(
        lambda: admin.ok("GET", f"/tasks/{task['id']}/executions/{execution_id}")["status"] == "running",
        20,
        "the run to start",
    )
    time.sleep(3)
    for name in stack.config.registry_names:
        stack.kill(name)
    time.sleep(3)
    for name in stack.config.registry_names:
        stack.start_service(name)
    run = admin.wait_execution(task["id"], execution_id, timeout=90)
    assert run["status"] == "success", run["error_message"]
    assert run["result"]["current_step"] == 40
    assert len(admin.executions(task["id"])) == 1  # not retried
    assert job_file.read_text().split() == [str(execution_id)]  # ran once


def test_an_outcome_no_one_could_store_survives_a_kill_9_of_its_executor_and_is_recorded_once(
    stack: Stack, admin: Api, job_file: Path
) -> None:
    started = job_file.with_name("started")
    script = f'echo "$ZQ_EXECUTION_ID" >> {started}; sleep 2; echo "$ZQ_EXECUTION_ID" >> {job_file}'
    task = admin.create_task(
        name=unique("kept"), task_type="common_task", config={"command": ["sh", "-c", script]}, max_retries=1
    )
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]
    wait_for(started.exists, 20, "the job to start")
    address = admin.ok("GET", f"/tasks/{task['id']}/executions/{execution_id}")["executor"]
    victim = next(name for name in stack.config.executor_names if stack.config.addr(name) == address)
    # No scheduler: the job finishes, its outcome stays on its executor, unstored.
    for name in stack.config.scheduler_names:
        stack.stop_service(name)
    try:
        outcomes = stack.data_dir / "executor-outcomes" / victim
        wait_for(lambda: execution_id in read_stored(outcomes), 20, "the executor to store the outcome")
        stack.kill(victim)
    finally:
        # The next leader re-attaches to the run: it waits for the executor, which comes back after
        # it, reads the outcome back and hands it over.
        for name in stack.config.scheduler_names:
            stack.start_service(name)
        if not stack.is_running(victim):
            stack.start_service(victim)
    run = admin.wait_execution(task["id"], execution_id, timeout=60)
    assert run["status"] == "success", run["error_message"]
    assert len(admin.executions(task["id"])) == 1  # not retried
    assert job_file.read_text().split() == [str(execution_id)]  # ran once
    wait_for(lambda: execution_id not in read_stored(outcomes), 20, "the acknowledged outcome to be removed")


def test_a_run_outlives_a_scheduler_outage_longer_than_its_lease_and_is_recorded_once(
    stack: Stack, admin: Api, job_file: Path
) -> None:
    started = job_file.with_name("started-outage")
    outage = LEASE_SECONDS + 3
    script = (
        f'echo "$ZQ_EXECUTION_ID" >> {started}; sleep {outage + 2}; echo "$ZQ_EXECUTION_ID" >> {job_file}'
    )
    task = admin.create_task(
        name=unique("outage"),
        task_type="common_task",
        config={"command": ["sh", "-c", script]},
        max_retries=1,
    )
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]
    wait_for(started.exists, 20, "the job to start")
    # No scheduler for longer than a lease: nothing reports the run, and nothing could say it is lost.
    for name in stack.config.scheduler_names:
        stack.stop_service(name)
    try:
        time.sleep(outage)
        during = admin.ok("GET", f"/tasks/{task['id']}/executions/{execution_id}")
        assert during["status"] == "running", during["error_message"]
    finally:
        for name in stack.config.scheduler_names:
            stack.start_service(name)
    # The next leader re-attaches to it and collects its outcome.
    run = admin.wait_execution(task["id"], execution_id, timeout=60)
    assert run["status"] == "success", run["error_message"]
    assert len(admin.executions(task["id"])) == 1  # not retried
    assert job_file.read_text().split() == [str(execution_id)]  # ran once


def test_a_record_runs_batch_cancelled_by_its_caller_leaves_no_run_running(stack: Stack, admin: Api) -> None:
    task = admin.create_task(name=unique("cancelled"), config={"duration_seconds": 0, "steps": 1})
    channel = grpc.insecure_channel(stack.registry_addr)
    stub = pb2_grpc.RegistryInternalServiceStub(channel)
    # Claimed for an executor no scheduler knows: only the lease reaper can end them.
    batch = [claimed_run(task["id"], "127.0.0.1:1") for _ in range(12)]
    try:
        for timeout in (0.005, 0.02, 0.05, 0.1):  # cancelled at different points of storing
            with contextlib.suppress(grpc.RpcError):
                stub.RecordRuns(
                    pb2.RecordRunsRequest(updates=batch),
                    metadata=service_metadata(stack.service_token),
                    timeout=timeout,
                )
            batch = [pb2.RunUpdate(create=_fresh(update.create)) for update in batch]
    finally:
        channel.close()
    # Whatever was stored is reaped within its lease (15 s), the leader's next renewal and a reaper
    # pass: nothing stays running.
    wait_for(
        lambda: all(run["status"] != "running" for run in admin.executions(task["id"])),
        LEASE_SECONDS + LEADER_RENEW_SECONDS + 10,
        "no run left running",
    )


def _fresh(create: pb2.CreateExecutionRequest) -> pb2.CreateExecutionRequest:
    fresh = pb2.CreateExecutionRequest()
    fresh.CopyFrom(create)
    fresh.dedup_key = secrets.token_hex(8)
    return fresh

"""Drains that never fail a job, with real processes: SIGTERM to an executor in the middle of a run
(a rollout, a node drain, a scale-down) lets the run finish successfully on that executor, without a
retry; runs triggered meanwhile go to the other executor; the drained process exits after its run.
A run that outlasts the drain's grace is handed back: run again at once, without using a retry.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from services.common.vocabulary import DRAIN_INTERRUPTED_MESSAGE
from stack import Stack
from tests.conftest import BACKENDS, database_url
from tests.integration.api import Api, unique
from tests.integration.conftest import ADMIN_PASSWORD, start_stack, stop_and_check
from tests.waiting import wait_for


def run_of(admin: Api, task_id: int, execution_id: int) -> dict[str, object]:
    run: dict[str, object] = admin.ok("GET", f"/tasks/{task_id}/executions/{execution_id}")
    return run


def started(admin: Api, task_id: int, execution_id: int) -> dict[str, object]:
    """The run once its job reports progress: it runs on its executor. (`running` alone is not
    enough: a run is created already claimed for an executor, before that executor accepts it.)"""

    def probe() -> dict[str, object] | None:
        run = run_of(admin, task_id, execution_id)
        result = run.get("result")
        return (
            run
            if run["status"] == "running" and isinstance(result, dict) and "total_steps" in result
            else None
        )

    found: dict[str, object] = wait_for(probe, 20, "the run to start on its executor")
    return found


def test_an_executor_stopped_mid_run_lets_the_run_finish_and_takes_no_new_one(
    stack: Stack, admin: Api
) -> None:
    # Long enough to still run when SIGTERM arrives, well within the stack's 30 s drain.
    long = admin.create_task(name=unique("drain"), config={"duration_seconds": 8, "steps": 8}, max_retries=2)
    execution_id = admin.ok("POST", f"/tasks/{long['id']}/trigger")["execution_id"]
    running = started(admin, long["id"], execution_id)
    by_address = {stack.config.addr(name): name for name in stack.config.executor_names}
    drained_address = str(running["executor"])
    drained = by_address[drained_address]
    pid = stack.pid(drained)
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    try:
        # Runs triggered while it drains go elsewhere (it refuses them; the scheduler moves on).
        short = [
            admin.create_task(name=unique("during"), config={"duration_seconds": 0.1, "steps": 1})["id"]
            for _ in range(3)
        ]
        during = [
            (task_id, admin.ok("POST", f"/tasks/{task_id}/trigger")["execution_id"]) for task_id in short
        ]
        for task_id, other_id in during:
            other = admin.wait_execution(task_id, other_id, timeout=60)
            assert other["status"] == "success", other["error_message"]
            assert other["executor"] != drained_address

        run = admin.wait_execution(long["id"], execution_id, timeout=60)
        assert run["status"] == "success", run["error_message"]
        assert run["executor"] == drained_address
        assert run["retry_count"] == 0 and len(admin.executions(long["id"])) == 1  # never retried
        assert run["result"]["current_step"] == 8
        # The drained process exits once its run is done (the launcher then starts a new one).
        wait_for(lambda: stack.pid(drained) != pid, 30, "the drained executor to exit")
    finally:
        wait_for(lambda: stack.pid(drained) != pid, 60, "the drained executor to exit")
        stack.start_service(drained)


@pytest.fixture(scope="module", params=BACKENDS)
def short_grace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two executors that drain for 1 s only."""
    tmp = tmp_path_factory.mktemp(f"short-grace-{request.param}")
    with database_url(request.param, str(tmp)) as url:
        stack = start_stack(tmp, url, executors=2, extra_env={"ZQ_EXECUTOR_DRAIN_SECONDS": "1"})
        try:
            yield stack
        finally:
            stop_and_check(stack)


def test_a_run_that_outlasts_the_drain_is_handed_back_without_using_a_retry(short_grace: Stack) -> None:
    admin = Api.login(short_grace.http_url, "admin", ADMIN_PASSWORD)
    # Far longer than the 1 s drain, however late SIGTERM lands on a busy machine.
    task = admin.create_task(
        name=unique("outlasts"), config={"duration_seconds": 20, "steps": 20}, max_retries=0
    )
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]
    running = started(admin, task["id"], execution_id)
    drained = {short_grace.config.addr(n): n for n in short_grace.config.executor_names}[
        str(running["executor"])
    ]
    pid = short_grace.pid(drained)
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    try:
        interrupted = admin.wait_execution(task["id"], execution_id, timeout=30)
        assert interrupted["status"] == "failed"
        assert interrupted["error_message"] == DRAIN_INTERRUPTED_MESSAGE
        # max_retries 0, yet it runs again, and to success: the hand-back used no retry.
        handed_back = wait_for(
            lambda: [e for e in admin.executions(task["id"]) if e["id"] != execution_id],
            20,
            "the handed-back run",
        )
        assert len(handed_back) == 1
        assert handed_back[0]["trigger"] == "retry" and handed_back[0]["retry_count"] == 0
        again = admin.wait_execution(task["id"], handed_back[0]["id"], timeout=90)
        assert again["status"] == "success", again["error_message"]
    finally:
        wait_for(lambda: short_grace.pid(drained) != pid, 60, "the drained executor to exit")
        short_grace.start_service(drained)

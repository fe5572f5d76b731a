"""No one can stall scheduling without logging in (issue 11): 50 concurrent wrong logins straight to
the registry while 20 tasks fire every second leave the leader in place and skip no run. The
measuring code is the benchmark's (`bench/login_flood.py`, which also reports the latencies); here
only what must hold is asserted, never a speed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.login_flood import TASKS, leader_term, measure, run_counts
from stack import Stack
from tests.integration.api import Api, unique
from tests.integration.conftest import ADMIN_PASSWORD, start_stack

# Its goal is that a flood of logins cannot starve the scheduler: another test sharing the cores
# would measure something else.
pytestmark = pytest.mark.solo


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp("flood")
    url = f"sqlite:///{tmp}/scheduler.db"
    stack = start_stack(tmp, url, executors=2, extra_env={"ZQ_EXECUTOR_MAX_CONCURRENCY": "200"})
    try:
        yield stack
    finally:
        # Not stop_and_check: the flood's password checks are meant to be slow; what must not
        # suffer from them is asserted in the test.
        stack.stop()


def test_a_login_flood_causes_no_step_down_and_no_skipped_run(stack: Stack) -> None:
    admin = Api.login(stack.http_url, "admin", ADMIN_PASSWORD)
    for _ in range(TASKS):
        admin.create_task(
            name=unique("flood"),
            interval_seconds=1,
            config={"duration_seconds": 0, "steps": 1},
            max_retries=0,
        )

    async def flood_window() -> tuple[int, int, int]:
        await asyncio.sleep(5)  # the scheduler picks the tasks up
        term = leader_term(stack.database_url)
        window = await measure(stack, with_flood=True)
        await asyncio.sleep(2)  # the last runs of the window are recorded
        recorded, skipped = run_counts(stack.database_url, window)
        return leader_term(stack.database_url) - term, recorded, skipped

    step_downs, recorded, skipped = asyncio.run(flood_window())
    assert step_downs == 0
    assert skipped == 0
    assert recorded >= TASKS * 15  # the tasks did fire through the flood (20 s window)

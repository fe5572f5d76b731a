"""A burst larger than the executors' room (issue 16): every run of it is recorded and succeeds,
none is failed as lost for waiting, and no executor is given more runs than it said it takes.
Real processes on each backend: two executors taking 2 runs each, 40 runs due the same second;
every job writes when it starts and ends, so the file shows how many ran at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stack import Stack
from tests.conftest import BACKENDS
from tests.integration.api import Api, unique
from tests.integration.conftest import stack_on_backend
from tests.waiting import wait_for

RUNS = 40
ROOM_PER_EXECUTOR = 2
EXECUTORS = 2
JOB_SECONDS = 0.3


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from stack_on_backend(
        request,
        tmp_path_factory,
        "burst",
        executors=EXECUTORS,
        extra_env={"ZQ_EXECUTOR_MAX_CONCURRENCY": str(ROOM_PER_EXECUTOR)},
    )


def most_at_once(journal: Path) -> int:
    """The most jobs the journal shows running at the same moment."""
    moments = []
    for line in journal.read_text().splitlines():
        what, _, at = line.split()
        moments.append((float(at), 1 if what == "start" else -1))
    running = most = 0
    for _, change in sorted(moments, key=lambda moment: (moment[0], moment[1])):  # ends first on a tie
        running += change
        most = max(most, running)
    return most


def test_a_burst_beyond_the_executors_room_runs_every_run_once_and_never_more_at_once_than_the_room(
    stack: Stack, admin: Api, job_file: Path
) -> None:
    journal = job_file
    due = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
    script = (
        f'echo "start $ZQ_EXECUTION_ID $(date +%s.%N)" >> {journal}; sleep {JOB_SECONDS}; '
        f'echo "end $ZQ_EXECUTION_ID $(date +%s.%N)" >> {journal}'
    )
    tasks = [
        {
            "name": unique("burst"),
            "task_type": "common_task",
            "run_at": due.isoformat(),
            "misfire_grace_seconds": 600,
            "config": {"command": ["sh", "-c", script]},
        }
        for _ in range(RUNS)
    ]
    created = admin.ok("POST", "/tasks:batchCreate", json={"tasks": tasks})["tasks"]
    assert datetime.now(UTC) < due, "creating the tasks took past their due time"
    ids = [int(task["id"]) for task in created]

    def ended() -> list[dict[str, object]] | None:
        listed = admin.ok("GET", "/executions", params={"limit": 10 * RUNS})["executions"]
        runs = [run for run in listed if int(run["task_id"]) in ids]
        return (
            runs
            if len(runs) == RUNS and all(r["status"] not in ("pending", "running") for r in runs)
            else None
        )

    runs: list[dict[str, object]] = wait_for(ended, 120, "every run of the burst to end", interval=0.5)
    assert Counter(str(r["status"]) for r in runs) == {"success": RUNS}, [r["error_message"] for r in runs]
    assert sorted(int(str(r["task_id"])) for r in runs) == sorted(ids)  # one run per task
    started = Counter(
        line.split()[1] for line in journal.read_text().splitlines() if line.startswith("start")
    )
    assert len(started) == RUNS and max(started.values()) == 1  # every job ran, once
    assert 1 <= most_at_once(journal) <= ROOM_PER_EXECUTOR * EXECUTORS

"""The executor's outcome store: outcomes go to disk in batches, come back whole and fresh after a
restart (the newest record of each run), and files go once nothing in them is needed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from services.executor.outcomes import OutcomeStore, StoredOutcome, read_stored

pytestmark = pytest.mark.asyncio(loop_scope="session")


def outcome(execution_id: int, finished_at: float, attempt: int = 1) -> StoredOutcome:
    return StoredOutcome(
        execution_id=execution_id,
        attempt=attempt,
        task_id=3,
        task_type="common_task",
        status="success",
        error_message="",
        result={"current_step": 2, "total_steps": 2, "message": "完成 ✓"},
        finished_at=finished_at,
    )


def files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def test_outcomes_finishing_together_share_one_file_which_goes_once_all_are_acknowledged(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "outcomes"
    store = OutcomeStore(directory)
    now = time.time()
    try:
        assert await store.load(3600) == []  # nothing stored yet: no directory either
        assert await asyncio.gather(*(store.save(outcome(i, now)) for i in (1, 2, 3, 4))) == [True] * 4
        assert len(files(directory)) <= 2  # the first alone, the rest waited for it and went together
        assert (directory.stat().st_mode & 0o777) == 0o700
        assert all((directory / name).stat().st_mode & 0o777 == 0o600 for name in files(directory))

        await store.save(outcome(2, now, attempt=2))  # re-attached: a newer record supersedes
        await store.remove([1, 3, 4])
        assert {i: (o.attempt, p.name) for i, (o, p) in read_stored(directory).items()} == {
            2: (2, files(directory)[0])
        }
        assert len(files(directory)) == 1
        await store.remove([2])
        assert files(directory) == []
    finally:
        store.close()


async def test_a_restarted_store_reads_back_the_newest_fresh_records_and_clears_the_rest(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "outcomes"
    now = time.time()
    first = OutcomeStore(directory)
    try:
        await first.save(outcome(1, now - 10))
        await first.save(outcome(9, now - 7200))  # older than the keep horizon
        await first.save(outcome(2, now - 5))
        await first.save(outcome(1, now - 10, attempt=3))
    finally:
        first.close()
    (directory / ".tmp-batch-000000000099.jsonl").write_bytes(b'{"execution_id": 4, "att')  # cut short
    (directory / "batch-000000000050.jsonl").write_bytes(b'not json\n{"execution_id": 8, "attempt": true}\n')

    second = OutcomeStore(directory)
    try:
        assert await second.load(3600) == [outcome(1, now - 10, attempt=3), outcome(2, now - 5)]
        assert len(files(directory)) == 2  # the records of 2 and of 1's attempt 3; nothing else
        await second.save(outcome(5, now))  # numbered after what it found: nothing overwritten
        await second.remove([1, 2])
        assert [o.execution_id for o, _ in read_stored(directory).values()] == [5]
        assert len(files(directory)) == 1
    finally:
        second.close()

"""Scheduler high availability with real processes: a killed leader is replaced within 5 s, and
every (task, planned time) still has exactly one execution."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from services.registry.db import normalize_url
from stack import Stack
from tests.integration.api import Api, unique
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
TASKS = 20


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def leader_pid(database_url: str) -> int | None:
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT holder, expires_at FROM zq_task_scheduler_leader WHERE id = 1")
            ).first()
    finally:
        engine.dispose()
    if row is None or not row.holder:
        return None
    return int(row.holder.split(":")[1])  # candidate = host:pid:random


def test_a_killed_leader_is_replaced_within_five_seconds_without_duplicates(
    stack: Stack, admin: Api, tmp_path: Path
) -> None:
    port = 0
    env = {**stack.env_for("scheduler"), "ZQ_SCHEDULER_PORT": str(port)}
    with (tmp_path / "standby.log").open("wb") as log:
        standby = subprocess.Popen(
            [sys.executable, "-m", "services.scheduler"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        config = {"duration_seconds": 0, "steps": 1}
        ids = [
            admin.create_task(name=unique("ha"), interval_seconds=1, config=config, max_retries=0)["id"]
            for _ in range(TASKS)
        ]
        time.sleep(4)
        pid = wait_for(lambda: leader_pid(stack.database_url), 10, "a leader")
        assert pid in (stack.pid("scheduler"), standby.pid)
        os.kill(pid, signal.SIGKILL)
        killed_at = datetime.now(UTC)

        def fired_after_kill() -> bool:
            runs = admin.ok("GET", "/executions", params={"task_id": ids[0], "limit": 100})["executions"]
            return any(r["status"] != "skipped" and parse(r["scheduled_time"]) > killed_at for r in runs)

        wait_for(fired_after_kill, 5, "the standby to fire after the leader was killed")
        time.sleep(3)
        for task_id in ids:
            runs = admin.ok("GET", "/executions", params={"task_id": task_id, "limit": 1000})["executions"]
            planned = Counter(parse(r["scheduled_time"]) for r in runs)
            assert max(planned.values()) == 1, f"duplicate planned time for task {task_id}: {planned}"
            times = sorted(planned)
            # The 1 s grid from the first to the last planned time, every slot recorded once
            # (run, or skipped with its reason when it fell in the takeover gap).
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
            assert all(gap == timedelta(seconds=1) for gap in gaps), (task_id, gaps)
    finally:
        if standby.poll() is None:
            standby.kill()
        standby.wait()
        if not stack.is_running("scheduler"):
            stack.start_service("scheduler")

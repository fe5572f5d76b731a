"""History purge vs the API: does purging many old runs slow anyone down?

The stack runs (registry, a scheduler, Envoy; no executors needed). One task gets `--rows` ended
runs (default 1,000,000) that ended 40 days ago, written straight into the database while the task
keeps its history forever (retention_days 0). Then the task's retention is set back to the global
default (30 days) over REST, and the scheduler leader's housekeeping purges them in batches
(ZQ_PURGE_BATCH x ZQ_PURGE_BATCHES per pass). Meanwhile a probe calls the REST API every 20 ms (the
task list, the global history, the statistics) through Envoy.

Inserted straight into the database, the runs are not sealed into the daily aggregates yet
(store.retention): the leader's housekeeping seals them in batches first, and the bench waits for
that and reports how long it took (the catch-up after the migration that added sealing looks the
same). Reported then: the purge's duration and rate, the API's p50 / p99 / max during it, in all
and per path, next to a baseline: the same probe for 15 s over the same rows just before the purge
starts (so that a slow endpoint is not blamed on the purge); and whether the task's statistics are
the same before and after. Goal: API p99 <= 250 ms, statistics unchanged.

At the default 1,000,000 rows this takes minutes per backend (the purge alone is bounded by the
default 5,000 runs per 5 s housekeeping pass), so it is `make bench-purge`, not part of `make bench`,
which runs a 20,000-row trial. PostgreSQL runs in a throwaway schema of the test database.

    python -m bench.purge [--rows 1000000] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import create_engine, false, func, insert, select

from bench.common import admin_client, percentile, stack_on
from services.registry.db import normalize_url
from services.registry.models import ExecutionRow
from stack import Stack

ADMIN_PASSWORD = "bench-admin-password"
INSERT_CHUNK = 20_000
PROBE_EVERY = 0.02
BASELINE_SECONDS = 15
PROBED = (
    "/api/v1/scheduler/tasks?limit=20",
    "/api/v1/scheduler/executions?limit=20",
    "/api/v1/scheduler/stats",
)


def insert_old_runs(url: str, task_id: int, rows: int) -> None:
    ended = datetime.now(UTC) - timedelta(days=40)
    engine = create_engine(normalize_url(url))
    try:
        for start in range(0, rows, INSERT_CHUNK):
            with engine.begin() as connection:
                connection.execute(
                    insert(ExecutionRow),
                    [
                        {
                            "task_id": task_id,
                            "status": "success" if index % 10 else "failed",
                            "trigger": "schedule",
                            "created_at": ended,
                            "start_time": ended - timedelta(seconds=3),
                            "end_time": ended,
                            "duration_seconds": 3.0,
                            "result": {},
                            "retry_count": 0,
                            "attempt": 1,
                            "terminate_requested": False,
                        }
                        for index in range(start, min(rows, start + INSERT_CHUNK))
                    ],
                )
    finally:
        engine.dispose()


def remaining(url: str, task_id: int) -> int:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as connection:
            count = connection.scalar(
                select(func.count()).select_from(ExecutionRow).where(ExecutionRow.task_id == task_id)
            )
            return int(count or 0)
    finally:
        engine.dispose()


def unsealed(url: str) -> int:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as connection:
            count = connection.scalar(
                select(func.count()).select_from(ExecutionRow).where(ExecutionRow.sealed == false())
            )
            return int(count or 0)
    finally:
        engine.dispose()


def probe(client: httpx.Client, stop: threading.Event, latencies: dict[str, list[float]]) -> None:
    turn = 0
    while not stop.is_set():
        path = PROBED[turn % len(PROBED)]
        started = time.perf_counter()
        client.get(path).raise_for_status()
        latencies[path].append((time.perf_counter() - started) * 1000)
        turn += 1
        time.sleep(PROBE_EVERY)


def probed(client: httpx.Client, until: Callable[[], bool]) -> tuple[dict[str, list[float]], float]:
    """The probe's latencies per path while `until()` is false (checked every second), and how long."""
    latencies: dict[str, list[float]] = {path: [] for path in PROBED}
    stop = threading.Event()
    prober = threading.Thread(target=probe, args=(client, stop, latencies), daemon=True)
    started = time.monotonic()
    prober.start()
    while not until():
        time.sleep(1.0)
    took = time.monotonic() - started
    stop.set()
    prober.join()
    return latencies, took


def report(name: str, latencies: dict[str, list[float]]) -> float:
    """Prints p50 / p99 / max in all and per path; returns the p99 of all."""
    every = [value for values in latencies.values() for value in values]
    print(
        f"API {name} ({len(every)} calls): p50 {percentile(every, 0.5):.1f} ms, "
        f"p99 {percentile(every, 0.99):.1f} ms, max {max(every):.1f} ms"
    )
    for path, values in latencies.items():
        print(
            f"  {path:42s} p50 {percentile(values, 0.5):7.1f} ms  p99 {percentile(values, 0.99):7.1f} ms"
            f"  max {max(values):7.1f} ms"
        )
    return percentile(every, 0.99)


def run(stack: Stack, url: str, rows: int) -> None:
    client = admin_client(stack, ADMIN_PASSWORD)
    created = client.post(
        "/api/v1/scheduler/tasks",
        json={
            "name": "purge_bench",
            "task_type": "manual_task",
            "config": {"command": ["true"]},
            "retention_days": 0,
        },
    )
    assert created.is_success, created.text
    task = created.json()
    inserting = time.monotonic()
    insert_old_runs(url, task["id"], rows)
    print(f"inserted {rows:,} runs that ended 40 days ago in {time.monotonic() - inserting:.1f} s")
    sealing = time.monotonic()
    while unsealed(url):
        time.sleep(1.0)
    took_sealing = time.monotonic() - sealing
    print(
        f"the leader sealed them into the daily aggregates in {took_sealing:.1f} s ({rows / took_sealing:,.0f} runs/s)"
    )
    before = client.get("/api/v1/scheduler/stats", params={"task_id": task["id"]}).json()
    # The baseline: the same probe over the same rows, nothing purged yet.
    quiet_until = time.monotonic() + BASELINE_SECONDS
    quiet, _ = probed(client, lambda: time.monotonic() >= quiet_until)
    report("before the purge, the same rows (baseline)", quiet)
    client.put(f"/api/v1/scheduler/tasks/{task['id']}", json={"retention_days": None}).raise_for_status()
    during, took = probed(client, lambda: remaining(url, task["id"]) == 0)
    after = client.get("/api/v1/scheduler/stats", params={"task_id": task["id"]}).json()
    same = {k: v for k, v in before.items() if k != "latest_execution_time"} == {
        k: v for k, v in after.items() if k != "latest_execution_time"
    }
    print(f"purged {rows:,} runs in {took:.1f} s ({rows / took:,.0f} runs/s)")
    p99 = report("during the purge", during)
    print(f"goal p99 <= 250 ms during the purge: {'met' if p99 <= 250 else 'MISSED'}")
    print(f"statistics unchanged: {same}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    args = parser.parse_args(argv)
    for backend in ("sqlite", "postgresql"):
        if args.backend not in (backend, "both"):
            continue
        print(f"== history purge vs API latency: {args.rows:,} old runs, {backend} ==")
        with stack_on(backend, executors=0, admin_password=ADMIN_PASSWORD) as stack:
            run(stack, stack.config.database_url, args.rows)


if __name__ == "__main__":
    main()

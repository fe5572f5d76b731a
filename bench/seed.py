"""Seeding tasks through the init path (issues 10 and 16): 70,000 tasks by default, on PostgreSQL and
on SQLite, into a running registry (the real process), with its health probed throughout.

The tasks go the init script's way (`services/registry/seeding.py`): `ImportTasks` in documents of
5,000, one transaction and Core bulk inserts each, then one event per task. Half are cron tasks in four time zones, half
interval tasks. While seeding, a thread asks the registry's gRPC health every ~100 ms with a 1 s
deadline; an answer that is late, an error or NOT_SERVING is a failure. Goal: 0 failures, max < 1 s.

Printed per backend: tasks/s, CPU per task (registry process, this client, PostgreSQL's processes
on the machine), health p50/p99/max and failures, and on PostgreSQL the task-table rows read by
sequential scans while seeding (0: no query touched every task row).

    python -m bench.seed [--tasks 70000] [--backend postgresql|sqlite|both]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, text

from bench.common import percentile, postgres_cpu_seconds, process_cpu_seconds
from services.registry.db import normalize_url
from services.registry.seeding import connect
from services.registry.settings import RegistrySettings
from stack import Stack, StackConfig
from tests.conftest import database_url

DEFAULT_TASKS = 70_000
PROBE_INTERVAL = 0.1
HEALTH_BUDGET = 1.0
TIMEZONES = ("Asia/Shanghai", "America/New_York", "Europe/London", "UTC")
CONFIG = {"task_action": "example_task", "duration_seconds": 0, "steps": 1}


def seed_tasks(count: int, prefix: str) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    for i in range(count):
        task: dict[str, Any] = {"name": f"{prefix}-{i:06d}", "task_type": "common_task", "config": CONFIG}
        if i % 2:
            task["interval_seconds"] = 3600 + i % 600
        else:
            task["cron_expression"] = f"{i % 60} {i % 24} * * 1-5"
            task["timezone"] = TIMEZONES[i // 2 % len(TIMEZONES)]
        tasks.append(task)
    return tasks


@dataclass
class HealthProbe:
    """Checks gRPC health every PROBE_INTERVAL in a thread; keeps every latency and every failure."""

    address: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with grpc.insecure_channel(self.address, options=[("grpc.enable_http_proxy", 0)]) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_BUDGET)
                    if answer.status != health_pb2.HealthCheckResponse.SERVING:
                        self.failures.append(f"status {answer.status}")
                except grpc.RpcError as exc:
                    self.failures.append(f"{exc.code().name}: {exc.details()}")
                elapsed = time.perf_counter() - started
                self.latencies.append(elapsed)
                self._stop.wait(max(0.0, PROBE_INTERVAL - elapsed))

    @contextmanager
    def running(self) -> Iterator[HealthProbe]:
        thread = threading.Thread(target=self.run, name="health-probe", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


def sequential_rows_read(url: str) -> int | None:
    """Rows of the task table read by sequential scans so far (PostgreSQL's statistics)."""
    if not url.startswith("postgres"):
        return None
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            value = conn.scalar(
                text(
                    "SELECT coalesce(seq_tup_read, 0) FROM pg_stat_user_tables "
                    "WHERE schemaname = current_schema() AND relname = 'zq_task_scheduled_tasks'"
                )
            )
    finally:
        engine.dispose()
    return int(value or 0)


async def seed(settings: RegistrySettings, tasks: list[dict[str, Any]]) -> int:
    async with connect(settings) as writer:
        assert not writer.started_here, "the benchmark seeds a running registry"
        return len(await writer.import_tasks(tasks))


def run(backend: str, count: int) -> None:
    print(f"-- {backend}: seeding {count} tasks through the init path (ImportTasks x 5,000) --")
    with (
        tempfile.TemporaryDirectory() as tmp,
        database_url(backend, tmp) as url,
        Stack(
            StackConfig.build(
                Path(tmp) / "stack",
                free_ports=True,
                scheduler=False,
                executors=0,
                static=False,
                envoy=False,
                database_url=url,
                extra_env={"ZQ_LOG_LEVEL": "WARNING"},
            )
        ) as stack,
    ):
        settings = RegistrySettings.from_env(stack.env_for("registry"))
        registry_pid = stack.pid("registry")
        assert registry_pid is not None
        tasks = seed_tasks(count, "seed")
        seq_before = sequential_rows_read(url)
        registry_cpu, client_cpu, pg_cpu = process_cpu_seconds(registry_pid), time.process_time(), 0.0
        if backend == "postgresql":
            pg_cpu = postgres_cpu_seconds()
        probe = HealthProbe(stack.registry_addr)
        with probe.running():
            started = time.perf_counter()
            created = asyncio.run(seed(settings, tasks))
            elapsed = time.perf_counter() - started
            time.sleep(2.0)  # and a moment of quiet after it: nothing polls the table
        registry_cpu = process_cpu_seconds(registry_pid) - registry_cpu
        client_cpu = time.process_time() - client_cpu
        if backend == "postgresql":
            pg_cpu = postgres_cpu_seconds() - pg_cpu
        seq_after = sequential_rows_read(url)
        assert created == count, (created, count)

        def per_task(seconds: float) -> float:
            return seconds / count * 1e6

        print(f"  {created} tasks in {elapsed:.1f} s: {created / elapsed:,.0f} tasks/s")
        print(
            f"  CPU per task: registry {per_task(registry_cpu):.0f} us, client {per_task(client_cpu):.0f} us"
            + (f", PostgreSQL {per_task(pg_cpu):.0f} us" if backend == "postgresql" else "")
        )
        lat = probe.latencies
        print(
            f"  health: {len(lat)} probes, p50 {percentile(lat, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(lat, 0.99) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms, "
            f"failures {len(probe.failures)} (goal: 0, max < {HEALTH_BUDGET * 1000:.0f} ms)"
        )
        for failure in probe.failures[:5]:
            print(f"    {failure}")
        if seq_before is not None and seq_after is not None:
            print(f"  task-table rows read by sequential scans while seeding: {seq_after - seq_before}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS, help="tasks to seed (default 70,000)")
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    args = parser.parse_args(argv)
    print("== seeding through the init path ==")
    for backend in ("postgresql", "sqlite"):
        if args.backend in (backend, "both"):
            run(backend, args.tasks)


if __name__ == "__main__":
    main()

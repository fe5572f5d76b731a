"""Scheduling benchmarks (issue 3), each a ratio or a count measured in one run.

1. Fire lateness p99 with 1,000 active tasks: our engine (real registry + executors, every fire a
   real no-op run) vs bare APScheduler firing the same times into a no-op. Goal: ratio <= 2.
2. Sustained no-op runs per second end to end (fire -> execution row -> executor -> finished).
   Goal: >= 500/s, on PostgreSQL and on the embedded SQLite.
3. Database row writes per progress event, and in all, for the guide's 60-step example, counted by
   PostgreSQL's own table statistics. Goal: <= 0.1 per event and <= 5 in all (the original: 62).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from apscheduler.executors.base import BaseExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from bench.common import (
    calibrate,
    percentile,
    postgres_cpu_seconds,
    print_calibration,
    process_cpu_seconds,
)
from services.common.heap import freeze_startup_heap
from services.common.thread_priority import make_loop_thread_realtime
from services.registry.db import normalize_url
from services.registry.models import ExecutionRow
from services.scheduler.clients import ExecutorPool, RegistryClient
from services.scheduler.engine import Engine
from services.scheduler.settings import SchedulerSettings
from stack import Stack, StackConfig
from tests.conftest import BACKENDS, database_url, postgres_schema_url
from zquant.scheduler.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    execution_service_pb2,
    execution_service_pb2_grpc,
    stats_service_pb2,
    stats_service_pb2_grpc,
    task_service_pb2,
    task_service_pb2_grpc,
)

ADMIN_PASSWORD = "bench-admin-pw"
TASKS = 1000
INTERVAL = 10
WINDOW = 12.0
PAIRS = 3
NOOP = {"duration_seconds": 0, "steps": 1}


class _Recorder(BaseExecutor):  # type: ignore[misc]
    """Bare APScheduler baseline: records the lateness of each due run time, does nothing else."""

    def __init__(self, lateness: list[float]) -> None:
        super().__init__()
        self._lateness = lateness

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        now = datetime.now(UTC)
        self._lateness.extend((now - t).total_seconds() for t in run_times)
        self._run_job_success(job.id, [])


def _noop(task_id: int) -> None:
    pass


async def bare_apscheduler(anchors: list[datetime], seconds: float) -> list[float]:
    lateness: list[float] = []
    scheduler = AsyncIOScheduler(
        timezone=UTC, executors={"default": _Recorder(lateness)}, job_defaults={"misfire_grace_time": 60}
    )
    for i, anchor in enumerate(anchors):
        scheduler.add_job(_noop, IntervalTrigger(seconds=INTERVAL, start_date=anchor, timezone=UTC), args=[i])
    scheduler.start()
    await asyncio.sleep(seconds)
    scheduler.shutdown(wait=False)
    return lateness


class Api:
    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        token = (
            auth_service_pb2_grpc.AuthServiceStub(self.channel)
            .Login(auth_service_pb2.LoginRequest(username="admin", password=ADMIN_PASSWORD))
            .access_token
        )
        self.md = (("authorization", f"Bearer {token}"),)
        self.tasks = task_service_pb2_grpc.TaskServiceStub(self.channel)
        self.stats = stats_service_pb2_grpc.StatsServiceStub(self.channel)

    def create(self, name: str, interval: int, config: dict[str, Any]) -> int:
        request = task_service_pb2.CreateTaskRequest(
            name=name, task_type="example_task", interval_seconds=interval
        )
        request.config.update(config)
        request.max_retries = 0
        return int(self.tasks.CreateTask(request, metadata=self.md).id)

    def set_enabled(self, task_ids: list[int], enabled: bool) -> None:
        for task_id in task_ids:
            if enabled:
                self.tasks.EnableTask(task_service_pb2.EnableTaskRequest(task_id=task_id), metadata=self.md)
            else:
                self.tasks.DisableTask(task_service_pb2.DisableTaskRequest(task_id=task_id), metadata=self.md)

    def next_runs(self) -> list[datetime]:
        page = self.tasks.ListTasks(
            task_service_pb2.ListTasksRequest(limit=1000, enabled=True, include_children=True),
            metadata=self.md,
        )
        return [t.next_run_time.ToDatetime(tzinfo=UTC) for t in page.tasks if t.HasField("next_run_time")]

    def counts(self) -> dict[str, int]:
        stats = self.stats.GetStats(stats_service_pb2.GetStatsRequest(), metadata=self.md)
        return {
            "success": stats.success_count,
            "failed": stats.failed_count,
            "skipped": stats.skipped_count,
            "total": stats.total_executions,
        }


async def our_engine(stack: Stack, seconds: float) -> tuple[list[float], int]:
    settings = SchedulerSettings.from_env(stack.env_for("registry"))
    registry = RegistryClient(settings.registry_target, settings.service_token)
    executors = ExecutorPool(settings.executor_addresses, settings.service_token)
    freeze_startup_heap()  # as the scheduler's main does once it is up
    engine = Engine(settings, registry, executors)
    runner = asyncio.create_task(engine.run())
    await asyncio.wait_for(engine.ready.wait(), 60)
    engine.lateness.clear()
    await asyncio.sleep(seconds)
    lateness = list(engine.lateness)
    runner.cancel()
    await engine.stop()
    await registry.close()
    await executors.close()
    return lateness, len(lateness)


@contextmanager
def bench_stack(tmp: str, url: str, executors: int) -> Iterator[Stack]:
    config = StackConfig.build(
        Path(tmp),
        free_ports=True,
        scheduler=False,
        executors=executors,
        static=False,
        envoy=False,
        database_url=url,
        extra_env={"ZQ_ADMIN_PASSWORD": ADMIN_PASSWORD, "ZQ_EXECUTOR_MAX_CONCURRENCY": "200"},
    )
    with Stack(config) as stack:
        yield stack


def loop_thread_priority(stack: Stack) -> None:
    """The priority the scheduler's main gives its loop thread (ZQ_SCHEDULER_REALTIME), given to
    this one, where the engines run; the bare APScheduler baseline shares the thread."""
    realtime = SchedulerSettings.from_env(stack.env_for("registry")).realtime
    refused = make_loop_thread_realtime() if realtime else "ZQ_SCHEDULER_REALTIME is off"
    print(f"  loop thread: {'real-time' if not refused else f'normal priority ({refused})'}")


async def lateness_benchmark() -> float:
    print(f"-- fire lateness, {TASKS} tasks every {INTERVAL} s, each fire a real no-op run --")
    with (
        tempfile.TemporaryDirectory() as tmp,
        postgres_schema_url("zq_bench") as url,
        bench_stack(tmp, url, 2) as stack,
    ):
        loop_thread_priority(stack)
        api = Api(stack.registry_addr)
        ids = [api.create(f"late-{i}", INTERVAL, NOOP) for i in range(TASKS)]
        api.set_enabled(ids, False)
        pairs = []
        for _ in range(PAIRS):
            api.set_enabled(ids, True)
            anchors = api.next_runs()
            base = await bare_apscheduler(anchors, WINDOW)
            ours, fires = await our_engine(stack, WINDOW)
            api.set_enabled(ids, False)
            b99, o99 = percentile(base, 0.99), percentile(ours, 0.99)
            pairs.append((b99, o99))
            print(
                f"  bare p50 {percentile(base, 0.5) * 1000:7.2f} ms p99 {b99 * 1000:7.2f} ms ({len(base)} fires) | "
                f"ours p50 {percentile(ours, 0.5) * 1000:7.2f} ms p99 {o99 * 1000:7.2f} ms ({fires} fires)"
            )
        ratio = statistics.median(o / b for b, o in pairs)
        print(f"  median p99 ratio ours/bare: {ratio:.2f}  (goal <= 2)")
        return ratio


def skip_reasons(url: str) -> list[tuple[str, int]]:
    engine = create_engine(normalize_url(url))
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT error_message, count(*) FROM zq_task_task_executions "
                "WHERE status = 'skipped' GROUP BY error_message ORDER BY 2 DESC LIMIT 5"
            )
        ).all()
    engine.dispose()
    return [(str(reason), int(count)) for reason, count in rows]


def run_latency(url: str) -> tuple[float, float]:
    engine = create_engine(normalize_url(url))
    with Session(engine) as session:
        rows = session.execute(
            select(ExecutionRow.scheduled_time, ExecutionRow.end_time).where(ExecutionRow.status == "success")
        ).all()
    engine.dispose()
    latencies = [(end - planned).total_seconds() for planned, end in rows if planned and end]
    return percentile(latencies, 0.5), percentile(latencies, 0.99)


async def throughput_benchmark(backend: str) -> float:
    tasks, seconds = 600, 20.0
    print(f"-- sustained no-op runs ({backend}): {tasks} tasks every 1 s for {seconds:.0f} s --")
    with (
        tempfile.TemporaryDirectory() as tmp,
        database_url(backend, tmp) as url,
        bench_stack(tmp, url, 2) as stack,
    ):
        loop_thread_priority(stack)
        api = Api(stack.registry_addr)
        settings = SchedulerSettings.from_env(stack.env_for("registry"))

        async def run() -> tuple[int, float]:
            registry = RegistryClient(settings.registry_target, settings.service_token)
            executors = ExecutorPool(settings.executor_addresses, settings.service_token)
            freeze_startup_heap()  # as the scheduler's main does once it is up
            engine = Engine(settings, registry, executors)
            runner = asyncio.create_task(engine.run())
            await asyncio.wait_for(engine.ready.wait(), 60)
            # Created while the engine runs: each starts firing one interval after its creation.
            await asyncio.to_thread(lambda: [api.create(f"tp-{i}", 1, NOOP) for i in range(tasks)])
            await asyncio.sleep(5)  # warm up
            pids = {name: stack.pid(name) for name in stack.config.names}
            cpu_before = {name: process_cpu_seconds(pid) for name, pid in pids.items() if pid}
            engine_cpu, postgres_cpu = time.process_time(), postgres_cpu_seconds()
            before, t0 = api.counts(), time.monotonic()
            await asyncio.sleep(seconds)
            after, elapsed = api.counts(), time.monotonic() - t0
            delta = {key: after[key] - before[key] for key in after}
            done = delta["success"]
            print(
                "  runs recorded in the window: "
                + ", ".join(f"{key} {value}" for key, value in delta.items())
                + f"  (fires offered: {tasks * elapsed:.0f})"
            )
            cpu = {name: process_cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items() if pid}
            cpu["scheduler engine (this process)"] = time.process_time() - engine_cpu
            if backend == "postgresql":
                cpu["postgresql (all its processes)"] = postgres_cpu_seconds() - postgres_cpu
            for name, seconds_used in cpu.items():
                print(
                    f"  CPU {name:32s} {seconds_used / elapsed * 100:5.1f} %   {seconds_used / max(done, 1) * 1000:.3f} ms/run"
                )
            runner.cancel()
            await engine.stop()
            await registry.close()
            await executors.close()
            for reason, count in skip_reasons(url):
                print(f"  skipped {count:6d}: {reason}")
            p50, p99 = run_latency(url)
            print(
                f"  planned time -> finished, successful runs: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
            )
            return done, elapsed

        done, elapsed = await run()
        rate = done / elapsed
        print(f"  {done} runs finished in {elapsed:.1f} s: {rate:.0f} runs/s  (goal >= 500)")
        return rate


def writes_benchmark() -> tuple[float, int]:
    print("-- database row writes for the guide's 60-step example (60 s) --")
    with (
        tempfile.TemporaryDirectory() as tmp,
        postgres_schema_url("zq_bench") as url,
        Stack(
            StackConfig.build(
                Path(tmp),
                free_ports=True,
                executors=1,
                static=False,
                envoy=False,
                database_url=url,
                extra_env={"ZQ_ADMIN_PASSWORD": ADMIN_PASSWORD},
            )
        ) as stack,
    ):
        schema = url.rsplit("%3D", 1)[1]
        engine = create_engine(normalize_url(url.split("?")[0]))

        def row_writes() -> int:
            time.sleep(1.5)  # PostgreSQL publishes table statistics at transaction ends, within ~1 s
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_stat_clear_snapshot()"))
                value = conn.execute(
                    text(
                        "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
                        "WHERE schemaname = :s AND relname = 'zq_task_task_executions'"
                    ),
                    {"s": schema},
                ).scalar()
            return int(value or 0)

        api = Api(stack.registry_addr)
        task_id = api.create("guide-60-steps", 0, {"duration_seconds": 60, "steps": 60, "success_rate": 1.0})
        before = row_writes()
        trigger = api.tasks.TriggerTask(task_service_pb2.TriggerTaskRequest(task_id=task_id), metadata=api.md)
        executions = execution_service_pb2_grpc.ExecutionServiceStub(api.channel)
        events = 0
        for event in executions.WatchExecution(
            execution_service_pb2.WatchExecutionRequest(task_id=task_id, execution_id=trigger.execution_id),
            metadata=api.md,
        ):
            if event.event_type == "snapshot":
                events += 1
        writes = row_writes() - before
        per_event = writes / max(events, 1)
        print(
            f"  {events} progress events, {writes} row writes in all: {per_event:.3f} per event  (goals <= 0.1, <= 5)"
        )
        engine.dispose()
        return per_event, writes


async def run_all() -> None:
    # One event loop for every benchmark: grpc.aio channels belong to the loop that made them.
    await lateness_benchmark()
    for backend in BACKENDS:
        await throughput_benchmark(backend)


def main() -> None:
    print("== scheduling benchmarks ==")
    print_calibration(calibrate())
    asyncio.run(run_all())
    writes_benchmark()


if __name__ == "__main__":
    main()

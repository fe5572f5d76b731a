"""Shared pieces of the benchmarks: calibration, percentiles, process CPU, the stack under test."""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
from apscheduler.schedulers.background import BackgroundScheduler
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine

from stack import Stack, StackConfig
from tests.conftest import database_url

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_run_seconds(pid: int) -> float:
    """Time the process's threads ran on a CPU, to the nanosecond (each thread's schedstat). The
    tick-sampled user + system time of `process_cpu_seconds` charges a whole 10 ms tick, or
    nothing, to a thread that runs for 50 us across a tick: for processes that mostly sleep, as on
    an idle stack, it is off by several ms per second. Threads that exited are not counted."""
    total = 0
    for schedstat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(schedstat.read_text().split()[0])
        except (OSError, IndexError, ValueError):  # exited meanwhile
            continue
    return total / 1e9


def postgres_cpu_seconds() -> float:
    """CPU time of the local PostgreSQL server's processes (a backend that exits meanwhile is lost)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited meanwhile
            continue
        if text.split("(", 1)[1].startswith("postgres"):
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def cpu_of(pids: list[int], action: Callable[[], int]) -> tuple[int, float]:
    """Runs `action` (which returns an operation count); returns (ops, CPU seconds of `pids`)."""
    before = sum(process_cpu_seconds(pid) for pid in pids)
    ops = action()
    return ops, sum(process_cpu_seconds(pid) for pid in pids) - before


def median_ratio(pairs: list[tuple[float, float]]) -> float:
    return statistics.median(ours / base for base, ours in pairs)


def calibrate() -> dict[str, float]:
    """The machine's floors right now: APScheduler lateness, one gRPC round trip, one commit."""
    results: dict[str, float] = {}
    # Bare APScheduler: 200 date jobs due 2 ms apart, lateness of each.
    lateness: list[float] = []
    scheduler = BackgroundScheduler(job_defaults={"misfire_grace_time": 60})
    scheduler.start()
    start = time.time() + 0.3
    for i in range(200):
        due = start + i * 0.002

        def job(due: float = due) -> None:
            lateness.append(time.time() - due)

        from datetime import UTC, datetime

        scheduler.add_job(job, "date", run_date=datetime.fromtimestamp(due, UTC))
    time.sleep(1.2)
    scheduler.shutdown()
    results["apscheduler_lateness_p50_ms"] = percentile(lateness, 0.5) * 1000
    results["apscheduler_lateness_p99_ms"] = percentile(lateness, 0.99) * 1000
    # One bare unary gRPC round trip (sync server, health check).
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(4))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest()
        for _ in range(200):
            stub.Check(request)
        samples = []
        for _ in range(1000):
            t0 = time.perf_counter()
            stub.Check(request)
            samples.append(time.perf_counter() - t0)
    server.stop(0)
    results["grpc_unary_round_trip_p50_ms"] = percentile(samples, 0.5) * 1000
    # One bare SQLAlchemy Core single-row commit on SQLite (WAL).
    path = Path("/tmp") / f"zq-bench-{os.getpid()}.db"
    engine = create_engine(f"sqlite:///{path}")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("v", String(20)))
    table.metadata.create_all(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
    t0 = time.perf_counter()
    for i in range(500):
        with engine.begin() as conn:
            conn.execute(table.insert().values(v=str(i)))
    results["sqlite_core_commit_ms"] = (time.perf_counter() - t0) / 500 * 1000
    engine.dispose()
    path.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return results


def print_calibration(results: dict[str, float]) -> None:
    print("calibration (this machine, now):")
    for name, value in results.items():
        print(f"  {name:34s} {value:8.3f}")


def load_average() -> str:
    """The machine's load averages (1, 5 and 15 minutes), as a benchmark reports them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


@contextlib.contextmanager
def stack_on(backend: str, executors: int, admin_password: str, indent: str = "") -> Iterator[Stack]:
    """A stack of its own on `backend` (SQLite in a temporary directory, or a throwaway schema of
    the PostgreSQL test database) with `executors` executors, the admin's password set, and the
    machine's load average printed before and after (each line starting with `indent`)."""
    print(f"{indent}load average before: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp, database_url(backend, tmp) as url:
        config = StackConfig.build(
            Path(tmp),
            free_ports=True,
            executors=executors,
            static=False,
            database_url=url,
            extra_env={"ZQ_ADMIN_PASSWORD": admin_password},
        )
        with Stack(config) as stack:
            yield stack
    print(f"{indent}load average after: {load_average()}")


def admin_client(stack: Stack, admin_password: str) -> httpx.Client:
    """An HTTP client of the stack's REST API, logged in as the admin."""
    login = httpx.post(
        f"{stack.http_url}/api/v1/auth/login", json={"username": "admin", "password": admin_password}
    )
    login.raise_for_status()
    return httpx.Client(
        base_url=stack.http_url,
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        timeout=30,
    )

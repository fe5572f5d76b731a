"""Login flood: can anyone stall scheduling without logging in?

The whole stack runs (registry on SQLite, a scheduler, two executors); 20 interval tasks fire every
second. Then for 20 s, 50 concurrent callers send wrong logins for made-up usernames (each a full
argon2 verification against the dummy hash: the worst case) straight to the registry's gRPC port,
loopback only, bounded in time and concurrency. The gateway would answer most of them with 429 (its
per-address limit), so this is what a flood from many addresses that gets past it would do.

Reported, for a quiet 20 s window and the flood window:
- scheduler step-downs: increments of the leadership term (zq_task_scheduler_leader);
- skipped runs: runs recorded `skipped` for the 20 tasks, and planned runs recorded at all;
- internal RPC latency: a probe calls RegistryInternalService.ListActiveExecutions (service token)
  every 50 ms on the registry's internal listener, the way the scheduler's renewals and run
  recording go (ZQ_REGISTRY_INTERNAL_ADDR); p50 / p99 / max; and the same call on the public port,
  where the flood arrives, for comparison (what a scheduler without the internal port would see);
- the flood itself: logins answered per second, their p50, and LOGIN_BUSY refusals.
Goal: 0 step-downs, 0 skipped runs, internal RPC p99 <= 50 ms during the flood.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
from sqlalchemy import create_engine, text

from bench.common import percentile
from services.common.auth import service_metadata
from services.common.errors import reason_of
from stack import Stack, StackConfig
from zquant.scheduler.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    registry_internal_service_pb2,
    registry_internal_service_pb2_grpc,
    task_service_pb2,
    task_service_pb2_grpc,
)

ADMIN_PASSWORD = "bench-admin-password"
TASKS = 20
WINDOW_SECONDS = 20.0
FLOOD_CONCURRENCY = 50
PROBE_EVERY = 0.05


@dataclass
class Window:
    started: datetime
    ended: datetime | None = None
    probe_ms: list[float] = field(default_factory=list)
    # The same probe on the public port (the flood's).
    public_probe_ms: list[float] = field(default_factory=list)
    login_ms: list[float] = field(default_factory=list)
    busy: int = 0


async def probe(channel: grpc.aio.Channel, token: str, into: list[float], stop: asyncio.Event) -> None:
    internal = registry_internal_service_pb2_grpc.RegistryInternalServiceStub(channel)
    request = registry_internal_service_pb2.ListActiveExecutionsRequest()
    while not stop.is_set():
        started = time.perf_counter()
        await internal.ListActiveExecutions(request, metadata=service_metadata(token), timeout=10)
        into.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(PROBE_EVERY)


async def flood(channel: grpc.aio.Channel, window: Window, stop: asyncio.Event) -> None:
    auth = auth_service_pb2_grpc.AuthServiceStub(channel)

    async def caller() -> None:
        while not stop.is_set():
            request = auth_service_pb2.LoginRequest(
                username=f"x{secrets.token_hex(6)}", password="wrong-password"
            )
            started = time.perf_counter()
            try:
                await auth.Login(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                if reason_of(exc) == "LOGIN_BUSY":
                    window.busy += 1
                    await asyncio.sleep(0.01)
                    continue
            window.login_ms.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(caller() for _ in range(FLOOD_CONCURRENCY)))


async def measure(stack: Stack, with_flood: bool) -> Window:
    window = Window(started=datetime.now(UTC))
    stop = asyncio.Event()
    internal_addr = stack.env_for("scheduler").get("ZQ_REGISTRY_INTERNAL_ADDR") or stack.registry_addr
    async with (
        grpc.aio.insecure_channel(internal_addr) as probe_channel,
        grpc.aio.insecure_channel(stack.registry_addr) as public_probe_channel,
        grpc.aio.insecure_channel(stack.registry_addr) as flood_channel,
    ):
        token = stack.service_token
        jobs = [
            asyncio.create_task(probe(probe_channel, token, window.probe_ms, stop)),
            asyncio.create_task(probe(public_probe_channel, token, window.public_probe_ms, stop)),
        ]
        if with_flood:
            jobs.append(asyncio.create_task(flood(flood_channel, window, stop)))
        await asyncio.sleep(WINDOW_SECONDS)
        stop.set()
        window.ended = datetime.now(UTC)
        await asyncio.gather(*jobs[:2])
        for job in jobs[2:]:  # logins still waiting for their answer are abandoned
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
    return window


def create_tasks(stack: Stack) -> None:
    with grpc.insecure_channel(stack.registry_addr) as channel:
        token = (
            auth_service_pb2_grpc.AuthServiceStub(channel)
            .Login(auth_service_pb2.LoginRequest(username="admin", password=ADMIN_PASSWORD))
            .access_token
        )
        tasks = task_service_pb2_grpc.TaskServiceStub(channel)
        for i in range(TASKS):
            request = task_service_pb2.CreateTaskRequest(
                name=f"flood-{i}", task_type="example_task", interval_seconds=1, max_retries=0
            )
            request.config.update({"duration_seconds": 0, "steps": 1})
            tasks.CreateTask(request, metadata=(("authorization", f"Bearer {token}"),))


def leader_term(url: str) -> int:
    with create_engine(url).connect() as connection:
        return int(
            connection.execute(
                text("SELECT COALESCE(MAX(term), 0) FROM zq_task_scheduler_leader")
            ).scalar_one()
        )


def run_counts(url: str, window: Window) -> tuple[int, int]:
    """(runs planned in the window recorded at all, of them skipped)."""
    query = text(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'skipped' THEN 1 ELSE 0 END), 0) "
        "FROM zq_task_task_executions WHERE trigger = 'schedule' AND scheduled_time >= :a AND scheduled_time < :b"
    )
    bounds = {
        "a": window.started.replace(tzinfo=None),
        "b": (window.ended or window.started).replace(tzinfo=None),
    }
    with create_engine(url).connect() as connection:
        total, skipped = connection.execute(query, bounds).one()
    return int(total), int(skipped)


def report(name: str, url: str, window: Window, step_downs: int) -> None:
    recorded, skipped = run_counts(url, window)
    planned = TASKS * int(WINDOW_SECONDS)
    probes = window.probe_ms
    print(f"  {name}:")
    print(
        f"    scheduler step-downs {step_downs}, skipped runs {skipped}, runs recorded {recorded} of ~{planned}"
    )
    for what, samples in (("internal port", probes), ("public port", window.public_probe_ms)):
        print(
            f"    internal RPC (ListActiveExecutions) on the {what}: p50 {percentile(samples, 0.5):.1f} ms, "
            f"p99 {percentile(samples, 0.99):.1f} ms, max {max(samples):.1f} ms ({len(samples)} calls)"
        )
    if window.login_ms:
        print(
            f"    flood: {len(window.login_ms) / WINDOW_SECONDS:.0f} wrong logins/s answered, "
            f"p50 {percentile(window.login_ms, 0.5):.0f} ms, {window.busy} refused LOGIN_BUSY"
        )


async def run(stack: Stack, url: str) -> None:
    create_tasks(stack)
    await asyncio.sleep(5)  # the scheduler picks the tasks up; the first fires settle
    term = leader_term(url)
    quiet = await measure(stack, with_flood=False)
    quiet_term = leader_term(url)
    flooded = await measure(stack, with_flood=True)
    await asyncio.sleep(2)  # the last runs of the window are recorded
    report("quiet", url, quiet, quiet_term - term)
    report(
        f"flood ({FLOOD_CONCURRENCY} concurrent wrong logins)", url, flooded, leader_term(url) - quiet_term
    )


def main() -> None:
    print(
        f"== login flood vs scheduling: {TASKS} tasks every 1 s, {WINDOW_SECONDS:.0f} s windows (SQLite) =="
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/scheduler.db"
        config = StackConfig.build(
            Path(tmp),
            free_ports=True,
            executors=2,
            static=False,
            envoy=False,
            database_url=url,
            extra_env={"ZQ_ADMIN_PASSWORD": ADMIN_PASSWORD, "ZQ_EXECUTOR_MAX_CONCURRENCY": "200"},
        )
        with Stack(config) as stack:
            asyncio.run(run(stack, url))


if __name__ == "__main__":
    main()

"""Issue 6's done-when on a real local cluster: 2 registries, 2 schedulers (one leads), 3 executors and
Envoy on one PostgreSQL schema, started by ``StackConfig.build(registries=2, schedulers=2, executors=3)`` like
``make up-cluster``.

- a SIGKILLed leader scheduler is replaced within 5 s; every (task, planned time) keeps exactly one
  execution on a gap-free 1 s grid;
- a SIGKILLed executor's run fails within 15 s (执行器失联) and its retry succeeds on another one;
- a watcher on one registry sees the progress of a run reported to the other;
- every database connection of the cluster cut at once: the services recover by themselves and no
  run is lost;
- plus: concurrent migrations of an empty schema take turns (advisory lock), and every process
  serves its own /metrics.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import Engine, create_engine, inspect, make_url, text

from services.registry.db import Database, migrate, normalize_url
from stack import Stack, StackConfig
from tests.conftest import postgres_schema_url
from tests.integration.api import Api, unique
from tests.integration.conftest import ADMIN_PASSWORD, stack_env, stop_and_check
from tests.waiting import wait_for
from zquant.scheduler.v1 import execution_service_pb2, execution_service_pb2_grpc

pytestmark = pytest.mark.integration

LOST = "执行器失联"
NOOP = {"duration_seconds": 0, "steps": 1}
LEASE_SECONDS = 15  # the services' default (ZQ_LEASE_SECONDS)
SECOND = timedelta(seconds=1)
# The database connections are cut this often, this many seconds apart (again while reconnecting).
CUTS = 3
CUT_INTERVAL = 0.5


@dataclass
class Cluster:
    stack: Stack
    admin: Api
    url: str
    db: Engine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    with postgres_schema_url("zq_cluster") as url:
        config = StackConfig.build(
            tmp / "stack",
            free_ports=True,
            registries=2,
            schedulers=2,
            executors=3,
            metrics=True,
            database_url=url,
            extra_env=stack_env(),
            startup_timeout=60,
        )
        stack = Stack(config)
        stack.start()
        engine = create_engine(normalize_url(url), pool_pre_ping=True)
        try:
            yield Cluster(stack, Api.login(stack.http_url, "admin", ADMIN_PASSWORD), url, engine)
        finally:
            engine.dispose()
            stop_and_check(stack)


# ---- helpers --------------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def leader_name(cluster: Cluster) -> str | None:
    """The scheduler of the stack holding an unexpired term (holder = host:pid:random)."""
    with cluster.db.connect() as conn:
        holder = conn.execute(
            text("SELECT holder FROM zq_task_scheduler_leader WHERE id = 1 AND expires_at > :now"),
            {"now": now()},
        ).scalar()
    if not holder:
        return None
    pid = int(str(holder).split(":")[1])
    return next((n for n in cluster.stack.config.scheduler_names if cluster.stack.pid(n) == pid), None)


def create_every_second(api: Api, count: int, prefix: str) -> list[int]:
    return [
        int(api.create_task(name=unique(prefix), interval_seconds=1, config=NOOP, max_retries=0)["id"])
        for _ in range(count)
    ]


def disable(api: Api, task_ids: list[int]) -> None:
    for task_id in task_ids:
        api.ok("POST", f"/tasks/{task_id}/disable")


def rows(cluster: Cluster, task_ids: list[int]) -> list[Any]:
    with cluster.db.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT id, task_id, status, trigger, scheduled_time, error_message, executor "
                    "FROM zq_task_task_executions WHERE task_id = ANY(:ids) ORDER BY id"
                ),
                {"ids": task_ids},
            )
        )


def check_grid(cluster: Cluster, task_ids: list[int], must_cover: datetime) -> Counter[str]:
    """Each task's scheduled runs: one row per planned time, on a gap-free 1 s grid reaching past
    `must_cover`; the ones not run are `skipped` with a reason. Returns the statuses."""
    by_task: defaultdict[int, list[Any]] = defaultdict(list)
    for row in rows(cluster, task_ids):
        assert row.trigger == "schedule", row
        by_task[row.task_id].append(row)
    statuses: Counter[str] = Counter()
    for task_id in task_ids:
        runs = by_task[task_id]
        planned = Counter(r.scheduled_time for r in runs)
        duplicates = {t: c for t, c in planned.items() if c > 1}
        assert not duplicates, f"task {task_id}: several executions for one planned time: {duplicates}"
        times = sorted(planned)
        assert times and times[0] < must_cover < times[-1], (task_id, times[:1], times[-1:], must_cover)
        gaps = [(a, b) for a, b in zip(times, times[1:], strict=False) if b - a != SECOND]
        assert not gaps, f"task {task_id}: planned times missing between {gaps}"
        for run in runs:
            statuses[run.status] += 1
            if run.status == "skipped":
                assert run.error_message, run
    return statuses


def db_client_ports(pid: int, db_port: int) -> set[int]:
    """Local ports of the established TCP connections process `pid` holds to `db_port` (/proc)."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if inode in inodes and state == "01" and int(remote.rsplit(":", 1)[1], 16) == db_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def cluster_db_ports(cluster: Cluster) -> set[int]:
    db_port = make_url(normalize_url(cluster.url)).port or 5432
    ports: set[int] = set()
    for name in cluster.stack.config.names:  # only the registries use the database, but check them all
        pid = cluster.stack.pid(name)
        if pid is not None:
            ports |= db_client_ports(pid, db_port)
    return ports


def cut_connections(cluster: Cluster) -> list[Any]:
    """Terminates the backends of the cluster's connections (found by client port: the registries
    name only their cluster-bus connections, `zq-registry-listen-…` / `zq-registry-notify-…`)."""
    ports = cluster_db_ports(cluster)
    with cluster.db.connect() as conn:
        cut = list(
            conn.execute(
                text(
                    "SELECT pid, application_name, pg_terminate_backend(pid) AS terminated "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND host(client_addr) = '127.0.0.1' AND client_port = ANY(:ports) "
                    "AND pid <> pg_backend_pid()"
                ),
                {"ports": sorted(ports)},
            )
        )
    assert all(r.terminated for r in cut), cut
    return cut


# ---- the done-when --------------------------------------------------------------------------------


def test_a_killed_leader_is_replaced_within_five_seconds_and_no_planned_time_is_lost(
    cluster: Cluster,
) -> None:
    stack, admin = cluster.stack, cluster.admin
    ids = create_every_second(admin, 20, "leader")
    leader = wait_for(lambda: leader_name(cluster), 10, "a leader among the stack's schedulers")
    try:
        # Both runs go on: every task fired by the leader for a few seconds.
        wait_for(
            lambda: len({r.task_id for r in rows(cluster, ids) if r.status == "success"}) == 20,
            10,
            "every task to have run",
        )
        time.sleep(2)
        stack.kill(leader)
        killed_at, killed = now(), time.monotonic()

        def fired_after_kill() -> bool:
            return any(r.status != "skipped" and r.scheduled_time > killed_at for r in rows(cluster, ids))

        wait_for(fired_after_kill, 8, "the standby to fire after the leader was killed", interval=0.05)
        takeover = time.monotonic() - killed
        assert takeover < 5, f"the standby fired {takeover:.1f} s after the leader was killed"
        assert leader_name(cluster) not in (None, leader)
        time.sleep(3)
    finally:
        disable(admin, ids)
        if not stack.is_running(leader):
            stack.start_service(leader)  # back as a standby
    statuses = check_grid(cluster, ids, killed_at + 2 * SECOND)
    assert statuses["success"] >= 20 * 5, statuses
    print(f"killed leader {leader}; standby fired after {takeover:.2f} s; runs: {dict(statuses)}")


def test_a_killed_executors_run_fails_within_fifteen_seconds_and_is_retried_elsewhere(
    cluster: Cluster,
) -> None:
    stack, admin = cluster.stack, cluster.admin
    task = admin.create_task(
        name=unique("lost"),
        config={"duration_seconds": 10, "steps": 10},
        max_retries=1,
        retry_interval=0,
    )
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]
    path = f"/tasks/{task['id']}/executions/{execution_id}"

    def running() -> dict[str, Any] | None:
        run: dict[str, Any] = admin.ok("GET", path)
        return run if run["status"] == "running" and run["result"].get("current_step", 0) >= 1 else None

    run = wait_for(running, 15, "the run to be in progress")
    by_address = {stack.config.addr(n): n for n in stack.config.executor_names}
    victim = by_address[run["executor"]]
    stack.kill(victim)
    killed = time.monotonic()
    try:
        failed = wait_for(
            lambda: (r := admin.ok("GET", path))["status"] not in ("pending", "running") and r,
            20,
            "the run to end",
        )
        took = time.monotonic() - killed
        assert failed["status"] == "failed" and LOST in failed["error_message"], failed
        assert took <= 15, f"the lost run failed after {took:.1f} s"
        print(f"killed {victim}; its run failed after {took:.2f} s: {failed['error_message']}")

        def retry() -> dict[str, Any] | None:
            others = [e for e in admin.executions(task["id"], limit=10) if e["id"] != execution_id]
            return others[0] if others else None

        first_retry = wait_for(retry, 10, "the retry")
        final = admin.wait_execution(task["id"], first_retry["id"], timeout=30)
        assert final["trigger"] == "retry" and final["retry_count"] == 1, final
        assert final["status"] == "success", final
        assert final["executor"] in by_address and final["executor"] != run["executor"], final
    finally:
        stack.start_service(victim)


def test_a_watcher_on_one_registry_sees_progress_reported_to_the_other(cluster: Cluster) -> None:
    stack, admin = cluster.stack, cluster.admin
    leader = wait_for(lambda: leader_name(cluster), 10, "a leader")
    reported_to = stack.config.registry_of(leader)  # the leader relays every report to its registry
    watched = next(a for a in stack.config.registry_addrs if a != reported_to)
    task = admin.create_task(name=unique("watch"), config={"duration_seconds": 5, "steps": 5}, max_retries=0)
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]
    events: list[tuple[float, execution_service_pb2.WatchExecutionResponse]] = []
    with grpc.insecure_channel(watched, options=[("grpc.enable_http_proxy", 0)]) as channel:
        stream = execution_service_pb2_grpc.ExecutionServiceStub(channel).WatchExecution(
            execution_service_pb2.WatchExecutionRequest(task_id=task["id"], execution_id=execution_id),
            metadata=[("authorization", f"Bearer {admin.token}")],
            timeout=30,
        )
        events.extend((time.monotonic(), event) for event in stream)
    assert leader_name(cluster) == leader, "the leader changed during the run: reports moved"
    kinds = [e.event_type for _, e in events]
    assert kinds[0] == "snapshot" and kinds[-1] == "end" and kinds.count("end") == 1, kinds
    progress = [
        e.execution.result.fields["progress_percent"].number_value
        for _, e in events
        if e.execution.status == "running" and "progress_percent" in e.execution.result.fields
    ]
    assert progress == sorted(progress) and len({p for p in progress if 0 < p < 100}) >= 2, progress
    assert events[-1][0] - events[0][0] >= 3, "not live: everything arrived at the end"
    final = events[-1][1].execution
    assert final.status == "success" and final.result.fields["progress_percent"].number_value == 100, final


def test_services_recover_by_themselves_after_every_database_connection_is_cut(cluster: Cluster) -> None:
    admin = cluster.admin
    ids = create_every_second(admin, 10, "cut")
    long_tasks = [
        int(
            admin.create_task(
                name=unique("cut_long"),
                config={"duration_seconds": 6, "steps": 6},
                max_retries=1,
                retry_interval=0,
            )["id"]
        )
        for _ in range(3)
    ]
    try:
        for task_id in long_tasks:
            admin.ok("POST", f"/tasks/{task_id}/trigger")
        wait_for(
            lambda: (
                sum(r.status == "success" for r in rows(cluster, ids)) >= 20
                and all(admin.executions(t, limit=1)[0]["status"] == "running" for t in long_tasks)
            ),
            15,
            "the tasks to fire and the long runs to be in progress",
        )
        cut = cut_connections(cluster)
        cut_at, cut_clock = now(), time.monotonic()
        names = [r.application_name for r in cut]
        for _ in range(CUTS - 1):  # again while they reconnect
            time.sleep(CUT_INTERVAL)
            cut_connections(cluster)
        # Both registries' pools and their cluster bus (listen + notify) connections.
        assert sum(n.startswith("zq-registry-listen-") for n in names) == 2, names
        assert len(cut) >= 6, names

        def api_answers() -> bool:
            try:
                return admin.get("/tasks", params={"limit": 1}, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(api_answers, 10, "the API to answer again")
        answered = time.monotonic() - cut_clock
        assert answered < 10
        # Every registry is connected again (bus listener and pool) and the tasks fire on.
        wait_for(lambda: len(cluster_db_ports(cluster)) >= 4, 10, "the registries to reconnect")
        after = cut_at + 2 * SECOND
        wait_for(
            lambda: (
                {r.task_id for r in rows(cluster, ids) if r.status == "success" and r.scheduled_time > after}
                == set(ids)
            ),
            10,
            "every task to run again after the cut",
        )
        time.sleep(2)
    finally:
        disable(admin, ids)
    statuses = check_grid(cluster, ids, cut_at)
    assert statuses["success"] >= 10 * 5, statuses
    print(f"cut {len(cut)} connections ({sorted(set(names))}); API answered after {answered:.2f} s")

    # Nothing stuck: every run of the test ends within the lease + a margin. A run in flight may end
    # failed when the registry could not store its report (then the long tasks' retry runs).
    def settled() -> list[Any] | None:
        found = rows(cluster, ids + long_tasks)
        return None if any(r.status in ("pending", "running") for r in found) else found

    remaining = LEASE_SECONDS + 10 - (time.monotonic() - cut_clock)
    final = wait_for(
        settled, max(remaining, 5), "every run to end (lease + margin after the cut)", interval=0.5
    )
    for task_id in long_tasks:
        runs = [(r.trigger, r.status) for r in final if r.task_id == task_id]
        assert runs == [("manual", "success")] or (
            len(runs) == 2 and runs[0] == ("manual", "failed") and runs[1][0] == "retry"
        ), runs
    failed = [(r.id, r.trigger, r.error_message) for r in final if r.status == "failed"]
    print(f"per-second runs: {Counter(r.status for r in final if r.task_id in ids)}; failed: {failed}")


# ---- the parts ------------------------------------------------------------------------------------


def test_every_process_serves_its_own_metrics(cluster: Cluster) -> None:
    ports = cluster.stack.config.metrics_ports
    grpc_services = [
        *cluster.stack.config.registry_names,
        *cluster.stack.config.scheduler_names,
        *cluster.stack.config.executor_names,
    ]
    assert sorted(ports) == sorted(grpc_services) and len(set(ports.values())) == len(ports), ports
    for name, port in ports.items():
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert response.status_code == 200 and "zq_" in response.text, name
    # The leader has fired (the tests before created tasks firing every second).
    leader = wait_for(lambda: leader_name(cluster), 10, "a leader")
    body = httpx.get(f"http://127.0.0.1:{ports[leader]}/metrics", timeout=5).text
    count = next(
        line for line in body.splitlines() if line.startswith("zq_scheduler_fire_lateness_seconds_count")
    )
    assert float(count.split()[-1]) > 0, count


def test_two_registries_migrating_an_empty_schema_at_once_take_turns() -> None:
    with postgres_schema_url("zq_migrate") as url:
        # A stuck migration fails (instead of hanging the suite) after 30 s.
        databases = [Database(url + "%20-cstatement_timeout%3D30000") for _ in range(2)]
        start = threading.Barrier(len(databases))
        errors: list[BaseException] = []

        def run(database: Database) -> None:
            try:
                start.wait()
                migrate(database.engine)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(d,), daemon=True) for d in databases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        try:
            assert not any(t.is_alive() for t in threads), "a migration hangs"
            assert not errors, errors
            with databases[0].engine.connect() as conn:
                assert "zq_task_task_executions" in inspect(conn).get_table_names()
                assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        finally:
            for database in databases:
                database.dispose()

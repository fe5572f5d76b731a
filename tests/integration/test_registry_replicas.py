"""Two registry replicas on one PostgreSQL schema, with the real processes.

Stack A: registry A, the scheduler (its change feed and every report go to registry A, by
ZQ_REGISTRY_ADDR), two executors, Envoy A. Stack B: registry B (same database, service token and
signing key, its own data directory) behind Envoy B. Users act through Envoy B; the runs are
reported to registry A, so whatever B shows or does travels over the cluster bus.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from stack import Stack, StackConfig
from tests.conftest import postgres_schema_url
from tests.integration.api import Api, error, unique
from tests.integration.conftest import ADMIN_PASSWORD, stack_env, start_stack, stop_and_check
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

# Short leases: a replica that did not hear the heartbeats reported to the other would reap at once.
LEASE_SECONDS = "6"
LOST = "执行器失联"


@dataclass
class Replicas:
    a: Stack
    b: Stack
    # The admin, through Envoy A and through Envoy B.
    via_a: Api
    via_b: Api


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    tmp = tmp_path_factory.mktemp("replicas")
    env = {"ZQ_LEASE_SECONDS": LEASE_SECONDS}
    with postgres_schema_url("zq_replicas") as url:
        a = start_stack(tmp, url, executors=2, extra_env=env)
        try:
            # Replicas share the signing key (a Secret in Kubernetes), not a data directory.
            b_dir = tmp / "stack-b"
            b_dir.mkdir()
            for name in ("jwt_signing_key.pem", "jwks.json"):
                shutil.copy(Path(a.data_dir) / name, b_dir / name)
            b = Stack(
                StackConfig.build(
                    b_dir,
                    free_ports=True,
                    database_url=url,
                    service_token=a.service_token,
                    extra_env=stack_env(**env),
                    scheduler=False,
                    executors=0,
                    static=False,
                )
            )
            b.start()
            try:
                via_a = Api.login(a.http_url, "admin", ADMIN_PASSWORD)
                yield Replicas(a=a, b=b, via_a=via_a, via_b=Api(b.http_url, via_a.token))
            finally:
                stop_and_check(b)
        finally:
            stop_and_check(a)


def create(api: Api, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": unique("replica"),
        "task_type": "example_task",
        "config": {"duration_seconds": 0.2, "steps": 1},
        "max_retries": 0,
    }
    body.update(fields)
    task: dict[str, Any] = api.ok("POST", "/tasks", json=body)
    return task


def trigger(api: Api, task_id: int) -> int:
    execution_id: int = api.ok("POST", f"/tasks/{task_id}/trigger")["execution_id"]
    return execution_id


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def watch(api: Api, task_id: int, execution_id: int) -> list[tuple[float, dict[str, Any]]]:
    """The whole SSE stream of one execution: (arrival time, event) pairs."""
    events: list[tuple[float, dict[str, Any]]] = []
    url = f"/api/v1/scheduler/tasks/{task_id}/executions/{execution_id}/watch"
    with api.http.stream("GET", url, timeout=60) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line:
                assert line.startswith("data: "), line
                events.append((time.monotonic(), json.loads(line[len("data: ") :])))
    return events


def test_a_watcher_on_b_sees_the_progress_reported_to_a(replicas: Replicas) -> None:
    task = create(replicas.via_a, config={"duration_seconds": 3, "steps": 3})
    execution_id = trigger(replicas.via_a, task["id"])
    events = watch(replicas.via_b, task["id"], execution_id)
    kinds = [event["event_type"] for _, event in events]
    assert kinds[0] == "snapshot" and kinds[-1] == "end" and kinds.count("end") == 1, kinds
    running = [event["execution"] for _, event in events if event["execution"]["status"] == "running"]
    progress = [e["result"]["progress_percent"] for e in running if "progress_percent" in e["result"]]
    assert progress == sorted(progress) and len({p for p in progress if 0 < p < 100}) >= 2, progress
    assert all(e["task_name"] == task["name"] for e in running)
    # Live, not all at the end.
    arrivals = [at for at, _ in events]
    assert arrivals[-1] - arrivals[0] >= 2
    final = events[-1][1]["execution"]
    assert final["status"] == "success" and final["result"]["progress_percent"] == 100


def test_a_manual_trigger_through_b_runs_promptly(replicas: Replicas) -> None:
    task = create(replicas.via_b)
    execution_id = trigger(replicas.via_b, task["id"])
    final = replicas.via_b.wait_execution(task["id"], execution_id, timeout=15)
    assert final["status"] == "success", final
    # The scheduler (subscribed to A) heard of it at once, not at its next re-subscription.
    assert (ts(final["start_time"]) - ts(final["created_at"])).total_seconds() < 2, final


def test_a_terminate_through_b_stops_a_run_reported_to_a(replicas: Replicas) -> None:
    task = create(replicas.via_a, config={"duration_seconds": 20, "steps": 20})
    execution_id = trigger(replicas.via_a, task["id"])
    path = f"/tasks/{task['id']}/executions/{execution_id}"
    # B's reads show the live progress (its database write comes only every 25 s).
    wait_for(
        lambda: replicas.via_b.ok("GET", path)["result"].get("current_step", 0) >= 1,
        10,
        "live progress through B",
    )
    replicas.via_b.ok("POST", f"/executions/{execution_id}/terminate")
    final = replicas.via_b.wait_execution(task["id"], execution_id, timeout=10)
    assert final["status"] == "terminated", final
    assert final["duration_seconds"] < 15, final


def test_a_healthy_long_run_is_not_reaped_by_either_replica(replicas: Replicas) -> None:
    # 20 s with 2 steps: between the steps only heartbeats (to A) keep the 6 s lease on B.
    task = create(replicas.via_b, config={"duration_seconds": 20, "steps": 2})
    execution_id = trigger(replicas.via_b, task["id"])
    final = replicas.via_b.wait_execution(task["id"], execution_id, timeout=40)
    assert final["status"] == "success" and LOST not in final["error_message"], final
    assert final["duration_seconds"] >= 19, final
    for stack in (replicas.a, replicas.b):
        assert LOST not in stack.config.log_path("registry").read_text(encoding="utf-8")


def test_the_task_list_on_b_reflects_a_task_created_on_a_at_once(replicas: Replicas) -> None:
    prefix = unique("listed")

    def listed() -> int:
        return len(replicas.via_b.ok("GET", "/tasks", params={"name": prefix})["tasks"])

    for count in range(3):
        assert listed() == count  # now cached on B (up to 5 s, or until a change is heard)
        create(replicas.via_a, name=f"{prefix}_{count}")
        created = time.monotonic()
        wait_for(lambda: listed() == count + 1, 5, "the new task in B's list", interval=0.02)  # noqa: B023
        # Far sooner than the cache's 5 s: the change came over the cluster bus.
        assert time.monotonic() - created < 0.5


def test_both_registries_run_the_cluster_bus(replicas: Replicas) -> None:
    for stack in (replicas.a, replicas.b):
        log = stack.config.log_path("registry")
        assert "cluster bus listening" in log.read_text(encoding="utf-8"), log


def test_a_password_change_on_one_replica_refuses_old_tokens_on_the_other(replicas: Replicas) -> None:
    name, password = unique("moved"), "replica-" + unique("pw")
    replicas.via_a.ok(
        "POST", "/api/v1/auth/users", json={"username": name, "password": password, "role": "operator"}
    )
    user_b = Api.login(replicas.b.http_url, name, password)
    assert user_b.get("/tasks").status_code == 200  # registry B has the user's state cached now
    replicas.via_a.ok("PUT", f"/api/v1/auth/users/{name}", json={"password": "new-" + password})
    # Registry B heard it over the cluster bus, well before its 5 s cache would have expired.
    error(
        wait_for(lambda: _refused(user_b), 2, "registry B to refuse the old token"),
        401,
        reason="TOKEN_REVOKED",
    )


def _refused(api: Api) -> Any:
    response = api.get("/tasks")
    return response if response.status_code == 401 else None

"""The metrics a running stack serves: every metric an alert rule or a dashboard panel of
deploy/monitoring names is exported by the real processes, and after one run the numbers say what
happened (a leader, a connected executor, the run's start delay and duration, database statements,
free slots)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import promql_parser
import pytest

from stack import Stack
from tests.conftest import BACKENDS, database_url
from tests.integration.api import Api
from tests.integration.conftest import ADMIN_PASSWORD, start_stack, stop_and_check
from tests.unit.deploy.test_monitoring import dashboard_queries, rules, selectors

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"metrics-{request.param}")
    with database_url(request.param, str(tmp)) as url:
        stack = start_stack(Path(tmp), url, executors=1, metrics=True)
        try:
            yield stack
        finally:
            stop_and_check(stack)


def scrape(stack: Stack) -> dict[str, str]:
    """Each service's /metrics body, by service name."""
    return {
        name: httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        for name, port in stack.config.metrics_ports.items()
    }


def families(body: str) -> set[str]:
    """Series names a body declares (`# TYPE` lines) or has samples of."""
    names = {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")}
    return names | {m.group(1) for line in body.splitlines() if (m := _SAMPLE.match(line))}


def total(body: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    found = 0.0
    for line in body.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) == name:
            pairs = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            if all(pairs.get(k) == v for k, v in labels.items()):
                found += float(match.group(3))
    return found


def test_every_metric_the_rules_and_the_dashboard_use_is_served(stack: Stack) -> None:
    served = set().union(*(families(body) for body in scrape(stack).values()))
    expressions = [rule["expr"] for rule in rules()] + [expr for _, expr in dashboard_queries()]
    used = {s.name for expr in expressions for s in selectors(promql_parser.parse(expr))} - {"up"}
    # Families with labels declare themselves only by their base name until they have samples.
    missing = {
        name
        for name in used
        if name not in served and re.sub(r"_(bucket|count|sum|total)$", "", name) not in served
    }
    assert not missing, missing


def test_after_a_run_the_numbers_say_what_happened(stack: Stack) -> None:
    admin = Api.login(stack.http_url, "admin", ADMIN_PASSWORD)
    task = admin.create_task(name="metrics-probe", config={"duration_seconds": 0.2, "steps": 2})
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]
    assert admin.wait_execution(task["id"], execution_id)["status"] == "success"
    bodies = scrape(stack)
    scheduler = bodies[stack.config.scheduler_names[0]]
    registry = bodies[stack.config.registry_names[0]]
    executor = bodies[stack.config.executor_names[0]]
    assert total(scheduler, "zq_scheduler_is_leader") == 1
    assert total(scheduler, "zq_executors_connected") == 1
    assert total(scheduler, "zq_run_start_delay_seconds_count", task_type="example_task") >= 1
    assert total(scheduler, "zq_run_duration_seconds_count", task_type="example_task", status="success") >= 1
    assert total(registry, "zq_runs_finished_total", status="success") >= 1
    assert total(registry, "zq_db_query_duration_seconds_count", operation="insert") >= 1
    assert total(registry, "zq_db_pool_connections", state="size") >= 1
    assert total(executor, "zq_executor_slots", state="busy") == 0
    assert total(executor, "zq_executor_slots", state="free") >= 1
    assert total(executor, "zq_executor_draining") == 0


def test_envoys_own_stats_are_served_for_prometheus_and_nothing_else_of_its_admin(stack: Stack) -> None:
    Api.login(stack.http_url, "admin", ADMIN_PASSWORD)  # a request routed to the registry
    response = httpx.get(stack.config.envoy_stats_url, timeout=5)
    assert response.status_code == 200
    body = response.text
    assert total(body, "envoy_server_live") == 1
    assert total(body, "envoy_cluster_upstream_rq_total", envoy_cluster_name="registry") >= 1
    assert total(body, "envoy_http_downstream_rq_total", envoy_http_conn_manager_prefix="http") >= 1
    # The listener passes on that one path: the admin interface's others stay on loopback.
    base = stack.config.envoy_stats_url.removesuffix("/stats/prometheus")
    assert httpx.get(f"{base}/clusters", timeout=5).status_code == 404
    assert httpx.post(f"{base}/quitquitquit", timeout=5).status_code == 404
    assert httpx.post(stack.config.envoy_stats_url, timeout=5).status_code == 404

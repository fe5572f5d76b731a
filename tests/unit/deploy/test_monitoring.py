"""deploy/monitoring: the PodMonitor scrapes what the services serve, and every alert rule and
dashboard query is valid PromQL naming only series the services export, with labels they have.

The catalogue is services/common/metrics.py (every metric is defined there); a rule on a renamed or
misspelt metric would never fire, which no cluster would tell us.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from services.common import metrics
from tests.unit.deploy.test_manifests import DEPLOY, NAMESPACE, OVERLAYS, Obj, of_kind, render, selects

MONITORING = DEPLOY / "monitoring"
SCRAPED = ("registry", "scheduler", "executor")
# Labels Prometheus and the PodMonitor put on every scraped series (target labels), and `le`.
TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance", "service", "le"}


@cache
def exported() -> dict[str, frozenset[str]]:
    """Every series name the services export, with the labels it may carry."""
    series: dict[str, frozenset[str]] = {"up": frozenset()}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        labels = frozenset(value._labelnames)
        for family in value.describe():
            for suffix in suffixes[family.type]:
                series[family.name + suffix] = labels
    return series


def selectors(node: Any) -> Iterator[Any]:
    """The vector selectors of a parsed PromQL expression."""
    if isinstance(node, promql_parser.VectorSelector):
        yield node
        return
    if isinstance(node, promql_parser.MatrixSelector):
        yield node.vector_selector
        return
    for attribute in ("lhs", "rhs", "expr", "param"):
        child = getattr(node, attribute, None)
        if child is not None:
            yield from selectors(child)
    for argument in getattr(node, "args", None) or ():
        yield from selectors(argument)


def problems_of(expression: str) -> list[str]:
    try:
        parsed = promql_parser.parse(expression)
    except Exception as exc:
        return [f"does not parse: {exc}"]
    found = []
    names = exported()
    for selector in selectors(parsed):
        if selector.name not in names:
            found.append(f"names {selector.name}, which no service exports")
            continue
        allowed = names[selector.name] | TARGET_LABELS
        found.extend(
            f"matches label {matcher.name}, which {selector.name} does not have"
            for matcher in selector.matchers.matchers
            if matcher.name not in allowed
        )
    if not list(selectors(parsed)):
        found.append("selects no metric")
    return found


@cache
def monitoring() -> tuple[Obj, ...]:
    return render(MONITORING)


def rules() -> list[dict[str, Any]]:
    rule = of_kind(monitoring(), "PrometheusRule")["zquant-scheduler"]
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard() -> dict[str, Any]:
    config_map = of_kind(monitoring(), "ConfigMap")["zquant-grafana-dashboard"]
    loaded: dict[str, Any] = json.loads(config_map["data"]["zquant-scheduler.json"])
    return loaded


def dashboard_queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"]) for panel in dashboard()["panels"] for target in panel["targets"]
    ]


def test_the_monitoring_objects_live_in_the_namespace() -> None:
    kinds = {o["kind"] for o in monitoring()}
    assert kinds == {"PodMonitor", "PrometheusRule", "ConfigMap"}
    assert all(o["metadata"]["namespace"] == NAMESPACE for o in monitoring())


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_pod_monitor_scrapes_the_metrics_port_of_every_grpc_service(overlay: str) -> None:
    monitor = of_kind(monitoring(), "PodMonitor")["zquant-scheduler"]["spec"]
    port = monitor["podMetricsEndpoints"][0]["port"]
    deployments = of_kind(render(OVERLAYS / overlay), "Deployment")
    for name, deployment in deployments.items():
        template = deployment["spec"]["template"]
        scraped = selects(monitor["selector"], template["metadata"]["labels"])
        assert scraped == (name in SCRAPED), name
        if scraped:
            ports = {p.get("name") for c in template["spec"]["containers"] for p in c.get("ports", [])}
            env = {
                e["name"]: e.get("value") for c in template["spec"]["containers"] for e in c.get("env", [])
            }
            assert port in ports, f"{name} has no port named {port}"
            assert env.get("ZQ_METRICS_PORT") in (None, "9100"), name


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_gateway_monitor_scrapes_envoys_stats_port_which_prometheus_may_reach(overlay: str) -> None:
    monitor = of_kind(monitoring(), "PodMonitor")["zquant-gateway"]["spec"]
    (endpoint,) = monitor["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("envoy-stats", "/stats/prometheus")
    objects = render(OVERLAYS / overlay)
    scraped = [
        name
        for name, deployment in of_kind(objects, "Deployment").items()
        if selects(monitor["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    ]
    assert scraped == ["gateway"]
    template = of_kind(objects, "Deployment")["gateway"]["spec"]["template"]
    ports = {
        p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])
    }
    # The port Envoy's envoy_stats listener binds on the pod IP (deploy/base/gateway/envoy.yaml).
    config = yaml.safe_load((DEPLOY / "base" / "gateway" / "envoy.yaml").read_text())
    (listener,) = [x for x in config["static_resources"]["listeners"] if x["name"] == "envoy_stats"]
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": ports["envoy-stats"]}
    # The monitoring namespace may reach that port of the gateway pods.
    labels = template["metadata"]["labels"]
    admitted = {
        port["port"]
        for policy in of_kind(objects, "NetworkPolicy").values()
        if selects(policy["spec"]["podSelector"], labels)
        for rule in policy["spec"].get("ingress", [])
        if any(
            peer.get("namespaceSelector") == {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
            for peer in rule.get("from", [])
        )
        for port in rule.get("ports", [])
    }
    assert admitted == {ports["envoy-stats"]}


def test_the_catalogue_has_the_metrics_an_operator_alerts_on() -> None:
    wanted = {
        "zq_scheduler_is_leader",
        "zq_executors_connected",
        "zq_executor_slots",
        "zq_run_start_delay_seconds_bucket",
        "zq_run_duration_seconds_bucket",
        "zq_run_retries_total",
        "zq_executor_lost_total",
        "zq_db_query_duration_seconds_bucket",
        "zq_db_pool_connections",
        "zq_cluster_bus_connected",
        "zq_stream_duration_seconds_bucket",
        "zq_streams_active",
    }
    assert wanted <= set(exported())
    assert exported()["zq_executor_slots"] == {"state"}
    assert exported()["zq_run_duration_seconds_bucket"] == {"task_type", "status"}


def test_every_alert_rule_is_valid_promql_on_exported_metrics() -> None:
    found = {rule["alert"]: problems_of(rule["expr"]) for rule in rules()}
    assert not {alert: problems for alert, problems in found.items() if problems}


def test_a_rule_on_a_metric_nobody_exports_is_caught() -> None:
    assert problems_of("sum(zq_no_such_metric) > 0") == ["names zq_no_such_metric, which no service exports"]
    assert problems_of('zq_executor_slots{colour="red"}') == [
        "matches label colour, which zq_executor_slots does not have"
    ]
    assert problems_of("sum(rate(zq_runs_finished_total[5m]) > ") != []


def test_the_alerts_cover_what_an_operator_pages_on() -> None:
    alerts = {rule["alert"] for rule in rules()}
    assert {
        "ZQuantNoSchedulerLeader",
        "ZQuantNoExecutors",
        "ZQuantRunsNotStarting",
        "ZQuantRunStartDelayHigh",
        "ZQuantFiresLate",
        "ZQuantFailureRatioHigh",
        "ZQuantBacklogGrowing",
        "ZQuantDatabaseSlow",
        "ZQuantCalendarDataEnding",
    } <= alerts
    leader = next(rule for rule in rules() if rule["alert"] == "ZQuantNoSchedulerLeader")
    assert leader["for"] == "30s"


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_every_dashboard_query_is_valid_promql_on_exported_metrics() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    found = {f"{title}: {expr}": problems_of(expr) for title, expr in queries}
    assert not {query: problems for query, problems in found.items() if problems}


def test_the_dashboard_is_labelled_for_grafanas_sidecar_and_picks_its_datasource() -> None:
    config_map = of_kind(monitoring(), "ConfigMap")["zquant-grafana-dashboard"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    for panel in dashboard()["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert [v["name"] for v in dashboard()["templating"]["list"]] == ["datasource"]


# -- promtool: the rule file as Prometheus reads it, and unit tests of the alerts ----------------


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool is not on PATH: `make unit` installs it (Debian package prometheus).", pytrace=False
        )
    return promtool


def _rule_files(tmp_path: Path) -> Path:
    """rules.yaml (the PrometheusRule's spec, which is a Prometheus rule file) beside a copy of the
    rule tests; returns the tests' path."""
    spec = of_kind(monitoring(), "PrometheusRule")["zquant-scheduler"]["spec"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    tests = tmp_path / "rules-test.yaml"
    shutil.copy(MONITORING / "rules-test.yaml", tests)
    return tests


def test_promtool_accepts_the_alert_rules(tmp_path: Path) -> None:
    _rule_files(tmp_path)
    result = subprocess.run(
        [_promtool(), "check", "rules", str(tmp_path / "rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_they_should_and_only_then(tmp_path: Path) -> None:
    tests = _rule_files(tmp_path)
    result = subprocess.run(
        [_promtool(), "test", "rules", str(tests)], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr

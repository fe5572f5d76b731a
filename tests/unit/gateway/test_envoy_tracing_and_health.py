"""Envoy's OpenTelemetry tracer and registry health checks as rendered into the gateway config
(gateway/render.py). The tracer: absent by default, and with an OTLP endpoint a tracer exporting to
a collector cluster of that address. The health checks: the registries' readiness."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gateway.render import GatewayConfig, render_text
from services.common.server import READINESS_SERVICE


def rendered(**options: Any) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(render_text(GatewayConfig(**options)))
    return config


def connection_manager(config: dict[str, Any]) -> dict[str, Any]:
    manager: dict[str, Any] = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]
    return manager


def test_without_an_endpoint_envoy_has_no_tracer_and_no_collector() -> None:
    config = rendered()
    assert "tracing" not in connection_manager(config)
    assert [c["name"] for c in config["static_resources"]["clusters"]] == [
        "envoy_admin",
        "registry",
        "static",
    ]


def test_an_otlp_endpoint_gives_envoy_a_tracer_exporting_to_it() -> None:
    config = rendered(otlp_endpoint="http://collector.monitoring:4317")
    provider = connection_manager(config)["tracing"]["provider"]
    assert provider["name"] == "envoy.tracers.opentelemetry"
    assert provider["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] == "otlp_collector"
    assert provider["typed_config"]["service_name"] == "zquant-gateway"
    collector = config["static_resources"]["clusters"][-1]
    assert (collector["name"], collector["type"]) == ("otlp_collector", "STRICT_DNS")
    address = collector["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "collector.monitoring", "port_value": 4317}
    assert "transport_socket" not in collector


def test_an_https_endpoint_is_reached_over_tls() -> None:
    collector = rendered(otlp_endpoint="https://10.0.0.7")["static_resources"]["clusters"][-1]
    assert collector["type"] == "STATIC"
    assert collector["transport_socket"]["typed_config"]["sni"] == "10.0.0.7"


@pytest.mark.parametrize("endpoint", ["ftp://collector:4317", "http://:4317", "http://collector:99999"])
def test_a_malformed_endpoint_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError):
        GatewayConfig(otlp_endpoint=endpoint)


def test_envoy_health_checks_the_registries_readiness() -> None:
    """A registry deaf to its cluster bus leaves Envoy's rotation (services/common/server.py)."""
    clusters = {c["name"]: c for c in rendered()["static_resources"]["clusters"]}
    (check,) = clusters["registry"]["health_checks"]
    assert check["grpc_health_check"] == {"service_name": READINESS_SERVICE}


def test_with_health_ports_envoy_asks_each_registrys_ready_over_http_on_its_own_port() -> None:
    """The HTTP check does not wake the registry's gRPC threads (an idle stack's largest cost)."""
    config = rendered(
        registry_addresses=["127.0.0.1:50051", "127.0.0.1:50151"], registry_health_ports=[9100, 9101]
    )
    registry = {c["name"]: c for c in config["static_resources"]["clusters"]}["registry"]
    (check,) = registry["health_checks"]
    assert check["http_health_check"] == {"path": "/ready"} and "grpc_health_check" not in check
    endpoints = registry["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["health_check_config"]["port_value"] for e in endpoints] == [9100, 9101]
    assert [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints] == [50051, 50151]


def test_health_ports_must_match_the_registries_one_to_one() -> None:
    with pytest.raises(ValueError, match="one port per registry"):
        GatewayConfig(registry_addresses=["127.0.0.1:50051", "127.0.0.1:50151"], registry_health_ports=[9100])
    with pytest.raises(ValueError):
        GatewayConfig(registry_health_ports=[70000])


def test_the_watchdogs_let_an_idle_gateway_sleep() -> None:
    """Every Envoy thread wakes at half its watchdog's smallest budget to report in: Envoy's default
    (200 ms) woke an idle gateway's four threads 40 times a second."""
    watchdogs = rendered()["watchdogs"]
    for watchdog in ("main_thread_watchdog", "worker_watchdog"):
        budgets = watchdogs[watchdog]
        assert set(budgets) == {"miss_timeout", "megamiss_timeout"}  # no kill: misses are stats only
        assert min(float(budget.rstrip("s")) for budget in budgets.values()) >= 5

"""Envoy's registry cluster, read from admin /clusters: ready when every required host is healthy."""

from __future__ import annotations

from stack.readiness import checks_in_flight, parse_counter, unhealthy_registries

CLUSTERS = """\
registry::observability_name::registry
registry::127.0.0.1:50051::health_flags::healthy
registry::127.0.0.1:50151::health_flags::/failed_active_hc
static::127.0.0.1:8001::health_flags::healthy
"""


def test_the_required_registries_healthy_is_ready() -> None:
    assert unhealthy_registries(CLUSTERS, ["127.0.0.1:50051"]) is None


def test_a_required_registry_failing_its_health_check_is_named() -> None:
    reason = unhealthy_registries(CLUSTERS, ["127.0.0.1:50051", "127.0.0.1:50151"])
    assert reason == "registry cluster hosts not healthy: 127.0.0.1:50151 /failed_active_hc"


def test_a_registry_envoy_does_not_know_yet_is_named() -> None:
    assert (
        unhealthy_registries(CLUSTERS, ["127.0.0.1:50251"]) == "registry cluster lacks hosts 127.0.0.1:50251"
    )


def test_a_cluster_without_hosts_is_not_ready() -> None:
    assert unhealthy_registries("static::127.0.0.1:8001::health_flags::healthy", ["127.0.0.1:50051"])


def test_with_no_registry_running_there_is_nothing_to_wait_for() -> None:
    assert unhealthy_registries("", []) is None


STATS = """\
cluster.registry.health_check.attempt: 40
cluster.registry.health_check.success: 38
cluster.registry.health_check.success_total: 7
"""


def test_a_counter_is_read_by_its_exact_name_from_admin_stats() -> None:
    assert parse_counter(STATS, "cluster.registry.health_check.success") == 38


def test_a_counter_missing_from_admin_stats_is_unknown() -> None:
    assert parse_counter(STATS, "cluster.registry.health_check.failure") is None


def test_a_health_check_started_and_not_yet_answered_is_in_flight() -> None:
    stats = "cluster.registry.health_check.attempt: 43\ncluster.registry.health_check.success: 40\n"
    assert checks_in_flight(stats + "cluster.registry.health_check.failure: 2\n") == 1


def test_with_every_health_check_answered_none_is_in_flight() -> None:
    stats = "cluster.registry.health_check.attempt: 43\ncluster.registry.health_check.success: 41\n"
    assert checks_in_flight(stats + "cluster.registry.health_check.failure: 2\n") == 0


def test_health_checks_in_flight_are_unknown_without_every_counter() -> None:
    assert checks_in_flight(STATS) is None

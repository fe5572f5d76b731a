"""Ports of a stack: the well-known ones (overridable by ZQ_*_PORT) or free ones."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stack.ports import FREE_PORT_FLOOR, LOCALHOST, Ports, free_ports, port_in_use


def test_fixed_ports_are_the_documented_defaults() -> None:
    ports = Ports.fixed(2, {})
    assert (ports.http, ports.admin, ports.static) == (8000, 9901, 8001)
    assert ports.registries == (50051,) and ports.schedulers == (50052,)
    assert ports.executors == (50061, 50062) and ports.metrics == ()
    assert ports.registry_internals == (50053,)


def test_fixed_ports_follow_the_environment_and_replicas_step_by_a_hundred() -> None:
    env = {"ZQ_REGISTRY_PORT": "6000", "ZQ_SCHEDULER_PORT": "6001", "ZQ_EXECUTOR_PORT": "7000"}
    env["ZQ_REGISTRY_INTERNAL_PORT"] = "6002"
    ports = Ports.fixed(3, {**env, "ZQ_METRICS_PORT": "9200"}, registries=2, schedulers=3, metrics=4)
    assert ports.registries == (6000, 6100)
    assert ports.registry_internals == (6002, 6102)
    assert ports.schedulers == (6001, 6101, 6201)
    assert ports.executors == (7000, 7001, 7002)
    assert ports.metrics == (9200, 9201, 9202, 9203)


def test_free_ports_are_distinct_and_cover_every_process() -> None:
    ports = Ports.free(3, registries=2, schedulers=2, metrics=7)
    every = [ports.http, ports.admin, ports.envoy_stats, ports.static, *ports.registries, *ports.schedulers]
    every += [*ports.executors, *ports.metrics, *ports.registry_internals]
    assert len(every) == 6 + 3 + 1 + 1 + 7 + 2 == len(set(every))


def test_a_listening_port_is_in_use_and_a_closed_one_is_not() -> None:
    (port,) = free_ports(1)
    assert not port_in_use(port)
    with socket.socket() as listener:
        listener.bind((LOCALHOST, port))
        listener.listen()
        assert port_in_use(port)


def test_free_ports_lie_below_the_ephemeral_range_in_the_workers_own_slice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ephemeral_start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    middle = FREE_PORT_FLOOR + (ephemeral_start - FREE_PORT_FLOOR) // 2
    ports = free_ports(20)
    assert len(set(ports)) == 20 and all(middle <= port < ephemeral_start for port in ports)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert all(FREE_PORT_FLOOR <= port < middle for port in free_ports(20))

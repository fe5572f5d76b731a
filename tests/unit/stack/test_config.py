"""The stack's config: which processes in which order, their ports, environment, logs and metrics."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from stack.config import StackConfig, replica_name
from stack.restart import RestartPolicy


@pytest.fixture(autouse=True)
def no_stack_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ZQ_DATABASE_URL",
        "ZQ_SERVICE_TOKEN",
        "ZQ_DATA_DIR",
        "ZQ_ADMIN_USERNAME",
        "ZQ_ADMIN_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)


def test_a_single_stack_starts_registry_executors_scheduler_static_then_envoy(tmp_path: Path) -> None:
    config = StackConfig.build(tmp_path, executors=2)
    assert config.names == ["registry", "executor-0", "executor-1", "scheduler", "static", "envoy"]
    assert config.executor_addrs == ["127.0.0.1:50061", "127.0.0.1:50062"]
    assert config.database_url == f"sqlite:///{tmp_path / 'scheduler.db'}"
    # Without metrics only the registry has a metrics port: Envoy checks its /ready there.
    assert config.restart is None and config.metrics_ports == {"registry": 9100}
    assert config.registry_health_ports == [9100]


def test_replicas_are_numbered_and_schedulers_spread_over_the_registries(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test"
    config = StackConfig.build(tmp_path, registries=2, schedulers=3, executors=1, database_url=url)
    assert config.registry_names == ["registry", "registry-1"]
    assert config.scheduler_names == ["scheduler", "scheduler-1", "scheduler-2"]
    assert [config.registry_of(n) for n in config.scheduler_names] == [
        "127.0.0.1:50051",
        "127.0.0.1:50151",
        "127.0.0.1:50051",
    ]
    assert config.env_for("envoy")["ZQ_REGISTRY_ADDRS"] == "127.0.0.1:50051,127.0.0.1:50151"


def test_each_scheduler_talks_to_the_internal_listener_of_its_own_registry(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test"
    config = StackConfig.build(tmp_path, registries=2, schedulers=3, executors=1, database_url=url)
    assert [config.env_for(n)["ZQ_REGISTRY_INTERNAL_PORT"] for n in config.registry_names] == [
        "50053",
        "50153",
    ]
    assert [config.env_for(n)["ZQ_REGISTRY_INTERNAL_ADDR"] for n in config.scheduler_names] == [
        "127.0.0.1:50053",
        "127.0.0.1:50153",
        "127.0.0.1:50053",
    ]
    # Envoy only knows the public ports.
    assert "50053" not in config.env_for("envoy")["ZQ_REGISTRY_ADDRS"]


def test_replica_names_keep_the_plain_name_for_the_first() -> None:
    assert [replica_name("registry", i) for i in range(3)] == ["registry", "registry-1", "registry-2"]


def test_several_registries_on_sqlite_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        StackConfig.build(tmp_path, registries=2)


def test_with_metrics_each_grpc_service_gets_its_own_port_in_start_order(tmp_path: Path) -> None:
    config = StackConfig.build(tmp_path, free_ports=True, executors=2, metrics=True)
    ports = config.metrics_ports
    assert list(ports) == ["registry", "executor-0", "executor-1", "scheduler"]
    assert list(ports.values()) == list(config.ports.metrics)
    assert config.env_for("executor-1")["ZQ_METRICS_PORT"] == str(ports["executor-1"])
    assert "ZQ_METRICS_PORT" not in config.service("static").env


def test_disabled_services_are_not_planned(tmp_path: Path) -> None:
    config = StackConfig.build(tmp_path, scheduler=False, executors=0, static=False, envoy=False)
    assert config.names == ["registry"]
    with pytest.raises(KeyError, match="enabled: registry"):
        config.service("scheduler")


def test_a_service_starts_with_ours_then_its_own_then_the_extra_environment(tmp_path: Path) -> None:
    extra = {"ZQ_LEASE_SECONDS": "120", "ZQ_EXECUTOR_NAME": "renamed"}
    config = StackConfig.build(tmp_path, executors=1, service_token="s3cret", extra_env=extra)
    env = config.env_for("executor-0")
    assert env["ZQ_SERVICE_TOKEN"] == "s3cret"
    assert env["ZQ_DATA_DIR"] == str(tmp_path)
    assert env["ZQ_EXECUTOR_PORT"] == "50061"
    assert env["ZQ_LEASE_SECONDS"] == "120"
    assert env["ZQ_EXECUTOR_NAME"] == "renamed"


def test_each_process_logs_to_its_own_file_under_the_data_dir(tmp_path: Path) -> None:
    config = StackConfig.build(tmp_path)
    assert config.log_path("scheduler") == tmp_path / "logs" / "scheduler.log"
    assert config.jwks_path == tmp_path / "jwks.json"


def test_the_processes_are_python_modules_of_this_checkout_and_envoy_reads_our_config(tmp_path: Path) -> None:
    config = StackConfig.build(tmp_path)
    assert config.service("registry").argv == (sys.executable, "-m", "services.registry")
    envoy = config.service("envoy").argv
    assert envoy[envoy.index("-c") + 1] == str(tmp_path / "envoy.yaml")


def test_the_admin_password_is_the_given_one_else_the_generated_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = StackConfig.build(tmp_path)
    assert config.admin_password is None
    (tmp_path / "admin_password.txt").write_text("generated\n", encoding="utf-8")
    assert config.admin_password == "generated"
    monkeypatch.setenv("ZQ_ADMIN_PASSWORD", "given")
    assert config.admin_password == "given"


def test_the_config_is_frozen_and_carries_the_restart_policy(tmp_path: Path) -> None:
    policy = RestartPolicy(first_delay=2.0)
    config = StackConfig.build(tmp_path, restart=policy)
    assert config.restart == policy
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.database_url = "sqlite://"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.service("registry").env["ZQ_REGISTRY_PORT"] = "1"  # type: ignore[index]


def test_negative_executor_counts_and_zero_replicas_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        StackConfig.build(tmp_path, executors=-1)
    with pytest.raises(ValueError):
        StackConfig.build(tmp_path, registries=0)

"""The command line: what `make up` prints and which config each mode runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stack.cli import RESTART_POLICY, banner, cluster_config, main, process_lines, redacted, single_config
from stack.supervisor import Stack


def args(tmp_path: Path, **fields: object) -> argparse.Namespace:
    defaults: dict[str, object] = {"data_dir": tmp_path, "free_ports": True, "executors": 2, "timeout": 30.0}
    return argparse.Namespace(**{**defaults, **fields})


def test_make_up_restarts_the_dead_and_serves_metrics_from_every_grpc_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZQ_DATABASE_URL", raising=False)
    config = single_config(args(tmp_path))
    assert config.restart == RESTART_POLICY
    assert (RESTART_POLICY.first_delay, RESTART_POLICY.max_delay) == (1.0, 30.0)
    assert list(config.metrics_ports) == ["registry", "executor-0", "executor-1", "scheduler"]
    assert config.database_url.startswith("sqlite:///")


def test_up_cluster_runs_replicas_with_the_same_restart_policy(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test"
    config = cluster_config(args(tmp_path, registries=2, schedulers=2, executors=3, database_url=url))
    assert config.registry_names == ["registry", "registry-1"]
    assert config.scheduler_names == ["scheduler", "scheduler-1"]
    assert config.restart == RESTART_POLICY and len(config.metrics_ports) == 7


def test_up_cluster_refuses_sqlite_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up-cluster", "--data-dir", str(tmp_path), "--database-url", "sqlite:///x.db"]) == 2
    assert "needs PostgreSQL" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


def test_the_banner_names_every_process_with_its_log_file_and_metrics_url(tmp_path: Path) -> None:
    stack = Stack(single_config(args(tmp_path, executors=1)))  # not started: pids are "-"
    config = stack.config
    lines = process_lines(stack)
    for name in config.names:
        assert f"log {config.log_path(name)}" in "\n".join(lines)
    metrics = config.metrics_ports["scheduler"]
    (scheduler,) = [line for line in lines if line.strip().startswith("scheduler ")]
    assert f"metrics http://127.0.0.1:{metrics}/metrics" in scheduler
    assert f"-> registry {config.registry_addr}" in scheduler
    assert f"(internal listener 127.0.0.1:{config.ports.registry_internals[0]})" in scheduler
    text = banner(stack, cluster=False)
    assert f"http://localhost:{config.ports.http}/admin/scheduler" in text
    assert "scrape_configs" in text and "started again after 1 s" in text and "stop: Ctrl-C" in text
    assert "failover" not in text and "failover" in banner(stack, cluster=True)


def test_a_database_password_is_never_printed() -> None:
    assert redacted("postgresql://zq:hunter2@db:5432/zq") == "postgresql://zq:***@db:5432/zq"
    assert redacted("postgresql://postgres@127.0.0.1/test") == "postgresql://postgres@127.0.0.1/test"
    assert redacted("sqlite:///var/scheduler.db") == "sqlite:///var/scheduler.db"

"""Executor settings from the environment, with their defaults and checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.executor.settings import ExecutorSettings


def test_settings_from_env() -> None:
    with pytest.raises(ValueError, match="ZQ_SERVICE_TOKEN"):
        ExecutorSettings.from_env({})
    defaults = ExecutorSettings.from_env({"ZQ_SERVICE_TOKEN": "t"})
    assert (defaults.host, defaults.port, defaults.max_concurrency) == ("127.0.0.1", 50061, 16)
    assert (defaults.heartbeat_seconds, defaults.drain_seconds, defaults.kill_grace_seconds) == (2, 30, 5)
    assert defaults.output_tail_bytes == 65536
    custom = ExecutorSettings.from_env(
        {
            "ZQ_SERVICE_TOKEN": "t",
            "ZQ_EXECUTOR_PORT": "0",
            "ZQ_EXECUTOR_MAX_CONCURRENCY": "2",
            "ZQ_EXECUTOR_HEARTBEAT_SECONDS": "0.5",
            "ZQ_EXECUTOR_WORKDIR": "/tmp",
        }
    )
    assert (custom.port, custom.max_concurrency, custom.heartbeat_seconds) == (0, 2, 0.5)
    assert custom.work_dir == Path("/tmp").resolve()
    with pytest.raises(ValueError, match="MAX_CONCURRENCY"):
        ExecutorSettings.from_env({"ZQ_SERVICE_TOKEN": "t", "ZQ_EXECUTOR_MAX_CONCURRENCY": "0"})


def test_data_sync_jobs_write_to_the_schedulers_database_unless_told_otherwise() -> None:
    base = {"ZQ_SERVICE_TOKEN": "t", "ZQ_DATABASE_URL": "sqlite:///var/scheduler.db"}
    defaults = ExecutorSettings.from_env(base).data_sync
    assert (defaults.url, defaults.provider) == ("sqlite:///var/scheduler.db", "akshare")
    custom = ExecutorSettings.from_env(
        {**base, "ZQ_DATA_SYNC_URL": "postgresql://u@db/market", "ZQ_DATA_SYNC_PROVIDER": "tushare"}
    ).data_sync
    assert (custom.url, custom.provider) == ("postgresql://u@db/market", "tushare")
    with pytest.raises(
        ValueError, match="ZQ_DATA_SYNC_PROVIDER must be one of akshare, baostock, tushare, recorded"
    ):
        ExecutorSettings.from_env({**base, "ZQ_DATA_SYNC_PROVIDER": "yahoo"})

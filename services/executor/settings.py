"""Executor settings, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.data_sync import DEFAULT_PROVIDER, MARKET_PROVIDERS, Provider
from services.common.settings import REPO_ROOT, data_dir, env_float, env_int, env_str
from services.executor.data_sync.providers import DEFAULT_RECORDED_DIR


@dataclass(frozen=True, slots=True)
class DataSyncDefaults:
    """What data-sync jobs use when their task does not say (services/common/data_sync.py)."""

    # The target database: ZQ_DATA_SYNC_URL, else the scheduler's own (ZQ_DATABASE_URL); "" = none.
    url: str = ""
    # ZQ_DATA_SYNC_PROVIDER: akshare (default), baostock, tushare or recorded.
    provider: Provider = DEFAULT_PROVIDER
    # ZQ_DATA_SYNC_RECORDED_DIR: the recorded provider's JSON files.
    recorded_dir: Path = DEFAULT_RECORDED_DIR

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DataSyncDefaults:
        provider = env_str(env, "ZQ_DATA_SYNC_PROVIDER", DEFAULT_PROVIDER)
        if provider not in MARKET_PROVIDERS:
            raise ValueError(
                f"ZQ_DATA_SYNC_PROVIDER must be one of {', '.join(MARKET_PROVIDERS)}, got {provider!r}"
            )
        return cls(
            url=env_str(env, "ZQ_DATA_SYNC_URL", env_str(env, "ZQ_DATABASE_URL", "")),
            provider=Provider(provider),
            recorded_dir=Path(env_str(env, "ZQ_DATA_SYNC_RECORDED_DIR", str(DEFAULT_RECORDED_DIR))).resolve(),
        )


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    # Shared secret of the internal services; the only credential the executor accepts.
    service_token: str
    host: str = "127.0.0.1"
    # 0 binds a free port (tests); create_server returns the bound one.
    port: int = 50061
    # Runs beyond this are refused with RESOURCE_EXHAUSTED so the scheduler can go elsewhere.
    max_concurrency: int = 16
    heartbeat_seconds: float = 2.0
    # On SIGTERM: how long active runs may continue before they are terminated.
    drain_seconds: float = 30.0
    # Between SIGTERM and SIGKILL of a command's process group, unless Cancel names another.
    kill_grace_seconds: float = 5.0
    # Default working directory of commands.
    work_dir: Path = REPO_ROOT
    # Bytes of stdout and of stderr kept per command (the tail).
    output_tail_bytes: int = 65536
    # How this executor names itself in logs.
    name: str = "executor"
    log_level: str = "INFO"
    # Prometheus /metrics port; 0 = off.
    metrics_port: int = 0
    # Commands run as this user when the executor runs as root ("" = jobs.job_user.DEFAULT_JOB_USER).
    job_user: str = ""
    data_sync: DataSyncDefaults = DataSyncDefaults()
    # Where finished runs' unacknowledged outcomes are kept across restarts (services/executor/
    # outcomes.py); None keeps them in memory only. From the environment: ZQ_EXECUTOR_OUTCOMES_DIR,
    # else <ZQ_DATA_DIR>/executor-outcomes/<name> (executors sharing a data dir keep apart by name).
    outcomes_dir: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ExecutorSettings:
        env = os.environ if env is None else env
        service_token = env_str(env, "ZQ_SERVICE_TOKEN", "")
        if not service_token:
            raise ValueError("ZQ_SERVICE_TOKEN must be set (shared secret of the internal services)")
        name = env_str(env, "ZQ_EXECUTOR_NAME", "executor")
        default_outcomes = data_dir(env) / "executor-outcomes" / _file_name(name)
        return cls(
            service_token=service_token,
            host=env_str(env, "ZQ_BIND_HOST", "127.0.0.1"),
            port=env_int(env, "ZQ_EXECUTOR_PORT", 50061),
            max_concurrency=env_int(env, "ZQ_EXECUTOR_MAX_CONCURRENCY", 16),
            heartbeat_seconds=env_float(env, "ZQ_EXECUTOR_HEARTBEAT_SECONDS", 2.0),
            drain_seconds=env_float(env, "ZQ_EXECUTOR_DRAIN_SECONDS", 30.0),
            kill_grace_seconds=env_float(env, "ZQ_EXECUTOR_KILL_GRACE_SECONDS", 5.0),
            work_dir=Path(env_str(env, "ZQ_EXECUTOR_WORKDIR", str(REPO_ROOT))).resolve(),
            output_tail_bytes=env_int(env, "ZQ_EXECUTOR_OUTPUT_TAIL_BYTES", 65536),
            name=name,
            log_level=env_str(env, "ZQ_LOG_LEVEL", "INFO"),
            metrics_port=env_int(env, "ZQ_METRICS_PORT", 0),
            job_user=env_str(env, "ZQ_JOB_USER", ""),
            data_sync=DataSyncDefaults.from_env(env),
            outcomes_dir=Path(env_str(env, "ZQ_EXECUTOR_OUTCOMES_DIR", str(default_outcomes))).resolve(),
        )

    def __post_init__(self) -> None:
        # Checked on construction, so settings built directly (tests) get the same checks.
        if self.max_concurrency < 1:
            raise ValueError("ZQ_EXECUTOR_MAX_CONCURRENCY must be at least 1")
        if self.heartbeat_seconds <= 0:
            raise ValueError("ZQ_EXECUTOR_HEARTBEAT_SECONDS must be positive")
        if self.drain_seconds < 0 or self.kill_grace_seconds < 0:
            raise ValueError(
                "ZQ_EXECUTOR_DRAIN_SECONDS and ZQ_EXECUTOR_KILL_GRACE_SECONDS must not be negative"
            )
        if self.output_tail_bytes < 1:
            raise ValueError("ZQ_EXECUTOR_OUTPUT_TAIL_BYTES must be at least 1")
        if not self.work_dir.is_dir():
            raise ValueError(f"ZQ_EXECUTOR_WORKDIR {self.work_dir} is not a directory")


def _file_name(name: str) -> str:
    """`name` as one safe path component (a pod name already is one)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return safe or "executor"

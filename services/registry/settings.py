"""Registry settings, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.settings import data_dir, env_float, env_int, env_str


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    host: str
    port: int
    data_dir: Path
    database_url: str
    service_token: str
    default_timezone: str
    admin_username: str
    # Empty: generate one on first start and write it to <data_dir>/admin_password.txt.
    admin_password: str
    access_token_ttl: int
    refresh_token_ttl: int
    # Progress reaches watchers (and reads) at once from memory; the database gets at most one write
    # per run per interval (25 s: a 60-step, 60 s run costs 5 writes in all), the final state always.
    progress_flush_seconds: float
    lease_seconds: int
    log_level: str
    # Prometheus /metrics port; 0 = off.
    metrics_port: int
    # ZQ_CLUSTER_EVENTS: registry replicas on one PostgreSQL database share the scheduler feed,
    # watch streams, run leases and task-list cache drops through LISTEN/NOTIFY (cluster.py). On by
    # default on PostgreSQL; SQLite serves a single process, so it is off there and cannot be on.
    cluster_events: bool

    @property
    def jwt_key_path(self) -> Path:
        return self.data_dir / "jwt_signing_key.pem"

    @property
    def jwks_path(self) -> Path:
        return self.data_dir / "jwks.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RegistrySettings:
        env = os.environ if env is None else env
        directory = data_dir(env)
        database_url = env_str(env, "ZQ_DATABASE_URL", f"sqlite:///{directory / 'scheduler.db'}")
        sqlite = database_url.startswith("sqlite")
        cluster_events = env_bool(env, "ZQ_CLUSTER_EVENTS", not sqlite)
        if cluster_events and sqlite:
            raise ValueError(
                "ZQ_CLUSTER_EVENTS needs PostgreSQL (ZQ_DATABASE_URL); SQLite serves one registry"
            )
        service_token = env_str(env, "ZQ_SERVICE_TOKEN", "")
        if not service_token:
            raise ValueError("ZQ_SERVICE_TOKEN must be set (shared secret of the internal services)")
        return cls(
            host=env_str(env, "ZQ_BIND_HOST", "127.0.0.1"),
            port=env_int(env, "ZQ_REGISTRY_PORT", 50051),
            data_dir=directory,
            database_url=database_url,
            service_token=service_token,
            default_timezone=env_str(env, "ZQ_DEFAULT_TIMEZONE", "Asia/Shanghai"),
            admin_username=env_str(env, "ZQ_ADMIN_USERNAME", "admin"),
            admin_password=env_str(env, "ZQ_ADMIN_PASSWORD", ""),
            access_token_ttl=env_int(env, "ZQ_ACCESS_TOKEN_TTL", 3600),
            refresh_token_ttl=env_int(env, "ZQ_REFRESH_TOKEN_TTL", 7 * 24 * 3600),
            progress_flush_seconds=env_float(env, "ZQ_PROGRESS_FLUSH_SECONDS", 25.0),
            lease_seconds=env_int(env, "ZQ_LEASE_SECONDS", 15),
            log_level=env_str(env, "ZQ_LOG_LEVEL", "INFO"),
            metrics_port=env_int(env, "ZQ_METRICS_PORT", 0),
            cluster_events=cluster_events,
        )


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be on or off (1/0, true/false), got {raw!r}")

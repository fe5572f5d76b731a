"""Registry settings, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from services.common.settings import data_dir, env_bool, env_float, env_int, env_str


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
    # ZQ_MIGRATE_ON_START (default on: `make up`, tests): the registry brings the schema to head at
    # start. Off in Kubernetes, where `python -m services.registry.migrate` runs first as its own step
    # (an initContainer, with a database user allowed DDL) and the registry only checks the schema.
    migrate_on_start: bool = True
    # ZQ_ALERT_KEY: the Fernet key that encrypts alert channels' secrets ("" = such channels refused).
    alert_key: str = ""
    # ZQ_PUBLIC_URL: the admin page's address, for the link to a run in alert messages.
    public_url: str = "http://127.0.0.1:8080"
    # Failed alert deliveries are retried after 1, 2, 4 ... seconds, at most this long apart,
    # and given up after alert_max_attempts tries.
    alert_retry_max_seconds: float = 60.0
    alert_max_attempts: int = 20
    # ZQ_CALENDAR_WARN_DAYS: the calendar_data_ending alert event is raised this many days before
    # the data of a calendar that an enabled task uses runs out.
    calendar_warn_days: int = 30
    # Ended runs are purged after this many days (a task's retention_days overrides; 0 = forever),
    # by the leader's housekeeping: at most purge_batches batches of purge_batch runs per pass.
    retention_days: int = 30
    # ZQ_HOUSEKEEPING_SECONDS: the leader's housekeeping (alert deliveries, purge, sealing) runs this
    # often, on the registry that holds the leader's stream (live/leadership.py).
    housekeeping_seconds: float = 5.0
    purge_batch: int = 500
    purge_batches: int = 10
    # ZQ_REGISTRY_INTERNAL_PORT: a second listener, only for the services (service token only), so
    # public load cannot queue the scheduler's calls behind it (server.py). 0 = one port for all.
    internal_port: int = 0

    def lease(self, asked_seconds: float) -> timedelta:
        """A run's lease: what its claimer asked for, else ZQ_LEASE_SECONDS (0 asks for the default)."""
        return timedelta(seconds=asked_seconds or self.lease_seconds)

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
            migrate_on_start=env_bool(env, "ZQ_MIGRATE_ON_START", True),
            alert_key=env_str(env, "ZQ_ALERT_KEY", ""),
            public_url=env_str(env, "ZQ_PUBLIC_URL", "http://127.0.0.1:8080").rstrip("/"),
            alert_retry_max_seconds=env_float(env, "ZQ_ALERT_RETRY_MAX_SECONDS", 60.0),
            alert_max_attempts=env_int(env, "ZQ_ALERT_MAX_ATTEMPTS", 20),
            calendar_warn_days=env_int(env, "ZQ_CALENDAR_WARN_DAYS", 30),
            retention_days=env_int(env, "ZQ_RETENTION_DAYS", 30),
            housekeeping_seconds=env_float(env, "ZQ_HOUSEKEEPING_SECONDS", 5.0),
            purge_batch=env_int(env, "ZQ_PURGE_BATCH", 500),
            purge_batches=env_int(env, "ZQ_PURGE_BATCHES", 10),
            internal_port=env_int(env, "ZQ_REGISTRY_INTERNAL_PORT", 0),
        )

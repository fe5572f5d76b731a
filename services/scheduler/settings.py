"""Scheduler settings, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.common.settings import env_bool, env_float, env_int, env_list, env_str


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    host: str
    port: int
    # The registry's public port (ZQ_REGISTRY_ADDR); used when no internal port is given.
    registry_address: str
    executor_addresses: tuple[str, ...]
    service_token: str
    # A run with no event from its executor for this long is failed with "执行器失联".
    lost_executor_seconds: float
    # Runs missed while no scheduler was up are recorded one by one up to this many per task.
    max_missed_records: int
    # Leader election: a term lasts this long unless renewed; the registry holding the leader's
    # stream renews it every leader_renew_seconds (leader.py). A leader that crashes or stops is
    # replaced within about a second (its stream's end releases the term); the term is how long
    # a leader that hangs, or dies with its registry, keeps its standbys waiting. Running runs
    # are safe meanwhile: the registry reaps only runs silent under a leader it knows alive
    # (registry/runs/reaper.py). A 15 s term renewed every 5 s costs an idle stack about 1 ms/s
    # more.
    leader_ttl_seconds: int
    leader_renew_seconds: float
    log_level: str
    # Prometheus /metrics port; 0 = off.
    metrics_port: int
    # ZQ_REGISTRY_INTERNAL_ADDR: the registry's internal listener (services/registry/server.py), so
    # public load cannot delay leadership renewals and run recording; "" = the public address.
    registry_internal_address: str = ""
    # ZQ_SCHEDULER_REALTIME: the loop thread asks for the lowest real-time priority, so fires are
    # not late behind the executors and the database on a shared machine (common/thread_priority.py;
    # without the permission it logs why and runs as before). Off: it never asks.
    realtime: bool = True

    @property
    def registry_target(self) -> str:
        """Where the scheduler sends all its registry calls."""
        return self.registry_internal_address or self.registry_address

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SchedulerSettings:
        env = os.environ if env is None else env
        token = env_str(env, "ZQ_SERVICE_TOKEN", "")
        if not token:
            raise ValueError("ZQ_SERVICE_TOKEN must be set (shared secret of the internal services)")
        return cls(
            host=env_str(env, "ZQ_BIND_HOST", "127.0.0.1"),
            port=env_int(env, "ZQ_SCHEDULER_PORT", 50052),
            registry_address=env_str(env, "ZQ_REGISTRY_ADDR", "127.0.0.1:50051"),
            executor_addresses=env_list(env, "ZQ_EXECUTOR_ADDRS", "127.0.0.1:50061"),
            service_token=token,
            lost_executor_seconds=env_float(env, "ZQ_LOST_EXECUTOR_SECONDS", 15.0),
            max_missed_records=env_int(env, "ZQ_MAX_MISSED_RECORDS", 100),
            leader_ttl_seconds=env_int(env, "ZQ_LEADER_TTL_SECONDS", 30),
            leader_renew_seconds=env_float(env, "ZQ_LEADER_RENEW_SECONDS", 10.0),
            log_level=env_str(env, "ZQ_LOG_LEVEL", "INFO"),
            metrics_port=env_int(env, "ZQ_METRICS_PORT", 0),
            registry_internal_address=env_str(env, "ZQ_REGISTRY_INTERNAL_ADDR", ""),
            realtime=env_bool(env, "ZQ_SCHEDULER_REALTIME", True),
        )

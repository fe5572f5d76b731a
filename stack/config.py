"""What a stack is made of: one frozen :class:`StackConfig`, planned before anything starts.

The config names every process (a :class:`ServiceSpec`: name, kind, port, command line and its own
environment variables), the ports, the database, the shared service token and the restart policy.
Everything the launcher or a test wants to know about a stack without asking a process (addresses,
log paths, the environment a service starts with, metrics ports) is a pure function of it.

Replicas are named ``registry``, ``registry-1``, ... and ``scheduler``, ``scheduler-1``, ...;
executors ``executor-0``, ``executor-1``, .... All registries share the data directory and so the
JWT signing key (the first one creates it); scheduler i talks to registry i mod N; Envoy balances
over every registry. Tests build a config with :meth:`StackConfig.build`::

    StackConfig.build(tmp_path, free_ports=True, scheduler=False, executors=0)
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from stack.envoy import envoy_binary
from stack.ports import LOCALHOST, Ports
from stack.restart import RestartPolicy

ROOT = Path(__file__).resolve().parent.parent
GEN = ROOT / "gen"

Kind = Literal["grpc", "static", "envoy"]


def replica_name(base: str, index: int) -> str:
    """`registry`, `registry-1`, ...: the first replica keeps the plain name."""
    return base if index == 0 else f"{base}-{index}"


def _frozen(mapping: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class ServiceSpec:
    """One process of the stack: how to start it and where it listens."""

    name: str
    kind: Kind
    port: int
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=_frozen)

    @property
    def group(self) -> str:
        """`registry`, `scheduler`, `executor`, `static` or `envoy` (replicas share their group)."""
        return self.name.partition("-")[0]

    @property
    def metrics_port(self) -> int | None:
        port = self.env.get("ZQ_METRICS_PORT", "").strip()
        return int(port) if port.isdigit() and int(port) > 0 else None


@dataclass(frozen=True)
class StackConfig:
    """A whole stack, decided before anything starts. `restart` None: a dead process stays dead
    (tests that kill processes on purpose); else it is started again with that backoff."""

    data_dir: Path
    ports: Ports
    services: tuple[ServiceSpec, ...]
    database_url: str
    service_token: str
    extra_env: Mapping[str, str] = field(default_factory=_frozen)
    startup_timeout: float = 30.0
    stop_timeout: float = 5.0
    restart: RestartPolicy | None = None

    @classmethod
    def build(
        cls,
        data_dir: Path | str | None = None,
        *,
        free_ports: bool = False,
        registry: bool = True,
        scheduler: bool = True,
        registries: int = 1,
        schedulers: int = 1,
        executors: int = 1,
        static: bool = True,
        envoy: bool = True,
        metrics: bool = False,
        database_url: str | None = None,
        service_token: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        restart: RestartPolicy | None = None,
    ) -> StackConfig:
        """The convenient way in: enable flags select a subset (e.g. ``scheduler=False,
        executors=0, static=False`` for registry + Envoy); `registries` / `schedulers` ask for
        replicas (several registries need PostgreSQL); `metrics` gives every gRPC service its own
        ZQ_METRICS_PORT (registries always have one: Envoy's health checks ask its /ready). Unset
        values come from the environment (ZQ_DATA_DIR, ZQ_DATABASE_URL, ZQ_SERVICE_TOKEN,
        ZQ_*_PORT) or defaults; `free_ports` picks free loopback ports."""
        if executors < 0:
            raise ValueError("executors must be >= 0")
        if registries < 1 or schedulers < 1:
            raise ValueError("registries and schedulers must be >= 1 (disable with registry/scheduler=False)")
        registries = registries if registry else 0
        schedulers = schedulers if scheduler else 0
        # A registry always has one: Envoy checks its /ready there (gateway/render.py).
        metric_count = registries + schedulers + executors if metrics else registries
        pick = Ports.free if free_ports else Ports.fixed
        ports = pick(
            executors, registries=max(registries, 1), schedulers=max(schedulers, 1), metrics=metric_count
        )
        root = Path(
            data_dir if data_dir is not None else os.environ.get("ZQ_DATA_DIR", ROOT / "var")
        ).resolve()
        url = database_url or os.environ.get("ZQ_DATABASE_URL") or f"sqlite:///{root / 'scheduler.db'}"
        if registries > 1 and url.startswith("sqlite"):
            raise ValueError(
                "several registries need PostgreSQL (database_url / ZQ_DATABASE_URL); SQLite serves one"
            )
        services = plan_services(
            ports,
            registries=registries,
            schedulers=schedulers,
            executors=executors,
            static=static,
            envoy=envoy,
            envoy_config=root / "envoy.yaml",
        )
        return cls(
            data_dir=root,
            ports=ports,
            services=services,
            database_url=url,
            service_token=service_token or os.environ.get("ZQ_SERVICE_TOKEN") or secrets.token_urlsafe(32),
            extra_env=_frozen(extra_env),
            startup_timeout=startup_timeout,
            restart=restart,
        )

    # -- processes ---------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Enabled services, in start order."""
        return [s.name for s in self.services]

    def service(self, name: str) -> ServiceSpec:
        for spec in self.services:
            if spec.name == name:
                return spec
        raise KeyError(f"no service {name!r} in this stack (enabled: {', '.join(self.names)})")

    def group(self, group: str) -> list[str]:
        """The names of one group (`registry` → `registry`, `registry-1`, ...)."""
        return [s.name for s in self.services if s.group == group]

    @property
    def registry_names(self) -> list[str]:
        return self.group("registry")

    @property
    def scheduler_names(self) -> list[str]:
        return self.group("scheduler")

    @property
    def executor_names(self) -> list[str]:
        return self.group("executor")

    # -- addresses and files -----------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{LOCALHOST}:{self.ports.http}"

    @property
    def admin_url(self) -> str:
        """Envoy's admin interface."""
        return f"http://{LOCALHOST}:{self.ports.admin}"

    @property
    def envoy_stats_url(self) -> str:
        """Envoy's metrics for Prometheus (the envoy_stats listener)."""
        return f"http://{LOCALHOST}:{self.ports.envoy_stats}/stats/prometheus"

    @property
    def registry_addr(self) -> str:
        """The first registry (`registry`)."""
        return f"{LOCALHOST}:{self.ports.registry}"

    @property
    def scheduler_addr(self) -> str:
        """The first scheduler (`scheduler`)."""
        return f"{LOCALHOST}:{self.ports.scheduler}"

    def addr(self, name: str) -> str:
        """`127.0.0.1:<port>` of one service (its gRPC port; Envoy's HTTP port)."""
        return f"{LOCALHOST}:{self.service(name).port}"

    @property
    def registry_addrs(self) -> list[str]:
        """Every registry this stack starts (Envoy balances over them)."""
        return [self.addr(n) for n in self.registry_names] or [self.registry_addr]

    @property
    def registry_health_ports(self) -> list[int]:
        """The metrics port of each registry of registry_addrs, whose /ready Envoy checks; empty
        when the stack starts none (Envoy then asks the registry's gRPC health)."""
        ports = self.metrics_ports
        return [ports[name] for name in self.registry_names if name in ports]

    @property
    def executor_addrs(self) -> list[str]:
        return [self.addr(n) for n in self.executor_names]

    def registry_of(self, name: str) -> str:
        """The registry address a service talks to (schedulers are spread over the registries)."""
        return self.env_for(name).get("ZQ_REGISTRY_ADDR", self.registry_addr)

    @property
    def metrics_ports(self) -> dict[str, int]:
        """Prometheus port of each service that serves /metrics (with `metrics=True`; a registry
        always, for its /ready)."""
        return {s.name: port for s in self.services if (port := s.metrics_port) is not None}

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{self.service(name).name}.log"

    @property
    def jwks_path(self) -> Path:
        """Written by the first registry; Envoy reads it once, at start."""
        return self.data_dir / "jwks.json"

    @property
    def envoy_config_path(self) -> Path:
        return self.data_dir / "envoy.yaml"

    # -- environment -------------------------------------------------------------------------------

    def env_for(self, name: str) -> dict[str, str]:
        """The full environment `name` is (or would be) started with: ours, the service's own
        variables, then `extra_env` on top."""
        return {**os.environ, **self.common_env(), **self.service(name).env, **self.extra_env}

    def common_env(self) -> dict[str, str]:
        """What every process of the stack is told: paths, database, token, addresses."""
        pythonpath = [str(ROOT), str(GEN)]
        if os.environ.get("PYTHONPATH"):
            pythonpath.append(os.environ["PYTHONPATH"])
        no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1,localhost"]))
        return {
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
            "ZQ_DATA_DIR": str(self.data_dir),
            "ZQ_DATABASE_URL": self.database_url,
            "ZQ_SERVICE_TOKEN": self.service_token,
            "ZQ_REGISTRY_PORT": str(self.ports.registry),
            "ZQ_REGISTRY_ADDR": self.registry_addr,
            "ZQ_REGISTRY_ADDRS": ",".join(self.registry_addrs),
            "ZQ_SCHEDULER_PORT": str(self.ports.scheduler),
            "ZQ_SCHEDULER_ADDR": self.scheduler_addr,
            "ZQ_EXECUTOR_ADDRS": ",".join(self.executor_addrs),
            "ZQ_HTTP_PORT": str(self.ports.http),
            "ZQ_ENVOY_ADMIN_PORT": str(self.ports.admin),
            "ZQ_ENVOY_STATS_PORT": str(self.ports.envoy_stats),
            "ZQ_STATIC_PORT": str(self.ports.static),
            "ZQ_ALERT_KEY": self.alert_key(),
            "ZQ_PUBLIC_URL": f"http://127.0.0.1:{self.ports.http}",
        }

    def alert_key(self) -> str:
        """ZQ_ALERT_KEY when given, else the stack's own, made once in <data_dir>/alert.key (0600):
        the key that encrypts alert channels' secrets must outlive restarts."""
        given = self.setting("ZQ_ALERT_KEY")
        if given:
            return given
        path = self.data_dir / "alert.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="ascii") as key_file:
                key_file.write(base64.urlsafe_b64encode(os.urandom(32)).decode())
        return path.read_text(encoding="ascii").strip()

    def setting(self, name: str) -> str:
        """A variable as the services see it: `extra_env` first, then the launcher's environment."""
        return (self.extra_env.get(name) or os.environ.get(name, "")).strip()

    @property
    def admin_username(self) -> str:
        return self.setting("ZQ_ADMIN_USERNAME") or "admin"

    @property
    def admin_password(self) -> str | None:
        """ZQ_ADMIN_PASSWORD when given, else the one the registry generated on its first start."""
        given = self.setting("ZQ_ADMIN_PASSWORD")
        if given:
            return given
        try:
            return (self.data_dir / "admin_password.txt").read_text(encoding="utf-8").strip() or None
        except OSError:
            return None


def plan_services(
    ports: Ports,
    *,
    registries: int,
    schedulers: int,
    executors: int,
    static: bool,
    envoy: bool,
    envoy_config: Path,
) -> tuple[ServiceSpec, ...]:
    """Every process in start order: registries, executors, schedulers, static server, Envoy.

    With metrics ports, the gRPC services take them in that order.
    """
    python = (sys.executable, "-m")
    registry_ports = ports.registries[:registries]
    grpc: list[tuple[str, int, tuple[str, ...], dict[str, str]]] = []
    internal_ports = ports.registry_internals[:registries]
    for i, port in enumerate(registry_ports):
        env = {"ZQ_REGISTRY_PORT": str(port)}
        if i < len(internal_ports):  # the schedulers' own listener
            env["ZQ_REGISTRY_INTERNAL_PORT"] = str(internal_ports[i])
        grpc.append((replica_name("registry", i), port, (*python, "services.registry"), env))
    for i in range(executors):
        port = ports.executors[i]
        env = {"ZQ_EXECUTOR_PORT": str(port), "ZQ_EXECUTOR_NAME": f"executor-{i}"}
        grpc.append((f"executor-{i}", port, (*python, "services.executor"), env))
    for i, port in enumerate(ports.schedulers[:schedulers]):
        env = {"ZQ_SCHEDULER_PORT": str(port)}
        if registry_ports:  # spread the schedulers over the registries
            mine = i % len(registry_ports)
            env["ZQ_REGISTRY_ADDR"] = f"{LOCALHOST}:{registry_ports[mine]}"
            if mine < len(internal_ports):
                env["ZQ_REGISTRY_INTERNAL_ADDR"] = f"{LOCALHOST}:{internal_ports[mine]}"
        grpc.append((replica_name("scheduler", i), port, (*python, "services.scheduler"), env))
    for (_, _, _, env), metrics_port in zip(grpc, ports.metrics, strict=False):
        env["ZQ_METRICS_PORT"] = str(metrics_port)
    specs = [ServiceSpec(name, "grpc", port, argv, _frozen(env)) for name, port, argv, env in grpc]
    if static:
        specs.append(ServiceSpec("static", "static", ports.static, (*python, "gateway.static_server")))
    if envoy:
        specs.append(ServiceSpec("envoy", "envoy", ports.http, envoy_argv(envoy_config)))
    return tuple(specs)


def envoy_argv(config_path: Path) -> tuple[str, ...]:
    return (
        envoy_binary(),
        "-c", str(config_path),
        "--disable-hot-restart",  # no shared-memory / domain-socket clash with other Envoys
        "--concurrency", "2",
        "--log-level", "warn",
        "--file-flush-interval-msec", "1000",
    )  # fmt: skip

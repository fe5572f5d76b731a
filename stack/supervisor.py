"""The running stack: start in dependency order, wait until ready, restart the dead, stop in order.

:class:`Stack` turns a :class:`~stack.config.StackConfig` into processes. `start` brings them up in
dependency order and waits until each is ready; `stop` takes them down front door first. With a
restart policy in the config, a watchdog thread notices a process that died (crash, OOM, `kill -9`)
and starts it again after the policy's backoff, logging both on the ``stack`` logger and in the
process's own log file; the stack as a whole stops only when asked to (`stop`, Ctrl-C, SIGTERM in
the command line). Without a policy a dead process stays dead, which is what tests that kill a
process to watch a failover want.

Tests use it directly::

    with Stack(StackConfig.build(tmp_path, free_ports=True, scheduler=False, executors=0)) as stack:
        httpx.get(stack.http_url + "/healthz")
        stack.kill("registry")           # SIGKILL one process
        stack.start_service("registry")  # ... and bring it back (waits until ready)

`stop_service` holds a process down on purpose (the watchdog leaves it alone until
`start_service`); `kill` is a crash (the watchdog, if any, restarts it); `start_service` on a
process the watchdog already brought back just waits until it is ready.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from stack.config import StackConfig
from stack.envoy import EnvoyConfigError, write_config
from stack.ports import Ports, port_in_use
from stack.processes import Child, Spawner, terminate
from stack.readiness import (
    envoy_live,
    grpc_health,
    health_checks_in_flight,
    http_ok,
    registries_answer_through_gateway,
    registries_routed,
)
from stack.restart import Backoff

log = logging.getLogger("stack")

#: Stop order, first to last: the front door first, the database owner last.
STOP_PHASES: tuple[tuple[str, ...], ...] = (("envoy", "static"), ("scheduler",), ("executor",), ("registry",))

#: How often the watchdog looks for dead processes.
WATCH_INTERVAL_SECONDS = 0.2


class StackError(RuntimeError):
    """A process of the stack failed to start, or died while starting."""


@dataclass
class _Supervised:
    """What the watchdog knows of one process besides the process itself."""

    child: Child
    held: bool = False  # stopped on purpose: not restarted until start_service
    restart_at: float | None = None  # time.monotonic() of a pending restart
    backoff: Backoff = field(default_factory=Backoff)
    restarts: int = 0


class Stack:
    """Starts, watches and stops the processes of one config. Use as a context manager."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self._units = {
            spec.name: _Supervised(Child(spec, config.log_path(spec.name))) for spec in config.services
        }
        self._spawner = Spawner()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._atexit_registered = False

    # -- what tests ask most (the rest is on `config`) ---------------------------------------------

    @property
    def http_url(self) -> str:
        return self.config.http_url

    @property
    def registry_addr(self) -> str:
        return self.config.registry_addr

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    @property
    def database_url(self) -> str:
        return self.config.database_url

    @property
    def service_token(self) -> str:
        return self.config.service_token

    @property
    def ports(self) -> Ports:
        return self.config.ports

    def env_for(self, name: str) -> dict[str, str]:
        return self.config.env_for(name)

    # -- process state -----------------------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        return self._unit(name).child.pid

    def is_running(self, name: str) -> bool:
        return self.pid(name) is not None

    def restarts(self, name: str) -> int:
        """How often the watchdog has brought `name` back (0 without a restart policy)."""
        return self._unit(name).restarts

    def _unit(self, name: str) -> _Supervised:
        try:
            return self._units[name]
        except KeyError:
            raise KeyError(f"no service {name!r} in this stack (enabled: {', '.join(self._units)})") from None

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Starts every service in dependency order and waits until all are ready; then, with a
        restart policy, starts the watchdog.

        Order: the first registry (it migrates the database and writes the signing key and
        jwks.json) → the other registries (they read that key) → executors, schedulers and static
        server together → Envoy. On any failure everything started so far is stopped and StackError
        is raised.
        """
        with self._lock:
            running = [n for n in self._units if self.is_running(n)]
            if running:
                raise StackError(f"already running: {', '.join(running)}")
            self._stopping.clear()
            for unit in self._units.values():  # a stop held every process down
                unit.held, unit.restart_at, unit.backoff = False, None, Backoff()
            deadline = time.monotonic() + self.config.startup_timeout
            try:
                self._prepare_dirs()
                self._refuse_busy_ports()
                if not self._atexit_registered:
                    atexit.register(self.stop)
                    self._atexit_registered = True
                for phase in self._start_phases():
                    for unit in phase:
                        self._spawn(unit.child, deadline)
                    for unit in phase:
                        self._wait_ready(unit.child, deadline)
            except BaseException:
                self.stop()
                raise
            if self.config.restart is not None:
                self._watchdog = threading.Thread(target=self._watch, name="stack-watchdog", daemon=True)
                self._watchdog.start()

    def stop(self) -> None:
        """Stops the watchdog, then every process: SIGTERM, SIGKILL after `stop_timeout`, front
        door first."""
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join()
            self._watchdog = None
        with self._lock:
            for phase in STOP_PHASES:
                self._terminate([u for u in self._units.values() if u.child.spec.group in phase])
            self._spawner.shutdown()
            if self._atexit_registered:
                atexit.unregister(self.stop)
                self._atexit_registered = False

    def kill(self, name: str) -> None:
        """SIGKILLs one service (its whole process group) and reaps it, like a crash: with a restart
        policy the watchdog starts it again after its backoff. No-op if it is not running."""
        with self._lock:
            self._unit(name).child.kill()

    def stop_service(self, name: str) -> None:
        """Stops one service gracefully and keeps it down until `start_service`."""
        with self._lock:
            self._terminate([self._unit(name)])

    def start_service(self, name: str, timeout: float | None = None) -> None:
        """Starts one stopped or killed service again and waits until it is ready (a registry: also
        until Envoy routes to it). One the watchdog has already started again: waits until ready."""
        with self._lock:
            unit = self._unit(name)
            if unit.child.running and self.config.restart is None:
                raise StackError(f"{name} is already running (pid {unit.child.pid})")
            deadline = time.monotonic() + (self.config.startup_timeout if timeout is None else timeout)
            if not unit.child.running:
                self._spawn(unit.child, deadline)
            unit.held, unit.restart_at = False, None
            self._wait_ready(unit.child, deadline)
            self._wait_routed(unit.child, deadline)

    def restart(self, name: str, timeout: float | None = None) -> None:
        """stop_service(name), then start_service(name)."""
        with self._lock:
            self.stop_service(name)
            self.start_service(name, timeout)

    # -- starting ----------------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.config.logs_dir.mkdir(parents=True, exist_ok=True)

    def _refuse_busy_ports(self) -> None:
        busy = [f"{name}:{port}" for name, port in self._listening_ports() if port_in_use(port)]
        if busy:
            raise StackError(
                f"ports already in use ({', '.join(busy)}): is another stack running? "
                "Stop it, or pick other ports (ZQ_*_PORT, or free_ports=True)."
            )

    def _listening_ports(self) -> Iterator[tuple[str, int]]:
        for spec in self.config.services:
            if spec.kind == "envoy":
                yield from ((spec.name, p) for p in (self.config.ports.http, self.config.ports.admin))
            else:
                yield spec.name, spec.port
            internal = spec.env.get("ZQ_REGISTRY_INTERNAL_PORT")
            if internal:
                yield f"{spec.name} internal", int(internal)
        for name, port in self.config.metrics_ports.items():
            yield f"{name} metrics", port

    def _start_phases(self) -> list[list[_Supervised]]:
        registries = self.config.registry_names
        phases = [
            registries[:1],
            registries[1:],
            [n for n in self._units if n not in registries and n != "envoy"],
            [n for n in self._units if n == "envoy"],
        ]
        return [[self._units[n] for n in phase] for phase in phases if phase]

    def _spawn(self, child: Child, deadline: float) -> None:
        if child.spec.kind == "envoy":
            self._write_envoy_config(deadline)
        try:
            child.start(self._spawner, self.config.env_for(child.name))
        except OSError as exc:
            raise StackError(f"{child.name}: cannot start {child.spec.argv[0]!r}: {exc}") from exc

    def _write_envoy_config(self, deadline: float) -> None:
        # The registry writes the JWKS before it reports SERVING; allow for a registry whose health
        # said SERVING a moment early (grpc's HealthServicer does so by default for service "").
        while (
            not self.config.jwks_path.is_file() and self._registries_running() and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        try:
            write_config(self.config)
        except EnvoyConfigError as exc:
            raise StackError(str(exc)) from exc

    def _registries_running(self) -> list[str]:
        return [self.config.addr(n) for n in self.config.registry_names if self.is_running(n)]

    # -- readiness ---------------------------------------------------------------------------------

    def _wait_ready(self, child: Child, deadline: float) -> None:
        spec, token = child.spec, self.config.service_token
        if spec.kind == "grpc":
            self._poll(child, lambda: grpc_health(spec.port, token), deadline)
        elif spec.kind == "static":
            self._poll(child, lambda: http_ok(f"http://127.0.0.1:{spec.port}/admin/scheduler/"), deadline)
        else:
            self._poll(child, lambda: envoy_live(self.config.admin_url), deadline)
            self._poll(
                child, lambda: registries_routed(self.config.admin_url, self._registries_running()), deadline
            )

    def _wait_routed(self, child: Child, deadline: float) -> None:
        """After a registry comes back (SERVING): until Envoy routes to it again, judged once no health
        check Envoy began before that moment is still in flight (stack/readiness.py says why)."""
        envoy = self._units.get("envoy")
        if child.spec.group != "registry" or envoy is None or not envoy.child.running:
            return
        admin_url, required = self.config.admin_url, self._registries_running()

        def routed() -> str | None:
            if health_checks_in_flight(admin_url):  # None (unknown) does not hold the start up
                return "waiting for Envoy's health check in flight to end"
            return registries_routed(admin_url, required) or registries_answer_through_gateway(
                self.config.ports.http
            )

        self._poll(envoy.child, routed, deadline)

    def _poll(self, child: Child, check: Callable[[], str | None], deadline: float) -> None:
        """Calls `check` (None = ready, else why not) until it passes; raises on exit, deadline or
        stop."""
        delay = 0.02
        while True:
            if not child.running:
                raise StackError(self._failure(child, f"exited with code {child.exit_code} while starting"))
            reason = check()
            if reason is None:
                return
            if time.monotonic() >= deadline:
                raise StackError(self._failure(child, f"not ready in time: {reason}"))
            if self._stopping.wait(delay):
                raise StackError(f"{child.name}: the stack is stopping")
            delay = min(delay * 1.5, 0.25)

    @staticmethod
    def _failure(child: Child, what: str) -> str:
        return f"{child.name} {what}\n--- last lines of {child.log_path} ---\n{child.tail()}"

    # -- stopping ----------------------------------------------------------------------------------

    def _terminate(self, units: list[_Supervised]) -> None:
        for unit in units:
            unit.held, unit.restart_at = True, None
        terminate([u.child for u in units], self.config.stop_timeout)

    # -- the watchdog ------------------------------------------------------------------------------

    def _watch(self) -> None:
        """Until the stack stops: notice dead processes, start them again when their time comes."""
        while not self._stopping.wait(WATCH_INTERVAL_SECONDS):
            with self._lock:
                for unit in self._units.values():
                    if self._stopping.is_set():
                        return
                    if not unit.held and unit.restart_at is None and unit.child.exit_code is not None:
                        self._schedule_restart(unit, f"exited with code {unit.child.exit_code}")
                    elif unit.restart_at is not None and time.monotonic() >= unit.restart_at:
                        self._revive(unit)

    def _schedule_restart(self, unit: _Supervised, why: str) -> None:
        policy = self.config.restart
        assert policy is not None
        child = unit.child
        delay, unit.backoff = unit.backoff.after_death(policy, child.uptime)
        unit.restart_at = time.monotonic() + delay
        child.kill()  # takes down what the dead process left in its group (an executor's jobs)
        child.note(f"{child.name} {why}; starting it again in {delay:g} s")
        log.warning("%s %s; starting it again in %g s (log: %s)", child.name, why, delay, child.log_path)

    def _revive(self, unit: _Supervised) -> None:
        child = unit.child
        deadline = time.monotonic() + self.config.startup_timeout
        try:
            self._spawn(child, deadline)
            self._wait_ready(child, deadline)
            self._wait_routed(child, deadline)
        except StackError as exc:
            if self._stopping.is_set():
                return
            first_line = str(exc).splitlines()[0]
            self._schedule_restart(unit, f"did not come back ({first_line})")
            return
        unit.restart_at = None
        unit.restarts += 1
        child.note(f"{child.name} is back (pid {child.pid})")
        log.info("%s is back (pid %s)", child.name, child.pid)

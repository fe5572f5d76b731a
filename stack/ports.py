"""Loopback ports of one stack: the well-known ones of `make up`, or free ones for tests.

A :class:`Ports` value names every port a stack listens on. `Ports.fixed` reads the ZQ_*_PORT
variables (replica i > 0 of the registry or the scheduler listens on its base port + 100 * i);
`Ports.free` picks ports nobody holds right now, below the kernel's ephemeral range.
"""

from __future__ import annotations

import errno
import os
import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOCALHOST = "127.0.0.1"

#: Replica i > 0 of the registry / the scheduler on the fixed ports: base port + REPLICA_PORT_STEP * i.
REPLICA_PORT_STEP = 100
DEFAULT_METRICS_PORT = 9100


@dataclass(frozen=True)
class Ports:
    """Loopback ports of one stack."""

    http: int = 8000
    admin: int = 9901
    # Envoy's /stats/prometheus (gateway/render.py: the envoy_stats listener).
    envoy_stats: int = 9902
    static: int = 8001
    registry: int = 50051
    scheduler: int = 50052
    executors: tuple[int, ...] = (50061,)
    # Replicas after the first (registry-1, ... / scheduler-1, ...).
    extra_registries: tuple[int, ...] = ()
    extra_schedulers: tuple[int, ...] = ()
    # Prometheus ports, handed to the gRPC services in start order (empty: metrics off).
    metrics: tuple[int, ...] = ()
    # Each registry's internal listener, for its schedulers (services/registry/server.py); one per
    # registry in `registries` order. Empty: the registries serve everything on one port.
    registry_internals: tuple[int, ...] = ()

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
        internal = port("ZQ_REGISTRY_INTERNAL_PORT", 50053)
        return cls(
            http=port("ZQ_HTTP_PORT", 8000),
            admin=port("ZQ_ENVOY_ADMIN_PORT", 9901),
            envoy_stats=port("ZQ_ENVOY_STATS_PORT", 9902),
            static=port("ZQ_STATIC_PORT", 8001),
            registry=registry,
            scheduler=scheduler,
            executors=tuple(first_executor + i for i in range(executors)),
            extra_registries=tuple(registry + REPLICA_PORT_STEP * i for i in range(1, registries)),
            extra_schedulers=tuple(scheduler + REPLICA_PORT_STEP * i for i in range(1, schedulers)),
            metrics=tuple(first_metrics + i for i in range(metrics)),
            registry_internals=tuple(internal + REPLICA_PORT_STEP * i for i in range(registries)),
        )

    @classmethod
    def free(cls, executors: int, *, registries: int = 1, schedulers: int = 1, metrics: int = 0) -> Ports:
        """Ports the kernel reports free on 127.0.0.1 right now (tests; racy only against others)."""
        extra_registries, extra_schedulers = max(registries - 1, 0), max(schedulers - 1, 0)
        internals = max(registries, 1)
        picked = iter(free_ports(6 + executors + extra_registries + extra_schedulers + metrics + internals))

        def take(count: int) -> tuple[int, ...]:
            return tuple(next(picked) for _ in range(count))

        return cls(
            http=next(picked),
            admin=next(picked),
            envoy_stats=next(picked),
            static=next(picked),
            registry=next(picked),
            scheduler=next(picked),
            executors=take(executors),
            extra_registries=take(extra_registries),
            extra_schedulers=take(extra_schedulers),
            metrics=take(metrics),
            registry_internals=take(internals),
        )


# Free ports are picked below the kernel's ephemeral range: a port the kernel hands out for a bind
# to port 0 comes from that range, and any outgoing connection on the machine may take it as its
# source port between the pick and the service's own bind (CI once lost a test module to that:
# Envoy's stats port was taken while the registry started).
FREE_PORT_FLOOR = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_next_free: int | None = None


def _free_range() -> range:
    """Where free ports are picked: below the ephemeral range, and for a pytest-xdist worker its
    own slice of that (parallel stacks never pick the same port)."""
    try:
        ceiling = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ceiling = 32768  # Linux's default start of the ephemeral range
    ceiling = max(ceiling, FREE_PORT_FLOOR + 1000)
    worker, workers = (
        os.environ.get("PYTEST_XDIST_WORKER", ""),
        os.environ.get("PYTEST_XDIST_WORKER_COUNT", ""),
    )
    if not (worker.startswith("gw") and worker[2:].isdigit() and workers.isdigit() and int(workers) > 0):
        return range(FREE_PORT_FLOOR, ceiling)
    size = (ceiling - FREE_PORT_FLOOR) // int(workers)
    start = FREE_PORT_FLOOR + size * (int(worker[2:]) % int(workers))
    return range(start, start + size)


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that are free on 127.0.0.1 at this moment, outside the ephemeral range
    (see FREE_PORT_FLOOR). Taken in turn from a random place, so this process does not hand out a
    port again soon, and a child process (a stack a test starts) picks elsewhere in the same range."""
    global _next_free
    candidates = _free_range()
    if _next_free is None or _next_free not in candidates:
        _next_free = random.choice(candidates)
    picked: list[int] = []
    for _ in range(len(candidates)):
        port, _next_free = (
            _next_free,
            candidates.start + (_next_free + 1 - candidates.start) % len(candidates),
        )
        if not port_in_use(port):
            picked.append(port)
            if len(picked) == count:
                return picked
    raise OSError(errno.EADDRINUSE, f"fewer than {count} free ports in {candidates}")


def port_in_use(port: int) -> bool:
    # No SO_REUSEPORT here: this bind fails even when the holder set it (gRPC servers do, and would
    # otherwise silently share the port with a stale process).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOCALHOST, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False

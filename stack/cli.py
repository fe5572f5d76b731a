"""`python -m stack up` and `python -m stack up-cluster`: run the stack in the foreground.

``up`` starts one registry, the executors (ZQ_EXECUTORS, 2), one scheduler, the static UI server and
Envoy on SQLite (or ZQ_DATABASE_URL); ``up-cluster`` runs replicas on PostgreSQL: 2 registries,
2 schedulers (one leads, one stands by) and 3 executors. Both print the URL, the admin login, every
process with its pid, address, metrics URL and log file, and a ready-made Prometheus scrape config.

In both modes a process that dies is started again with backoff (1 s, doubling up to 30 s while it
keeps dying, back to 1 s after a minute up), and each death and restart is printed; the stack stops
only on Ctrl-C or SIGTERM.

Environment (all optional): ZQ_DATA_DIR (./var; var/cluster for up-cluster), ZQ_HTTP_PORT (8000),
ZQ_ENVOY_ADMIN_PORT (9901), ZQ_STATIC_PORT (8001), ZQ_REGISTRY_PORT (50051), ZQ_SCHEDULER_PORT
(50052), ZQ_EXECUTOR_PORT (50061: first executor, the others follow), ZQ_METRICS_PORT (9100: first
process, the others follow), ZQ_EXECUTORS (2), ZQ_DATABASE_URL, ZQ_SERVICE_TOKEN,
ZQ_ADMIN_USERNAME, ZQ_ADMIN_PASSWORD, ZQ_WEB_DIST, ZQ_ENVOY_BIN. Replica i > 0 of the registry or
the scheduler listens on its base port + 100 * i (50151, 50152, ...).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from stack.config import StackConfig
from stack.leader import LeaderWatch
from stack.ports import LOCALHOST
from stack.restart import RestartPolicy
from stack.supervisor import Stack, StackError

DEFAULT_CLUSTER_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
RESTART_POLICY = RestartPolicy(first_delay=1.0, max_delay=30.0, reset_after=60.0)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _log_to(sys.stdout)
    if args.command == "up-cluster":
        if not is_postgres(args.database_url):
            sys.stderr.write(
                f"up-cluster needs PostgreSQL: replicas share the database and its LISTEN/NOTIFY; "
                f"ZQ_DATABASE_URL / --database-url is {args.database_url!r}.\n"
                f"Use e.g. {DEFAULT_CLUSTER_DATABASE_URL} (or `make up` for one of each on SQLite).\n"
            )
            return 2
        return serve(cluster_config(args), cluster=True, out=sys.stdout)
    return serve(single_config(args), cluster=False, out=sys.stdout)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stack", description="Run the ZQuant Scheduler stack.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything and stay in the foreground until Ctrl-C")
    up.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ZQ_DATA_DIR", "var")))
    up.add_argument("--executors", type=int, default=int(os.environ.get("ZQ_EXECUTORS", "2")))
    cluster = sub.add_parser(
        "up-cluster",
        help="replicas on PostgreSQL: 2 registries, 2 schedulers, 3 executors, Envoy",
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
    return parser


def single_config(args: argparse.Namespace) -> StackConfig:
    return StackConfig.build(
        args.data_dir,
        free_ports=args.free_ports,
        executors=args.executors,
        metrics=True,
        startup_timeout=args.timeout,
        restart=RESTART_POLICY,
    )


def cluster_config(args: argparse.Namespace) -> StackConfig:
    return StackConfig.build(
        args.data_dir,
        free_ports=args.free_ports,
        registries=args.registries,
        schedulers=args.schedulers,
        executors=args.executors,
        metrics=True,
        database_url=args.database_url,
        startup_timeout=args.timeout,
        restart=RESTART_POLICY,
    )


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://", "postgresql+"))


def _log_to(out: TextIO) -> None:
    """The supervisor's deaths and restarts, one stamped line each."""
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("stack")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


# -- the foreground loop ---------------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(config: StackConfig, *, cluster: bool, out: TextIO) -> int:
    """Starts the stack and stays in the foreground until Ctrl-C or SIGTERM; the supervisor
    restarts what dies meanwhile. In cluster mode, announces each new scheduler leader."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    stack = Stack(config)
    leader: LeaderWatch | None = None
    try:
        out.write(f"starting {', '.join(config.names)} (data: {config.data_dir}) ...\n")
        out.flush()
        stack.start()
        out.write(banner(stack, cluster=cluster))
        out.flush()
        if cluster:
            leader = LeaderWatch(config.database_url)
        while True:
            if leader is not None:
                _announce_leader(stack, leader, out)
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


def _announce_leader(stack: Stack, leader: LeaderWatch, out: TextIO) -> None:
    pid = leader.changed()
    if pid is not None:
        names = [n for n in stack.config.scheduler_names if stack.pid(n) == pid]
        out.write(f"leader: {names[0] if names else 'scheduler'} (pid {pid})\n")
        out.flush()


# -- what the user is told -------------------------------------------------------------------------


def banner(stack: Stack, *, cluster: bool) -> str:
    """URL and login, a REST example, every process, metrics, logs, and how to stop."""
    config = stack.config
    lines = [*_login_lines(config), "", *process_lines(stack), "", *_metrics_lines(config)]
    if cluster:
        lines += [
            "",
            "failover: `kill -9 <pid>` the leader scheduler (announced below) or an executor; a standby",
            "takes over within ~4 s, lost runs fail and are retried.",
        ]
    lines += [
        "",
        f"A process that dies is started again after {RESTART_POLICY.first_delay:g} s (doubling up to "
        f"{RESTART_POLICY.max_delay:g} s while it keeps dying).",
        f"logs: {config.logs_dir}/    stop: Ctrl-C",
        "",
    ]
    return "\n".join(["", *lines])


def _login_lines(config: StackConfig) -> list[str]:
    port = config.ports.http
    password = config.admin_password
    shown = password if password else f"(see {config.data_dir / 'admin_password.txt'})"
    login = json.dumps(
        {"username": config.admin_username, "password": password or "<password>"}, separators=(",", ":")
    )
    extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    return [
        f"ZQuant Scheduler is up: http://localhost:{port}/admin/scheduler",
        f"login: {config.admin_username} / {shown}",
        "",
        "REST API, e.g.:",
        f"  TOKEN=$(curl -s -X POST http://localhost:{port}/api/v1/auth/login \\",
        f"          -H 'Content-Type: application/json' -d {shlex.quote(login)} | {extract})",
        f'  curl -s http://localhost:{port}/api/v1/scheduler/tasks -H "Authorization: Bearer $TOKEN"',
    ]


def process_lines(stack: Stack) -> list[str]:
    """One line per process: name, pid, address (a scheduler: also its registry), metrics, log."""
    config = stack.config
    metrics = config.metrics_ports
    width = max(len(n) for n in config.names)
    lines = [f"processes (database {redacted(config.database_url)}):"]
    for name in config.names:
        where = config.addr(name)
        if name in config.scheduler_names:
            where += f" -> registry {config.registry_of(name)}"
            internal = config.env_for(name).get("ZQ_REGISTRY_INTERNAL_ADDR")
            if internal:
                where += f" (internal listener {internal})"
        if name in metrics:
            where += f"   metrics http://{LOCALHOST}:{metrics[name]}/metrics"
        lines.append(f"  {name:<{width}}  pid {stack.pid(name) or '-':<7}  {where}")
        lines.append(f"  {'':<{width}}  log {config.log_path(name)}")
    return lines


def _metrics_lines(config: StackConfig) -> list[str]:
    metrics = config.metrics_ports
    if not metrics:
        return []
    targets = ", ".join(f"'{LOCALHOST}:{port}'" for port in metrics.values())
    envoy = f"'{LOCALHOST}:{config.ports.envoy_stats}'"
    return [
        f"Prometheus: scrape_configs: [{{job_name: zquant, static_configs: [{{targets: [{targets}]}}]}}, "
        f"{{job_name: envoy, metrics_path: /stats/prometheus, static_configs: [{{targets: [{envoy}]}}]}}]"
    ]


def redacted(url: str) -> str:
    """The database URL without a password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"

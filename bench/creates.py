"""Single task creates from 8 clients (issue 16), through Envoy, on SQLite and on PostgreSQL.

Goal: >= 1,000 creates/s on SQLite and >= 600/s on PostgreSQL, every answer a 201/200, every
task stored once. The stack is the whole one a user runs (registry, scheduler, two executors,
Envoy): the scheduler follows every new task on its feed while the creates go on.

Each client is a keep-alive connection POSTing `/api/v1/scheduler/tasks` with a name of its own
(an hourly interval task, the admin's token). wrk drives the 8 connections when installed (`make
bench` installs it), else 8 Python threads (slower: the client then shares the 2 cores with the
stack, so the rate printed is a floor). Printed per backend: creates/s, latency p50/p99, non-2xx
answers, the tasks stored (as the API counts them) against the answers, and the registry's CPU per
create.

    python -m bench.creates [--seconds 10] [--tasks 0] [--backend postgresql|sqlite|both]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.common import admin_client, percentile, process_cpu_seconds, stack_on
from bench.seed import seed, seed_tasks
from services.registry.settings import RegistrySettings
from stack import Stack

ADMIN_PASSWORD = "bench-creates-admin-pw"
CLIENTS = 8
GOALS = {"sqlite": 1000, "postgresql": 600}
PATH = "/api/v1/scheduler/tasks"

# Each wrk thread numbers its own names; `prefix` keeps two runs (and the warm-up) apart.
WRK_SCRIPT = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  n = 0
end
function request()
  n = n + 1
  local body = string.format(
    '{"name":"%s-%d-%d","task_type":"example_task","interval_seconds":3600,"config":{"duration_seconds":0}}',
    "PREFIX", tid, n)
  return wrk.format("POST", "PATH", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer TOKEN"}, body)
end
"""


@dataclass(frozen=True, slots=True)
class Measured:
    answered: int
    non_2xx: int
    p50_ms: float
    p99_ms: float
    seconds: float


def body(name: str) -> str:
    return json.dumps(
        {
            "name": name,
            "task_type": "example_task",
            "interval_seconds": 3600,
            "config": {"duration_seconds": 0},
        }
    )


def with_wrk(port: int, token: str, prefix: str, seconds: float) -> Measured:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.replace("PREFIX", prefix).replace("PATH", PATH).replace("TOKEN", token))
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{CLIENTS}",
            f"-d{seconds:.0f}s",
            "--latency",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(script.name).unlink()
    answered = int(out.split(" requests in ")[0].split()[-1])
    non_2xx = int(out.split("Non-2xx or 3xx responses:")[1].split()[0]) if "Non-2xx" in out else 0
    latency = {
        line.split()[0]: line.split()[1]
        for line in out.splitlines()
        if line.strip().endswith("s") and "%" in line
    }
    return Measured(
        answered, non_2xx, _ms(latency.get("50%", "0ms")), _ms(latency.get("99%", "0ms")), seconds
    )


def _ms(text: str) -> float:
    """wrk's 1.23ms / 456.78us / 1.02s as milliseconds."""
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


def with_threads(port: int, token: str, prefix: str, seconds: float) -> Measured:
    latencies: list[float] = []
    failures = [0]
    stop = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        n = 0
        while time.monotonic() < stop:
            n += 1
            started = time.perf_counter()
            conn.request("POST", PATH, body(f"{prefix}-{index}-{n}"), headers)
            response = conn.getresponse()
            response.read()
            latencies.append(time.perf_counter() - started)
            if response.status >= 300:
                failures[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Measured(
        len(latencies),
        failures[0],
        percentile(latencies, 0.5) * 1000,
        percentile(latencies, 0.99) * 1000,
        seconds,
    )


def run(backend: str, seconds: float, held: int) -> None:
    print(
        f"-- {backend}: single creates through Envoy, {CLIENTS} clients, {seconds:.0f} s, {held:,} tasks held --"
    )
    with stack_on(backend, executors=2, admin_password=ADMIN_PASSWORD, indent="  ") as stack:
        if held:  # through the init path, as a team's tasks would be there already
            asyncio.run(seed(RegistrySettings.from_env(stack.env_for("registry")), seed_tasks(held, "held")))
            settle(stack)
        client = admin_client(stack, ADMIN_PASSWORD)
        token = client.headers["Authorization"].removeprefix("Bearer ")
        port = int(stack.http_url.rsplit(":", 1)[1])
        drive = with_wrk if shutil.which("wrk") else with_threads
        if drive is with_threads:
            print("  (wrk not installed: 8 Python threads drive the creates, sharing the cores)")
        drive(port, token, f"warm-{uuid.uuid4().hex[:6]}", 2)
        prefix = f"create-{uuid.uuid4().hex[:6]}"
        registry = stack.pid("registry")
        assert registry is not None
        cpu_before = process_cpu_seconds(registry)
        measured = drive(port, token, prefix, seconds)
        registry_cpu = process_cpu_seconds(registry) - cpu_before
        # The tasks stored, as the API counts them (a name search for this run's prefix).
        listed = client.get(PATH, params={"name": prefix, "limit": 1})
        listed.raise_for_status()
        stored = int(listed.json()["total"])
    rate = measured.answered / measured.seconds
    goal = GOALS[backend]
    print(
        f"  {rate:,.0f} creates/s (goal >= {goal:,}): {measured.answered:,} answered, "
        f"{measured.non_2xx} non-2xx, {stored:,} stored; latency p50 {measured.p50_ms:.1f} ms, "
        f"p99 {measured.p99_ms:.1f} ms; registry CPU {registry_cpu / max(1, measured.answered) * 1e6:.0f} µs per create"
    )


def settle(stack: Stack, timeout: float = 120) -> None:
    """Waits until registry and scheduler are done with the seeding (the feed's events): each under
    5 % of a core over a second."""
    pids = [pid for name in ("registry", "scheduler") if (pid := stack.pid(name)) is not None]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = [process_cpu_seconds(pid) for pid in pids]
        time.sleep(1)
        if all(process_cpu_seconds(pid) - cpu < 0.05 for pid, cpu in zip(pids, before, strict=True)):
            return
    print(f"  (the stack was still busy {timeout:.0f} s after the seeding)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="how long the clients create (default 10)"
    )
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument(
        "--tasks", type=int, default=0, help="tasks already held before the creates (default 0)"
    )
    args = parser.parse_args(argv)
    print("== single creates ==")
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        run(backend, args.seconds, args.tasks)


if __name__ == "__main__":
    main()

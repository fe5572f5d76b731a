"""Live log lag: how long after a command prints a line does a reader of the log stream get it?

The stack runs (registry, a scheduler, one executor, Envoy). A command task prints lines that carry
the time they were printed (`time.time()`, the same clock as the reader's: everything is on this
machine); the reader follows `GET /api/v1/scheduler/executions/{id}/log/stream` (SSE through
Envoy, as the admin page's log viewer does) and takes, for every line, the time it arrived minus
the time it was printed. Two loads:
- a trickle: one line every 50 ms, the lag of a quiet run;
- a flood: 50,000 lines over 10 s (issue 12's "done when"), the lag while the executor batches
  and the registry stores and fans out 5,000 lines a second.

The floor, measured first in the same run: the same printer read straight from its pipe by this
process (no executor, registry or gateway). Reported: lines received of lines printed, lag p50 /
p99 / max, the CPU the executor and the registry spent during the run (in all and per 1,000 lines:
the trickle's is mostly the run's fixed cost), and the machine's load average. ~40 s.
Goal: every line arrives, lag p99 < 1 s. `make bench` runs it on SQLite (~40 s);
`python -m bench.log_lag --backend postgresql|both` on PostgreSQL too (a throwaway schema).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from bench.common import admin_client, percentile, process_cpu_seconds, stack_on
from stack import Stack

ADMIN_PASSWORD = "bench-admin-password"
# Prints `lag <seq> <unix time>` lines, evenly spread: argv = count, seconds.
PRINTER = """
import sys, time
count, seconds = int(sys.argv[1]), float(sys.argv[2])
start = time.time()
for seq in range(count):
    delay = start + seq * seconds / count - time.time()
    if delay > 0:
        time.sleep(delay)
    print(f"lag {seq} {time.time():.6f}", flush=True)
"""
MARKER = " stdout lag "
LOADS = (("trickle, 20 lines/s for 10 s", 200, 10.0), ("flood, 50,000 lines over 10 s", 50_000, 10.0))


@dataclass
class Lags:
    printed: int
    lags_ms: list[float]

    def line(self) -> str:
        lags = self.lags_ms
        if not lags:
            return f"0 of {self.printed:,} lines arrived"
        return (
            f"{len(lags):,} of {self.printed:,} lines; lag p50 {percentile(lags, 0.5):.1f} ms, "
            f"p99 {percentile(lags, 0.99):.1f} ms, max {max(lags):.1f} ms"
        )


def pipe_floor(count: int, seconds: float) -> Lags:
    """The same printer read from its own pipe: what a line costs without the product."""
    with subprocess.Popen(
        [sys.executable, "-c", PRINTER, str(count), str(seconds)], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        lags = [(time.time() - float(line.split()[2])) * 1000 for line in process.stdout]
    return Lags(count, lags)


def follow(client: httpx.Client, execution_id: int) -> list[float]:
    """Follows the run's log stream until it ends; the lag of every printed line."""
    lags: list[float] = []
    partial = ""
    path = f"/api/v1/scheduler/executions/{execution_id}/log/stream"
    with client.stream("GET", path, timeout=120) as response:
        response.raise_for_status()
        for raw in response.iter_lines():
            if not raw.startswith("data: "):
                continue
            event = json.loads(raw[len("data: ") :])
            if event["event_type"] == "end":
                break
            if event["event_type"] != "log":
                continue
            arrived = time.time()
            lines = (partial + event["text"]).split("\n")
            partial = lines.pop()
            for line in lines:
                at = line.find(MARKER)
                if at >= 0:
                    printed = float(line[at + len(MARKER) :].split()[1])
                    lags.append((arrived - printed) * 1000)
    return lags


def through_the_stack(stack: Stack, client: httpx.Client, count: int, seconds: float) -> tuple[Lags, float]:
    """One run of the printer as a command task; its lags and the CPU seconds the executor and the
    registry spent meanwhile."""
    created = client.post(
        "/api/v1/scheduler/tasks",
        json={
            "name": f"log_lag_{count}_{time.monotonic_ns()}",
            "task_type": "manual_task",
            "config": {"command": [sys.executable, "-c", PRINTER, str(count), str(seconds)]},
            "max_retries": 0,
        },
    )
    assert created.is_success, created.text
    names = stack.config.registry_names + stack.config.group("executor")
    pids = [pid for pid in (stack.pid(name) for name in names) if pid]
    cpu_before = sum(process_cpu_seconds(pid) for pid in pids)
    triggered = client.post(f"/api/v1/scheduler/tasks/{created.json()['id']}/trigger", json={})
    assert triggered.is_success, triggered.text
    lags = follow(client, int(triggered.json()["execution_id"]))
    cpu = sum(process_cpu_seconds(pid) for pid in pids) - cpu_before
    return Lags(count, lags), cpu


def run(stack: Stack) -> None:
    client = admin_client(stack, ADMIN_PASSWORD)
    floor = pipe_floor(*LOADS[1][1:])
    print(f"  floor, the flood read from its pipe: {floor.line()}")
    for name, count, seconds in LOADS:
        lags, cpu = through_the_stack(stack, client, count, seconds)
        verdict = (
            "met"
            if len(lags.lags_ms) == count and percentile(lags.lags_ms or [1e9], 0.99) < 1000
            else "MISSED"
        )
        print(f"  {name}: {lags.line()} ({verdict})")
        print(f"    executor + registry CPU {cpu:.2f} s, {cpu / count * 1e6:.1f} ms per 1,000 lines")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    args = parser.parse_args(argv)
    for backend in ("sqlite", "postgresql"):
        if args.backend not in (backend, "both"):
            continue
        print(
            f"== live log lag: a command's line -> an SSE reader through Envoy, {backend} (goal p99 < 1 s) =="
        )
        with stack_on(backend, executors=1, admin_password=ADMIN_PASSWORD, indent="  ") as stack:
            run(stack)


if __name__ == "__main__":
    main()

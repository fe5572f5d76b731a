"""The scheduler's loop thread asks for real-time priority; what it starts does not inherit it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from services.common.thread_priority import (
    NOT_PERMITTED,
    REALTIME_PRIORITY,
    make_loop_thread_realtime,
    refusal_reason,
)

T = TypeVar("T")

LINUX = os.uname().sysname == "Linux"
pytestmark = pytest.mark.skipif(not LINUX, reason="thread priorities are per thread on Linux only")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="real-time priority needs root (CAP_SYS_NICE)")
needs_two_cpus = pytest.mark.skipif(not LINUX or len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")


def in_own_thread(work: Callable[[], T]) -> T:
    """Runs `work` on a thread of its own, so the test runner's thread keeps its priority."""
    results: list[T] = []
    thread = threading.Thread(target=lambda: results.append(work()))
    thread.start()
    thread.join()
    return results[0]


def policy() -> int:
    """The calling thread's scheduling policy, without the reset-on-fork flag."""
    return os.sched_getscheduler(threading.get_native_id()) & ~os.SCHED_RESET_ON_FORK


async def realtime() -> str:
    return make_loop_thread_realtime()  # needs the running loop: it sets the loop's worker threads


@needs_root
@needs_two_cpus
def test_the_loop_thread_runs_real_time_and_its_worker_threads_and_children_do_not() -> None:
    child = [sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"]

    async def on_the_loop() -> tuple[str, int]:
        return await realtime(), await asyncio.to_thread(policy)

    def loop_then_child() -> tuple[str, int, int, int, int]:
        refused, worker = asyncio.run(on_the_loop())
        started = subprocess.run(child, capture_output=True, text=True, check=True).stdout
        return refused, policy(), os.sched_getparam(0).sched_priority, worker, int(started)

    refused, loop_policy, priority, worker_policy, child_policy = in_own_thread(loop_then_child)
    assert refused == ""
    assert (loop_policy, priority) == (os.SCHED_FIFO, REALTIME_PRIORITY)
    assert worker_policy == os.SCHED_OTHER
    assert child_policy == os.SCHED_OTHER


def test_with_one_cpu_the_loop_thread_stays_as_it_was() -> None:
    def on_one_cpu() -> tuple[str, int]:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # this thread only
        return asyncio.run(realtime()), policy()

    refused, after = in_own_thread(on_one_cpu)
    assert refused == "one CPU: a real-time thread could hold it"
    assert after == os.SCHED_OTHER


@needs_root
@needs_two_cpus
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_without_the_permission_the_thread_stays_as_it_was_and_the_reason_says_how_to_grant_it() -> None:
    script = (
        "import asyncio, os\n"
        "from services.common.thread_priority import make_loop_thread_realtime\n"
        "async def main():\n"
        "    return make_loop_thread_realtime()\n"
        "print(asyncio.run(main()))\n"
        "print(os.sched_getscheduler(0))\n"
    )
    # Root without CAP_SYS_NICE (and RLIMIT_RTPRIO 0): what an unprivileged service user has.
    command = ["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice", sys.executable, "-c", script]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    lines = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout.splitlines()
    assert lines[0].startswith("not permitted: grant CAP_SYS_NICE or RLIMIT_RTPRIO >= 1")
    assert int(lines[1]) == os.SCHED_OTHER


def process_files(
    tmp: Path, cap_sys_nice: bool, rtprio: str, cgroups: str, rt_runtime: dict[str, str]
) -> tuple[Path, Path]:
    """A process's /proc directory (its capabilities, limits and cgroups) and a cgroup v1 mount
    with each group's `cpu.rt_runtime_us`, as `refusal_reason` reads them."""
    proc = tmp / "proc"
    proc.mkdir()
    effective = 1 << 23 if cap_sys_nice else 0
    (proc / "status").write_text(f"Name:\tpython\nCapEff:\t{effective:016x}\n")
    (proc / "limits").write_text(
        "Limit                     Soft Limit           Hard Limit           Units\n"
        f"Max realtime priority     {rtprio:<20} {rtprio:<20}\n"
    )
    (proc / "cgroup").write_text(cgroups)
    root = tmp / "cgroup"
    for group, runtime in rt_runtime.items():
        (root / group).mkdir(parents=True)
        (root / group / "cpu.rt_runtime_us").write_text(f"{runtime}\n")
    return proc, root


def test_a_refusal_without_the_permission_says_how_to_grant_it(tmp_path: Path) -> None:
    proc, root = process_files(tmp_path, False, "0", "0::/system.slice/zq.service\n", {})
    assert refusal_reason(proc, root) == NOT_PERMITTED


def test_a_refusal_by_a_cgroup_with_no_real_time_time_names_the_group(tmp_path: Path) -> None:
    cgroups = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n"
    for cap_sys_nice, rtprio in ((True, "0"), (False, "1"), (False, "unlimited")):
        case = tmp_path / f"{cap_sys_nice}-{rtprio}"
        case.mkdir()
        proc, root = process_files(case, cap_sys_nice, rtprio, cgroups, {"cpu,cpuacct/docker/abc": "0"})
        reason = refusal_reason(proc, root)
        assert reason.startswith("the cgroup /docker/abc gives real-time threads no time"), reason


def test_a_permitted_process_whose_group_has_real_time_time_gets_the_general_reason(tmp_path: Path) -> None:
    cgroups = "4:cpu,cpuacct:/docker/abc\n"
    proc, root = process_files(tmp_path, True, "0", cgroups, {"cpu,cpuacct/docker/abc": "950000"})
    assert refusal_reason(proc, root) == NOT_PERMITTED

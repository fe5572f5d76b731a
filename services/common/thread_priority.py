"""CPU priorities of single threads (Linux sets them per thread): the one whose timing is the
product, and the ones that must only use what is left.

**The scheduler's loop thread runs real-time when it may.** A fire is late by however long the
loop thread waits for a CPU once its timer is due. On a machine it shares with its executors, its
registry and the database, that wait is most of the lateness: on a 2-CPU machine running the whole
stack at 250 runs/s, the loop thread spent 1.1-1.3 s of every 12 s waiting on the run queue (its
`schedstat`), fire lateness p99 was 4-6 ms against bare APScheduler's 1.1 ms, and `nice -15`
did not change it. Under the lowest real-time priority (SCHED_FIFO 1) the thread runs as soon as
it wakes: the wait fell to 30 ms per 12 s and the p99 to 1.1 ms, bare APScheduler's own
(`bench/scheduling.py`, docs/scaling.md).

- It needs CAP_SYS_NICE or RLIMIT_RTPRIO >= 1 (root on a development machine, or a systemd
  unit's `LimitRTPRIO=1`). Without it the thread keeps its priority and the reason says how to grant
  it; nothing else changes. Where cgroup v1's real-time group scheduling gives the process's group
  no real-time time (`cpu.rt_runtime_us` 0, as Docker's default on such hosts), the kernel refuses
  even root: the reason then names that group instead (`refusal_reason`). Kubernetes pods run
  without capabilities: there the scheduler's own pod and CPU request keep the executors' work off
  its CPU time instead.
- Never with one CPU: a busy real-time thread would hold the only CPU (the kernel's real-time
  throttling leaves the rest 5 %). With two or more it can take at most one: the loop is one thread.
- Threads inherit the policy of the thread that starts them: the loop's worker threads
  (`asyncio.to_thread`) are started at normal priority instead, and child processes never inherit it
  (SCHED_RESET_ON_FORK).

**Helper threads that must not compete run niced** (`lower_this_thread`): the registry's password
hashing, so a login flood only uses CPU that the loop, the scheduler and the executors leave idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# The lowest real-time priority: above every normal thread, below anything the system runs real-time.
REALTIME_PRIORITY = 1
CAP_SYS_NICE = 23  # its bit in /proc/self/status's CapEff
NOT_PERMITTED = "not permitted: grant CAP_SYS_NICE or RLIMIT_RTPRIO >= 1 (e.g. systemd LimitRTPRIO=1)"


def _linux() -> bool:
    return os.uname().sysname == "Linux"


def lower_this_thread(niceness: int) -> None:
    """Lowers the calling thread's CPU priority by `niceness` (a nice increment, capped at 19).
    Elsewhere than Linux nice applies to the whole process: then nothing is done."""
    if _linux():
        thread = threading.get_native_id()
        with contextlib.suppress(OSError):
            os.setpriority(
                os.PRIO_PROCESS, thread, min(os.getpriority(os.PRIO_PROCESS, thread) + niceness, 19)
            )


def _normal_priority() -> None:
    """A thread started by a real-time one goes back to the normal policy (threads inherit it)."""
    with contextlib.suppress(OSError):
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_OTHER, os.sched_param(0))


def make_loop_thread_realtime() -> str:
    """Puts the calling thread, the one running the event loop, under the lowest real-time priority,
    and the loop's worker threads under the normal one. Returns "" when done, else why not (the
    thread is then left as it was). Call it on the loop thread, once the service is up."""
    if not _linux():
        return "real-time threads are Linux only"
    if len(os.sched_getaffinity(0)) < 2:
        return "one CPU: a real-time thread could hold it"
    try:
        os.sched_setscheduler(
            threading.get_native_id(),
            os.SCHED_FIFO | os.SCHED_RESET_ON_FORK,
            os.sched_param(REALTIME_PRIORITY),
        )
    except PermissionError:
        return refusal_reason(Path("/proc/self"), Path("/sys/fs/cgroup"))
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(thread_name_prefix="loop-worker", initializer=_normal_priority)
    )
    return ""


def refusal_reason(proc_self: Path, cgroup_root: Path) -> str:
    """Why the kernel refused real-time priority: the permission missing, or, when the process has
    it, a cgroup v1 group with no real-time time (read from `proc_self`, the process's /proc
    directory, and `cgroup_root`, where cgroup v1 hierarchies are mounted)."""
    if not _permitted(proc_self):
        return NOT_PERMITTED
    for line in _read(proc_self / "cgroup").splitlines():
        _, controllers, group = line.split(":", 2)
        if "cpu" not in controllers.split(","):
            continue  # cgroup v2 ("0::/..."), which has no real-time group time
        runtime = _read(cgroup_root / controllers / group.lstrip("/") / "cpu.rt_runtime_us").strip()
        if runtime == "0":
            return (
                f"the cgroup {group} gives real-time threads no time (cpu.rt_runtime_us = 0): "
                "give it some (e.g. docker run --cpu-rt-runtime=950000) or run without real-time"
            )
    return NOT_PERMITTED


def _permitted(proc_self: Path) -> bool:
    """CAP_SYS_NICE in the effective set, or a real-time priority limit (soft) of at least 1."""
    for line in _read(proc_self / "status").splitlines():
        if line.startswith("CapEff:") and int(line.split()[1], 16) >> CAP_SYS_NICE & 1:
            return True
    for line in _read(proc_self / "limits").splitlines():
        if line.startswith("Max realtime priority"):
            soft = line.split()[3]
            return soft == "unlimited" or int(soft) >= REALTIME_PRIORITY
    return False


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""

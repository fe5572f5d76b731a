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
  it; nothing else changes. Kubernetes pods run without capabilities: there the scheduler's own pod
  and CPU request keep the executors' work off its CPU time instead.
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

# The lowest real-time priority: above every normal thread, below anything the system runs real-time.
REALTIME_PRIORITY = 1


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
        return "not permitted: grant CAP_SYS_NICE or RLIMIT_RTPRIO >= 1 (e.g. systemd LimitRTPRIO=1)"
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(thread_name_prefix="loop-worker", initializer=_normal_priority)
    )
    return ""

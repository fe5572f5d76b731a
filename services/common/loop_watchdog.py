"""The loop watchdog (`ZQ_SLOW_CALLBACK_MS`, unset = off): times every callback the event loop runs
(one step of a coroutine between two awaits, or a plain callback); one that spends more CPU time on
the loop's thread than the threshold is logged as one JSON line with `"event": "slow_callback"`,
naming the task and coroutine (and where it was suspended next) or the callback, its wall time and
its CPU time. Wall time alone would also count a busy machine (measured: a health check "held" the
loop 100 ms at load 6 on 2 cores), so a callback that was only late is logged as `late_callback`.
It does what asyncio's debug mode does for slow callbacks without that mode's other costs (a stack
captured for every callback, coroutine origin tracking), which tripled the CPU of a gRPC call
(measured: 3.2 ms instead of 1.06 ms per call, client and server in one process); the timing alone
costs no measurable CPU. The integration tier turns it on at 100 ms for every service and fails on
any such line: blocking work that grows with the data belongs in a worker thread.
Every service's server turns it on as it starts (server.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from services.common.settings import default_environ, env_float

log = logging.getLogger(__name__)

SLOW_CALLBACK_ENV = "ZQ_SLOW_CALLBACK_MS"
SLOW_CALLBACK_EVENT = "slow_callback"


def _callback_name(handle: asyncio.Handle) -> str:
    """The task and coroutine a callback advanced (where it waits now, if it still runs), or the
    callback itself."""
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    if not isinstance(owner, asyncio.Task):
        return repr(handle)
    coro: Any = owner.get_coro()
    while getattr(coro, "cr_await", None) is not None and getattr(coro.cr_await, "cr_frame", None):
        coro = coro.cr_await
    frame = getattr(coro, "cr_frame", None)
    where = f" suspended at {frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else ""
    return f"{owner!r}{where}"


_run_handle = asyncio.Handle._run
_slow_callback_seconds = 0.0


def _timed_run(handle: asyncio.Handle) -> None:
    started, started_cpu = time.perf_counter(), time.thread_time()
    _run_handle(handle)
    held = time.perf_counter() - started
    if held < _slow_callback_seconds:
        return
    # Wall time also counts what the machine did meanwhile (other processes, a worker thread holding
    # the GIL); the loop thread's own CPU time does not, so only that is judged: the same code is
    # flagged on a quiet laptop and on a loaded CI machine.
    worked = time.thread_time() - started_cpu
    extra = {
        "callback": _callback_name(handle),
        "duration_ms": round(held * 1000, 1),
        "cpu_ms": round(worked * 1000, 1),
    }
    if worked >= _slow_callback_seconds:
        log.warning("a callback held the event loop", extra={"event": SLOW_CALLBACK_EVENT, **extra})
    else:
        log.info("a callback ran late (the machine was busy)", extra={"event": "late_callback", **extra})


def watch_slow_callbacks(threshold_ms: float | None = None) -> bool:
    """Turns the loop watchdog on (for every event loop of the process) when `threshold_ms`
    (default: the environment's ZQ_SLOW_CALLBACK_MS) is set; returns whether it is on."""
    global _slow_callback_seconds
    if threshold_ms is None:
        threshold_ms = env_float(default_environ(), SLOW_CALLBACK_ENV, 0.0)
    if threshold_ms <= 0:
        return False
    _slow_callback_seconds = threshold_ms / 1000
    asyncio.Handle._run = _timed_run  # type: ignore[method-assign, assignment]  # TimerHandle too
    log.info("loop watchdog on", extra={"slow_callback_ms": threshold_ms})
    return True


def stop_watching_slow_callbacks() -> None:
    asyncio.Handle._run = _run_handle  # type: ignore[method-assign]

"""Waiting in tests for something that happens in the background: the helpers every test uses.

A test polls a probe until its value is truthy (and gets that value back), and fails with what it
waited for and the probe's last value once the time is up: `eventually` in async tests (`between`
runs after each miss, for a test that drives the background work itself: a reaper's pass, say),
`wait_for` in plain ones (a process, a REST API).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


async def eventually(
    probe: Callable[[], _T],
    what: str,
    within: float = 5.0,
    between: Callable[[], Awaitable[object]] | None = None,
    every: float = 0.01,
) -> _T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = probe()
        if value:
            return value
        if loop.time() > deadline:
            raise _timed_out(within, what, value)
        if between is not None:
            await between()
        await asyncio.sleep(every)


def wait_for(probe: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, value)
        time.sleep(interval)


def _timed_out(seconds: float, what: str, value: object) -> AssertionError:
    return AssertionError(f"timed out after {seconds}s waiting for {what}; last value: {value!r}")

"""Waiting in async tests for something that happens in the background: one helper for every test.

A test polls a probe until it holds (or its value is truthy, which is returned) and fails with what
it waited for and the probe's last value once `within` seconds passed. `between` runs after each
miss, for a test that drives the background work itself (a reaper's pass, say).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

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
            raise AssertionError(f"timed out after {within}s waiting for {what}; last value: {value!r}")
        if between is not None:
            await between()
        await asyncio.sleep(every)

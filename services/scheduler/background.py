"""The scheduler's background tasks (fires, catch-ups, runs, cancels), held in one place.

asyncio keeps only weak references to tasks, so each is held here until it ends; the engine's stop
cancels them all at once. After that, new work is dropped rather than started: APScheduler may
still hand over a fire it had queued before its shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        """The task doing `work`; None once stopping (the work is dropped)."""
        if self._stopping:
            work.close()
            return None
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

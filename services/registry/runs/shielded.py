"""Work that must run to its end once begun, even when its caller goes away.

A commit already under way in a worker thread cannot be stopped, so what follows it (publishing,
tracking, answering the scheduler) must not be stopped either: a run stored `running` but never
tracked would escape the lease reaper, and a manual run created running would wait for a dispatch
that never comes. The work runs as a task of its own that the caller only awaits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Work whose caller went away, kept referenced until it ends.
_under_way: set[asyncio.Future[Any]] = set()


async def to_the_end(work: Coroutine[Any, Any, T]) -> T:
    """Runs `work` to its end even when the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(work)
    _under_way.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)


def _finished(task: asyncio.Future[Any]) -> None:
    _under_way.discard(task)
    if not task.cancelled():
        task.exception()  # taken: a caller that went away has nobody to tell

"""Relaying a run's progress from its executor's stream to the registry.

An executor streams progress snapshots and heartbeats faster than the registry may answer them, and
the stream must not wait for the registry (a held-up stream looks like a silent executor). So one
report is under way at a time and only the newest event waits behind it: a progress event is a
whole snapshot, so a newer one makes an older one useless; a heartbeat only renews the lease, which
a snapshot does as well, so it never replaces a waiting snapshot. A refused report (the registry no
longer gives the run to this attempt) ends the relaying: `gone` tells the stream to stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from zquant.scheduler.v1 import executor_service_pb2


class ProgressRelay:
    """Relays one attempt's progress: one report under way at a time, the newest event waiting."""

    def __init__(self, report: Callable[[executor_service_pb2.RunResponse], Awaitable[bool]]) -> None:
        self._report = report
        self._waiting: executor_service_pb2.RunResponse | None = None
        self._sending: asyncio.Task[None] | None = None
        # Set when the registry refused a report: the attempt is over.
        self.gone = False

    def send(self, event: executor_service_pb2.RunResponse) -> None:
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(self._send_from(event))
        elif self._waiting is None or event.type == executor_service_pb2.RunResponse.EVENT_TYPE_PROGRESS:
            self._waiting = event

    async def _send_from(self, event: executor_service_pb2.RunResponse | None) -> None:
        while event is not None and not self.gone:
            self.gone = not await self._report(event)
            event, self._waiting = self._waiting, None

    async def settle(self) -> None:
        """Waits until what was sent has reached the registry."""
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)

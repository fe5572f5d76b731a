"""LogRelay: a run's log, from the executor's stream (and the scheduler's own lines) to the registry.

The executor sends its log in chunks on the `Run` stream; the relay appends them to the registry in
order, one call at a time, and what arrives meanwhile waits and goes with the next call (at most
`MAX_APPEND_BYTES` per call). The stream is never held up: reading it goes on while an append is under
way. A failed append costs its lines (the log is best effort; the run's outcome never depends on
it); a run the registry no longer has stops the relay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from services.common.log_lines import LogStream, log_lines

log = logging.getLogger(__name__)

MAX_APPEND_BYTES = 1024 * 1024
SETTLE_SECONDS = 10.0


class LogRelay:
    def __init__(
        self,
        append: Callable[[bytes], Awaitable[bool]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # `append` stores one piece; False when the run is gone (nothing more is sent).
        self._append = append
        self._clock = clock
        self._waiting: list[bytes] = []
        self._sending: asyncio.Task[None] | None = None
        self._gone = False

    def send(self, data: bytes) -> None:
        if self._gone or not data:
            return
        self._waiting.append(data)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(self._send_waiting())

    def system(self, text: str) -> None:
        """One of the scheduler's own lines (claimed, lost executor), stamped now."""
        self.send(log_lines(LogStream.SYSTEM, text, self._clock()))

    async def settle(self) -> None:
        """Waits until everything sent so far reached the registry (or was given up), for at most
        SETTLE_SECONDS: a registry in trouble must not hold up recording the run's end (the
        appends go on meanwhile)."""
        if self._sending is not None and not self._sending.done():
            await asyncio.wait({self._sending}, timeout=SETTLE_SECONDS)

    async def _send_waiting(self) -> None:
        while self._waiting and not self._gone:
            piece = _take(self._waiting, MAX_APPEND_BYTES)
            try:
                self._gone = not await self._append(piece)
            except Exception as exc:  # a registry hiccup: these lines are lost, later ones go on
                log.warning("appending to a run's log failed", extra={"reason": str(exc)})


def _take(waiting: list[bytes], limit: int) -> bytes:
    """Waiting chunks joined, up to `limit` bytes (at least one chunk, whatever its size)."""
    taken, size = 0, 0
    while taken < len(waiting) and (taken == 0 or size + len(waiting[taken]) <= limit):
        size += len(waiting[taken])
        taken += 1
    piece = b"".join(waiting[:taken])
    del waiting[:taken]
    return piece

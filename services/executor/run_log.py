"""A run's log in the executor: stamped lines in, capped chunks out on the run's stream.

`LogCap` (pure) decides what is kept. A run's log may hold `max_bytes` (default 10 MiB, the task
config's `log_max_bytes`). The first half (the head) is sent as it comes. Past the head, lines are
held back: if the run ends with the whole log within `max_bytes`, the held lines follow the head and
nothing is lost; if it grows beyond, the oldest held lines are dropped so that only the last half
(the tail) stays, and when the run ends a `system` line says how many bytes were dropped, followed
by the tail. The registry's log is append-only, so the part between head and tail is never sent
(a live viewer sees the head, then the rest at the end). Memory per run stays within `max_bytes`.

`RunLog` is the run's writer: command output (`feed`, split into lines per stream), whole messages
(`write`), thread-safe (a sync plugin logs from its worker thread). It hands chunks to `emit` on the
event loop, batched: when 64 KiB wait, else 200 ms after the first waiting line, and at `finish`.
Nothing here waits for a reader: a slow scheduler only makes the stream's queue longer (bounded by
the cap), never the job slower.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from services.common.log_lines import (
    MAX_LINE_BYTES,
    LogStream,
    log_line,
    log_lines,
    split_at_lines,
    split_long,
    stamp,
)

DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
FLUSH_BYTES = 64 * 1024
FLUSH_SECONDS = 0.2
# The largest chunk on the stream.
CHUNK_MAX_BYTES = 256 * 1024


class LogCap:
    """What of a log is kept: the head as it comes, the tail at the end, the count of the rest."""

    def __init__(self, max_bytes: int) -> None:
        self.head_limit = max_bytes // 2
        self.tail_limit = max_bytes - self.head_limit
        self._head_used = 0
        self._ready = bytearray()
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self.dropped_bytes = 0

    @property
    def ready_bytes(self) -> int:
        return len(self._ready)

    def add(self, line: bytes) -> None:
        """One whole line (or several: they are kept or dropped together)."""
        if not self._held and self._head_used + len(line) <= self.head_limit:
            self._ready += line
            self._head_used += len(line)
            return
        self._held.append(line)
        self._held_bytes += len(line)
        # The newest line always stays, even when it alone is over the tail's size.
        while self._held_bytes > self.tail_limit and len(self._held) > 1:
            oldest = self._held.popleft()
            self._held_bytes -= len(oldest)
            self.dropped_bytes += len(oldest)

    def take(self) -> bytes:
        """What may be sent now (head lines); empty when nothing is ready."""
        ready, self._ready = bytes(self._ready), bytearray()
        return ready

    def finish(self, dropped_notice: Callable[[int], bytes]) -> bytes:
        """Everything still to send when the run ends: ready head lines, then, if anything was
        dropped, `dropped_notice(bytes dropped)`, then the held lines."""
        rest = bytes(self._ready)
        if self.dropped_bytes:
            rest += dropped_notice(self.dropped_bytes)
        rest += b"".join(self._held)
        self._ready, self._held, self._held_bytes = bytearray(), deque(), 0
        return rest


def dropped_notice_text(dropped: int, max_bytes: int) -> str:
    return (
        f"日志超过上限 {max_bytes} 字节：中间 {dropped} 字节已丢弃，保留开头和结尾 "
        f"(log cap of {max_bytes} bytes reached: {dropped} bytes dropped, head and tail kept)"
    )


class RunLog:
    def __init__(
        self,
        max_bytes: int,
        emit: Callable[[bytes], None],
        loop: asyncio.AbstractEventLoop | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.max_bytes = max_bytes
        self._cap = LogCap(max_bytes)
        self._emit = emit
        # The loop chunks are emitted on (default: the running one at the first write).
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._clock = clock
        self._lock = threading.Lock()
        # Partial last lines of fed streams.
        self._partial: dict[LogStream, bytes] = {}
        self._flush_timer = False
        self._flush_now = False
        self._finished = False

    def write(self, stream: LogStream, text: str | bytes) -> None:
        """A whole message (several lines, e.g. a traceback): each line stamped."""
        with self._lock:
            if self._finished:
                return
            self._cap.add(log_lines(stream, text, self._clock()))
            self._written()

    def feed(self, stream: LogStream, data: bytes) -> None:
        """A piece of a stream's output: its complete lines are logged, the rest waits."""
        with self._lock:
            if self._finished:
                return
            *lines, rest = (self._partial.get(stream, b"") + data).split(b"\n")
            while len(rest) > MAX_LINE_BYTES:  # a line without end is logged in pieces
                lines.append(rest[:MAX_LINE_BYTES])
                rest = rest[MAX_LINE_BYTES:]
            self._partial[stream] = rest
            if not lines:
                return
            # One stamp and one block for the piece's lines: cheap enough for hundreds of MiB of
            # output (the cap keeps or drops the block's lines together).
            prefix = b"%s %s " % (stamp(self._clock()), stream.encode())
            self._cap.add(prefix + (b"\n" + prefix).join(split_long(lines)) + b"\n")
            self._written()

    def end_stream(self, stream: LogStream) -> None:
        """The stream ended: its last line without a newline is logged."""
        with self._lock:
            rest = self._partial.pop(stream, b"")
            if rest and not self._finished:
                self._cap.add(log_line(stream, rest, self._clock()))
                self._written()

    def finish(self) -> None:
        """The run ended: everything still kept is emitted (on the loop); later writes are ignored."""
        for stream in list(self._partial):
            self.end_stream(stream)
        with self._lock:
            if self._finished:
                return
            self._finished = True
            now = self._clock()
            rest = self._cap.finish(
                lambda dropped: log_lines(LogStream.SYSTEM, dropped_notice_text(dropped, self.max_bytes), now)
            )
        # In pieces: a whole tail in one message would pass gRPC's 4 MiB limit.
        for piece in split_at_lines(rest, CHUNK_MAX_BYTES):
            self._emit(piece)

    def flush(self) -> None:
        """Emits what is ready (on the loop)."""
        with self._lock:
            self._flush_timer = self._flush_now = False
            ready = self._cap.take()
        for piece in split_at_lines(ready, CHUNK_MAX_BYTES):
            self._emit(piece)

    def _written(self) -> None:
        """Under the lock: schedules a flush, at once when enough is ready, else in 200 ms."""
        if self._cap.ready_bytes == 0:
            return
        if self._cap.ready_bytes >= FLUSH_BYTES and not self._flush_now:
            self._flush_now = True
            self._schedule(0.0)
        elif not self._flush_timer:
            self._flush_timer = True
            self._schedule(FLUSH_SECONDS)

    def _schedule(self, delay: float) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        if threading.get_ident() == self._loop_thread:
            self._loop.call_later(delay, self.flush)
        else:
            self._loop.call_soon_threadsafe(self._loop.call_later, delay, self.flush)

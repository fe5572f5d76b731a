"""The line format of a run's log, written once for the executor and the scheduler.

A run's log is a sequence of lines, each `<UTC time> <stream> <text>\\n`, e.g.
`2026-12-03T14:44:01.123Z stdout hello`. The stream says where the line came from: a command's
`stdout` or `stderr`, a plugin's `log` records (its prints are `stdout`), or `system` (the executor's
and the scheduler's own lines: claimed, attempt, timed out, retry scheduled, tracebacks). The text is
passed through byte for byte, so a command's output is its lines' text joined; a line longer than
`MAX_LINE_BYTES` is split into several lines, and a last line without a newline gets one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

MAX_LINE_BYTES = 65536


class LogStream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"
    LOG = "log"
    SYSTEM = "system"


def stamp(now: datetime) -> bytes:
    """`2026-12-03T14:44:01.123Z`: UTC, milliseconds, fixed width (24 bytes). isoformat, not
    strftime: every line of every run is stamped, and strftime costs several times more."""
    return now.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds").encode() + b"Z"


def log_line(stream: LogStream, text: bytes, now: datetime) -> bytes:
    """One line of the log; `text` holds no newline and at most MAX_LINE_BYTES."""
    return b"%s %s %s\n" % (stamp(now), stream.encode(), text)


def log_lines(stream: LogStream, text: str | bytes, now: datetime) -> bytes:
    """Every line of `text` (a message, a traceback), each stamped; a trailing newline adds none."""
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    if data.endswith(b"\n"):
        data = data[:-1]
    return b"".join(log_line(stream, piece, now) for piece in split_long(data.split(b"\n")))


def split_long(lines: list[bytes]) -> list[bytes]:
    """Lines longer than MAX_LINE_BYTES become several."""
    pieces: list[bytes] = []
    for line in lines:
        if len(line) <= MAX_LINE_BYTES:
            pieces.append(line)
        else:
            pieces += [line[i : i + MAX_LINE_BYTES] for i in range(0, len(line), MAX_LINE_BYTES)]
    return pieces


def split_at_lines(data: bytes, limit: int) -> list[bytes]:
    """`data` in pieces of at most `limit` bytes, cut after a newline where one falls in the piece."""
    pieces: list[bytes] = []
    start = 0
    while len(data) - start > limit:
        cut = data.rfind(b"\n", start, start + limit)
        end = cut + 1 if cut >= start else start + limit
        pieces.append(data[start:end])
        start = end
    if start < len(data):
        pieces.append(data[start:])
    return pieces

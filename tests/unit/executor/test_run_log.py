"""A run's log in the executor: stamped lines, batching into chunks, the cap keeping head and tail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from services.common.log_lines import LogStream
from services.executor.run_log import CHUNK_MAX_BYTES, FLUSH_BYTES, LogCap, RunLog

NOW = datetime(2026, 12, 3, 14, 44, 1, 123456, tzinfo=UTC)


def lines(count: int, width: int = 10) -> list[bytes]:
    return [f"{i:0{width - 1}d}\n".encode() for i in range(count)]


def test_a_log_within_its_cap_is_kept_whole_and_in_order() -> None:
    cap = LogCap(1000)
    kept = lines(100)  # exactly 1000 bytes
    for line in kept:
        cap.add(line)
    sent = cap.take()
    assert len(sent) == 500  # the head goes out as it comes
    assert sent + cap.finish(lambda _: b"DROPPED\n") == b"".join(kept)


def test_a_log_over_its_cap_keeps_its_head_and_tail_and_says_how_much_was_dropped() -> None:
    cap = LogCap(1000)
    written = lines(1000)
    for line in written:
        cap.add(line)
    everything = cap.take() + cap.finish(lambda dropped: b"dropped %d\n" % dropped)
    assert everything == b"".join(written[:50]) + b"dropped 9000\n" + b"".join(written[-50:])
    assert cap.dropped_bytes == 9000


def test_the_tail_drops_whole_lines_only() -> None:
    cap = LogCap(100)
    for line in [b"a" * 30 + b"\n"] * 10:
        cap.add(line)
    tail = cap.finish(lambda _: b"")[len(cap.take()) :]
    assert all(line == b"a" * 30 for line in tail.split(b"\n")[:-1])


def test_the_newest_line_stays_even_when_alone_it_is_over_the_tails_size() -> None:
    cap = LogCap(10)
    cap.add(b"x" * 50 + b"\n")
    assert cap.finish(lambda _: b"").endswith(b"x" * 50 + b"\n")


def _collect(max_bytes: int, write: Callable[[RunLog], None]) -> list[bytes]:
    chunks: list[bytes] = []

    async def scenario() -> None:
        run_log = RunLog(max_bytes, chunks.append, asyncio.get_running_loop(), clock=lambda: NOW)
        write(run_log)
        run_log.finish()

    asyncio.run(scenario())
    return chunks


def test_command_output_is_stamped_per_line_and_passed_through_byte_for_byte() -> None:
    output = b"first\nsecond \xff bytes\n\nlast without newline"

    def write(run_log: RunLog) -> None:
        for i in range(0, len(output), 7):  # pieces cut mid-line
            run_log.feed(LogStream.STDOUT, output[i : i + 7])
        run_log.end_stream(LogStream.STDOUT)

    log = b"".join(_collect(1 << 20, write))
    prefix = b"2026-12-03T14:44:01.123Z stdout "
    assert all(line.startswith(prefix) for line in log.splitlines())
    assert b"".join(line[len(prefix) :] + b"\n" for line in log.splitlines()) == output + b"\n"


def test_streams_keep_their_own_partial_lines() -> None:
    def write(run_log: RunLog) -> None:
        run_log.feed(LogStream.STDOUT, b"out")
        run_log.feed(LogStream.STDERR, b"err\n")
        run_log.feed(LogStream.STDOUT, b"put\n")

    log = b"".join(_collect(1 << 20, write)).decode()
    assert [line.split(" ", 1)[1] for line in log.splitlines()] == ["stderr err", "stdout output"]


def test_a_big_log_leaves_in_chunks_that_fit_a_grpc_message() -> None:
    def write(run_log: RunLog) -> None:
        for _ in range(5000):
            run_log.feed(LogStream.STDOUT, b"y" * 999 + b"\n")

    chunks = _collect(8 << 20, write)
    assert max(len(chunk) for chunk in chunks) <= CHUNK_MAX_BYTES
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    assert sum(len(chunk) for chunk in chunks) == 5000 * (1000 + 32)


def test_lines_are_batched_not_sent_one_by_one() -> None:
    def write(run_log: RunLog) -> None:
        for i in range(1000):
            run_log.write(LogStream.SYSTEM, f"line {i}")

    chunks = _collect(1 << 20, write)
    assert len(chunks) < 1000 * 40 // FLUSH_BYTES + 3


def test_writes_from_another_thread_reach_the_log() -> None:
    chunks: list[bytes] = []

    async def scenario() -> None:
        run_log = RunLog(1 << 20, chunks.append, asyncio.get_running_loop(), clock=lambda: NOW)
        await asyncio.to_thread(run_log.write, LogStream.LOG, "INFO plugin: from a thread")
        run_log.finish()

    asyncio.run(scenario())
    assert b"log INFO plugin: from a thread\n" in b"".join(chunks)

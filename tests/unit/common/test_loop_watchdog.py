"""The shared server wiring's loop watchdog: off unless asked for; a callback or a task step that
holds the loop is logged as one structured record naming it, quick ones are not."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from services.common.loop_watchdog import (
    SLOW_CALLBACK_ENV,
    SLOW_CALLBACK_EVENT,
    stop_watching_slow_callbacks,
    watch_slow_callbacks,
)


def test_the_watchdog_is_off_unless_its_threshold_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SLOW_CALLBACK_ENV, raising=False)
    assert not watch_slow_callbacks()


def spin(seconds: float) -> None:
    """Works on the CPU for `seconds` of this thread's CPU time (sleeping would only wait; wall time
    would be less work on a busy machine, and the watchdog judges CPU time)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def test_a_callback_that_holds_the_loop_is_logged_with_its_name_and_duration(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(SLOW_CALLBACK_ENV, "50")

    def hold_the_loop() -> None:
        spin(0.12)

    with caplog.at_level(logging.WARNING, logger="services.common.loop_watchdog"):
        try:
            assert watch_slow_callbacks()
            loop = asyncio.get_running_loop()
            loop.call_soon(hold_the_loop)
            loop.call_soon(lambda: None)  # quick: not logged
            await asyncio.sleep(0.05)
        finally:
            stop_watching_slow_callbacks()
    slow = [
        record.__dict__ for record in caplog.records if getattr(record, "event", "") == SLOW_CALLBACK_EVENT
    ]
    assert len(slow) == 1
    assert "hold_the_loop" in slow[0]["callback"] and slow[0]["duration_ms"] >= 120
    assert slow[0]["cpu_ms"] >= 50  # the threshold: it was flagged for its own work


async def test_a_callback_that_only_ran_late_is_not_a_slow_callback(caplog: pytest.LogCaptureFixture) -> None:
    """Wall time without work on the loop's thread (here a sleep; on a loaded machine, preemption)
    is logged as late, and does not fail the integration tier."""

    def wait_without_working() -> None:
        time.sleep(0.12)

    with caplog.at_level(logging.INFO, logger="services.common.loop_watchdog"):
        try:
            assert watch_slow_callbacks(50)
            asyncio.get_running_loop().call_soon(wait_without_working)
            await asyncio.sleep(0.05)
        finally:
            stop_watching_slow_callbacks()
    events = [getattr(record, "event", "") for record in caplog.records]
    assert SLOW_CALLBACK_EVENT not in events
    assert "late_callback" in events


async def test_a_task_step_that_holds_the_loop_names_the_task_and_where_it_waits_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def blocking_step() -> None:
        spin(0.12)  # the very thing the watchdog is for
        await release.wait()

    with caplog.at_level(logging.WARNING, logger="services.common.loop_watchdog"):
        try:
            assert watch_slow_callbacks(50)
            task = asyncio.create_task(blocking_step(), name="the-blocking-task")
            await asyncio.sleep(0.05)
            release.set()
            await task
        finally:
            stop_watching_slow_callbacks()
    slow = [
        record.__dict__ for record in caplog.records if getattr(record, "event", "") == SLOW_CALLBACK_EVENT
    ]
    assert len(slow) == 1
    assert "the-blocking-task" in slow[0]["callback"] and "blocking_step" in slow[0]["callback"]
    assert "test_loop_watchdog.py" in slow[0]["callback"]  # suspended at `await release.wait()`

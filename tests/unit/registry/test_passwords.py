"""services.registry.passwords: the policy, and the bounded low-priority hashing pool."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from argon2 import PasswordHasher

from services.common.errors import Reason, ResourceExhausted
from services.registry.passwords import WORKER_NICENESS, PasswordPool

FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


async def test_verification_and_the_dummy_hash_of_unknown_users() -> None:
    pool = PasswordPool(FAST)
    try:
        hashed = await pool.hash("correct-horse-battery")
        assert hashed.startswith("$argon2id$")
        assert await pool.verify(hashed, "correct-horse-battery")
        assert not await pool.verify(hashed, "wrong-password")
        assert not await pool.verify("not-a-hash", "correct-horse-battery")
        assert not await pool.verify(None, "correct-horse-battery")
        assert not pool.needs_rehash(hashed)
    finally:
        pool.close()


async def test_checks_beyond_the_bound_are_refused_at_once() -> None:
    pool = PasswordPool(FAST, workers=1, max_waiting=1)
    try:
        await pool.hash("warm-up-password")  # the dummy hash is done
        results = await asyncio.gather(
            *(pool.hash(f"password-{i}") for i in range(3)), return_exceptions=True
        )
        assert [isinstance(r, str) for r in results] == [True, True, False]
        refused = results[2]
        assert isinstance(refused, ResourceExhausted) and refused.reason == Reason.LOGIN_BUSY
    finally:
        pool.close()


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="per-thread priority is Linux only")
async def test_hashing_runs_in_a_lower_priority_thread_than_the_event_loop() -> None:
    pool = PasswordPool(FAST)
    try:

        def priority_and_thread() -> tuple[int, int]:
            native = threading.get_native_id()
            return os.getpriority(os.PRIO_PROCESS, native), native

        niceness, thread = await pool._submit(priority_and_thread)
        assert thread != threading.get_native_id()
        loop_niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert niceness == min(loop_niceness + WORKER_NICENESS, 19)
    finally:
        pool.close()

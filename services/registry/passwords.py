"""Passwords: the policy a new password must meet, and argon2 hashing off the event loop.

Hashing costs ~50 ms of CPU by design. On the registry's event loop a dozen concurrent logins with
unknown usernames stalled everything else the loop serves, the scheduler's leadership renewal and
run recording included. Here every hash and verification runs in a small thread pool:

- argon2-cffi releases the GIL while it hashes, so threads are enough (no process pool): with two
  threads verifying in a loop, a 1 ms sleep on the main thread still wakes after 1.1 ms (p50);
- one thread: argon2 already spreads each hash over its lanes (parallelism 4), and more hashing
  threads only take CPU from everything else on a small machine;
- the thread runs at a lower CPU priority (nice +10; Linux sets it per thread, and argon2's lane
  threads inherit it), so a login flood only uses CPU that the loop, the scheduler and the executors
  leave idle (`bench/login_flood.py`: the internal RPC p99 under a flood stays at its quiet level);
- it is bounded: beyond `max_waiting` checks queued for a thread a login is refused at once with
  LOGIN_BUSY instead of queueing forever (the gateway's rate limit keeps that rare).

An unknown username is verified against a dummy hash with the same parameters, so it costs the same
time as a known one and gets the same answer.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from pathlib import Path
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.common.errors import InvalidArgument, Reason, ResourceExhausted
from services.common.thread_priority import lower_this_thread

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
COMMON_PASSWORDS_PATH = Path(__file__).with_name("common_passwords.txt")
LOGIN_BUSY = "登录请求过多，请稍后再试"
# How much lower the hashing thread's CPU priority is than the loop's (a nice increment).
WORKER_NICENESS = 10

# Production parameters (argon2id, ~50 ms per hash); tests inject a cheaper hasher.
DEFAULT_HASHER = PasswordHasher()

T = TypeVar("T")


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_PATH.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


_EDGES = re.compile(r"^[^a-z]+|[^a-z]+$")


def check_new_password(password: str, username: str) -> None:
    """Raises InvalidArgument (PASSWORD_TOO_SHORT / PASSWORD_TOO_COMMON) for a password too weak to set."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidArgument(f"密码长度至少为{MIN_PASSWORD_LENGTH}位", reason=Reason.PASSWORD_TOO_SHORT)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidArgument(f"密码长度不能超过{MAX_PASSWORD_LENGTH}位", reason=Reason.USER_INVALID)
    lowered = password.lower()
    core = _EDGES.sub("", lowered)
    common = common_passwords()
    if lowered in common or core in common or len(set(lowered)) <= 3:
        raise InvalidArgument("密码过于常见，请换一个更难猜的密码", reason=Reason.PASSWORD_TOO_COMMON)
    if username and username.lower() in (lowered, core):
        raise InvalidArgument("密码不能与用户名相同", reason=Reason.PASSWORD_TOO_COMMON)


class PasswordPool:
    """argon2 hashing and verification in a bounded pool of low-priority threads."""

    def __init__(
        self, hasher: PasswordHasher = DEFAULT_HASHER, *, workers: int = 1, max_waiting: int = 64
    ) -> None:
        self.hasher = hasher
        self._executor = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="password",
            initializer=partial(lower_this_thread, WORKER_NICENESS),
        )
        self._limit = workers + max_waiting
        self._in_flight = 0
        # First in the pool's queue, so every unknown-username check finds it ready.
        self._dummy = self._executor.submit(self.hasher.hash, secrets.token_hex(16))

    async def _submit(self, fn: Callable[..., T], *args: str) -> T:
        if self._in_flight >= self._limit:
            raise ResourceExhausted(LOGIN_BUSY, reason=Reason.LOGIN_BUSY)
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._in_flight -= 1

    async def hash(self, password: str) -> str:
        return await self._submit(self.hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; with no hash (unknown user) a dummy one is checked: False."""
        if password_hash is None:
            await self._submit(self._check, await asyncio.wrap_future(self._dummy), password)
            return False
        return await self._submit(self._check, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

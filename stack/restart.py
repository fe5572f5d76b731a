"""When to start a dead process again: exponential backoff that forgets after a quiet while.

A process that dies is started again after `first_delay`; each further death soon after doubles the
delay up to `max_delay`, so a process that cannot start (a port taken, a broken database URL) is
retried a few times a minute instead of in a tight loop. A process that stayed up for `reset_after`
counts as healthy again: its next death waits `first_delay` once more.

Pure values and functions only; the supervisor keeps one :class:`Backoff` per process.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    """Delays between restarts of one process (seconds)."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    reset_after: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.first_delay <= self.max_delay:
            raise ValueError(f"need 0 < first_delay <= max_delay, got {self.first_delay}, {self.max_delay}")
        if self.reset_after <= 0:
            raise ValueError(f"reset_after must be > 0, got {self.reset_after}")

    def delay(self, failures: int) -> float:
        """The wait before restart number `failures` + 1 of a run of quick deaths (0 = the first)."""
        return min(self.first_delay * 2.0 ** min(failures, 64), self.max_delay)


@dataclass(frozen=True)
class Backoff:
    """One process's run of quick deaths: how many so far."""

    failures: int = 0

    def after_death(self, policy: RestartPolicy, uptime: float) -> tuple[float, Backoff]:
        """The delay before the next start, and the new state, for a process that died after
        `uptime` seconds up. A long enough uptime ends the run of quick deaths."""
        failures = 0 if uptime >= policy.reset_after else self.failures
        return policy.delay(failures), Backoff(failures + 1)

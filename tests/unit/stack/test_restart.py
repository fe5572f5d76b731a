"""The restart backoff: 1 s doubling to 30 s while a process keeps dying, back to 1 s after it stayed up."""

from __future__ import annotations

import pytest

from stack.restart import Backoff, RestartPolicy

POLICY = RestartPolicy(first_delay=1.0, max_delay=30.0, reset_after=60.0)


def deaths(uptimes: list[float]) -> list[float]:
    """The delays chosen for processes dying after these uptimes, one after another."""
    delays, backoff = [], Backoff()
    for uptime in uptimes:
        delay, backoff = backoff.after_death(POLICY, uptime)
        delays.append(delay)
    return delays


def test_quick_deaths_double_the_delay_up_to_the_maximum() -> None:
    assert deaths([0.5] * 8) == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_process_that_stayed_up_long_enough_waits_the_first_delay_again() -> None:
    assert deaths([0.5, 0.5, 0.5, 60.0, 0.5]) == [1, 2, 4, 1, 2]


def test_an_uptime_just_short_of_the_reset_keeps_doubling() -> None:
    assert deaths([0.5, 59.9]) == [1, 2]


def test_the_delay_never_overflows_after_very_many_deaths() -> None:
    assert POLICY.delay(10_000) == 30


@pytest.mark.parametrize(
    "fields",
    [
        {"first_delay": 0.0},
        {"first_delay": -1.0},
        {"first_delay": 5.0, "max_delay": 1.0},
        {"reset_after": 0.0},
    ],
)
def test_a_policy_that_could_spin_or_never_restart_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RestartPolicy(**fields)

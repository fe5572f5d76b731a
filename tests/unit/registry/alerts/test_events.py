"""Which events a run's end raises for a rule, and which rules apply to a task."""

from __future__ import annotations

from services.common.vocabulary import AlertEvent
from services.registry.alerts.events import Rule, RunFacts, raised, rules_for_task

EVERYTHING = Rule(1, None, frozenset(AlertEvent), (1,), slow_seconds=10)


def facts(
    status: str, error: str = "", final: bool = True, duration: float = 1.0, previous: str | None = None
) -> RunFacts:
    return RunFacts(
        task_id=5,
        status=status,
        error_message=error,
        duration_seconds=duration,
        final=final,
        previous_status=previous,
    )


def test_a_failure_with_a_retry_left_is_an_attempt_failure_only() -> None:
    assert raised(facts("failed", final=False), EVERYTHING) == [AlertEvent.ATTEMPT_FAILED]
    assert raised(facts("failed"), EVERYTHING) == [AlertEvent.RUN_FAILED, AlertEvent.ATTEMPT_FAILED]


def test_timeouts_and_lost_executors_are_told_apart_by_their_messages() -> None:
    assert AlertEvent.TIMEOUT in raised(facts("failed", "执行超时（超过 5 秒）"), EVERYTHING)
    assert AlertEvent.EXECUTOR_LOST in raised(facts("failed", "执行器失联"), EVERYTHING)
    assert AlertEvent.TIMEOUT not in raised(facts("failed", "exit code 1"), EVERYTHING)


def test_slow_needs_more_than_the_threshold_and_recovered_a_failure_before() -> None:
    assert raised(facts("success", duration=10.0), EVERYTHING) == []
    assert raised(facts("success", duration=10.5), EVERYTHING) == [AlertEvent.SLOW]
    assert raised(facts("success", previous="failed"), EVERYTHING) == [AlertEvent.RECOVERED]
    assert raised(facts("success", previous="success"), EVERYTHING) == []


def test_only_the_events_a_rule_names_are_raised() -> None:
    only_final = Rule(2, None, frozenset({AlertEvent.RUN_FAILED}), (1,))
    assert raised(facts("failed", final=False), only_final) == []
    assert raised(facts("skipped"), only_final) == []


def test_a_task_with_rules_of_its_own_is_not_alerted_by_the_global_ones() -> None:
    own = Rule(3, 5, frozenset({AlertEvent.RUN_FAILED}), (2,))
    assert rules_for_task([EVERYTHING, own], 5) == [own]
    assert rules_for_task([EVERYTHING, own], 6) == [EVERYTHING]

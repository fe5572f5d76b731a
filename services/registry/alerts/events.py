"""Which alert events a run's end raises, and which rules apply to a task: pure functions.

A task's own rules override the global ones: a task with at least one rule of its own is alerted by
its rules only; every other task by the global rules (those without a task).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.common.vocabulary import AlertEvent, ExecutionStatus

# The executor's message for a run over its timeout starts so (services/executor/runner.py).
TIMED_OUT_PREFIX = "执行超时"
# The registry's message for a run whose executor stopped reporting (store.executions.LOST_EXECUTOR).
LOST_EXECUTOR = "执行器失联"


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    task_id: int | None
    events: frozenset[str]
    channel_ids: tuple[int, ...]
    slow_seconds: int = 0


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the events depend on, of one ended run."""

    task_id: int
    status: str
    error_message: str
    duration_seconds: float | None
    # Failed with no retry left (or terminated by a user, which is never retried).
    final: bool
    # The status of the task's previous ended run (success or failed); None when unknown or none.
    previous_status: str | None = None


def rules_for_task(rules: Sequence[Rule], task_id: int) -> list[Rule]:
    own = [rule for rule in rules if rule.task_id == task_id]
    return own or [rule for rule in rules if rule.task_id is None]


def raised(run: RunFacts, rule: Rule) -> list[AlertEvent]:
    """The events of `rule` that this run's end raises, in the vocabulary's order."""
    happened: set[AlertEvent] = set()
    if run.status == ExecutionStatus.SKIPPED:
        happened.add(AlertEvent.SKIPPED)
    elif run.status == ExecutionStatus.FAILED:
        happened.add(AlertEvent.ATTEMPT_FAILED)
        if run.final:
            happened.add(AlertEvent.RUN_FAILED)
        if run.error_message.startswith(TIMED_OUT_PREFIX):
            happened.add(AlertEvent.TIMEOUT)
        if run.error_message.startswith(LOST_EXECUTOR):
            happened.add(AlertEvent.EXECUTOR_LOST)
    elif run.status == ExecutionStatus.SUCCESS:
        if rule.slow_seconds > 0 and (run.duration_seconds or 0.0) > rule.slow_seconds:
            happened.add(AlertEvent.SLOW)
        if run.previous_status == ExecutionStatus.FAILED:
            happened.add(AlertEvent.RECOVERED)
    return [event for event in AlertEvent if event in happened and event in rule.events]


def needs_previous_status(rules: Sequence[Rule]) -> bool:
    return any(AlertEvent.RECOVERED in rule.events for rule in rules)

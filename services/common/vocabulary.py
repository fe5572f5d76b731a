"""The words every service shares: run statuses, triggers, task types and policies.

Each is a ``StrEnum`` whose values are the wire strings of the REST contract and the database
columns, so a member can stand wherever such a string goes (a proto field, a JSON value, a
column) and a string read from the wire compares equal to its member. Values are part of the
public contract: never rename one.

The named sets of statuses are defined here once; code asks "is this run live?" with
``status in LIVE_STATUSES``, never with its own tuple of strings.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar


class ExecutionStatus(StrEnum):
    """Where a run is in its life: waiting, running, or ended one of four ways."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TERMINATED = "terminated"
    SKIPPED = "skipped"


# A live run may still change: it holds the task under `forbid` and blocks deleting the task.
LIVE_STATUSES = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING})
# A final status never changes again.
FINAL_STATUSES = frozenset(
    {ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.TERMINATED, ExecutionStatus.SKIPPED}
)
# Final and unsuccessful through the run itself (a skipped run never ran): counts as a failure.
FAILED_STATUSES = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TERMINATED})
# Final after the run actually ran (success or failure; not skipped): what run statistics count.
RAN_STATUSES = FAILED_STATUSES | {ExecutionStatus.SUCCESS}

# The error of a run an executor's drain (SIGTERM: rollout, node drain, scale-down) ended because it
# outlasted the drain's grace. The run did not fail on its own: it is handed back, run again at once
# on another executor, and that retry does not count against the task's max_retries.
DRAIN_INTERRUPTED_MESSAGE = "执行器正在停止，任务已中断"
# The error of a run someone terminated (ended by its executor, or by the scheduler when it was
# terminated after its claim but before any executor had it).
TERMINATED_MESSAGE = "任务已被终止"


class Trigger(StrEnum):
    """What made a run."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"
    WORKFLOW = "workflow"
    BACKFILL = "backfill"


class BackfillStatus(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskType(StrEnum):
    EXAMPLE = "example_task"
    MANUAL = "manual_task"
    COMMON = "common_task"
    WORKFLOW = "workflow"
    # The guide's data-sync types (services/common/data_sync.py).
    DATA_SYNC_STOCK_LIST = "data_sync_stock_list"
    DATA_SYNC_TRADING_CALENDAR = "data_sync_trading_calendar"
    DATA_SYNC_DAILY_DATA = "data_sync_daily_data"
    DATA_SYNC_ALL_DAILY_DATA = "data_sync_all_daily_data"


class HolidayPolicy(StrEnum):
    """What a cron candidate on a day that is not a session of the task's calendar does."""

    SILENT = "silent"  # default: not a miss, nothing recorded
    RECORD = "record"  # recorded as skipped with the reason 非交易日


class ConcurrencyPolicy(StrEnum):
    """What a fire does while the task still has a live run."""

    FORBID = "forbid"
    ALLOW = "allow"
    REPLACE = "replace"


class MisfirePolicy(StrEnum):
    """What happens to fire times missed while no scheduler ran."""

    RUN_ONCE = "run_once"
    SKIP = "skip"


class WorkflowType(StrEnum):
    SERIAL = "serial"
    PARALLEL = "parallel"


class FailurePolicy(StrEnum):
    """What a workflow does with its other nodes once one fails."""

    STOP = "stop"
    CONTINUE = "continue"


Word = TypeVar("Word", bound=StrEnum)


def word_of(words: type[Word], value: object) -> Word | None:
    """The member whose wire string `value` is; None for anything else (any JSON value may come)."""
    if not isinstance(value, str):
        return None
    try:
        return words(value)
    except ValueError:
        return None


def listed(words: type[StrEnum]) -> str:
    """The values of a vocabulary for a message, in their defined order: "forbid, allow, replace"."""
    return ", ".join(words)


class AlertEvent(StrEnum):
    """What an alert rule can react to (services/registry/alerts)."""

    # A run failed after its last retry (or had none).
    RUN_FAILED = "run_failed"
    # Any failed attempt, retried or not.
    ATTEMPT_FAILED = "attempt_failed"
    # A run that failed by exceeding its timeout.
    TIMEOUT = "timeout"
    # A run failed because its executor stopped reporting.
    EXECUTOR_LOST = "executor_lost"
    # A run recorded skipped (missed while no scheduler ran, or overlapping under forbid).
    SKIPPED = "skipped"
    # A successful run slower than the rule's slow_seconds.
    SLOW = "slow"
    # The first success after a failure.
    RECOVERED = "recovered"
    # The data of a trading calendar an enabled task uses ends within 30 days (ZQ_CALENDAR_WARN_DAYS):
    # once per calendar and data end, from the scheduler leader's housekeeping; not a run's event.
    CALENDAR_DATA_ENDING = "calendar_data_ending"


class AlertChannelType(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"
    DINGTALK = "dingtalk"
    WECOM = "wecom"
    FEISHU = "feishu"

"""The alert outbox (the messages alert rules make, store.alert_settings) and its delivery history.

``enqueue_ends`` and ``enqueue_skipped`` run inside the transaction that ends or records a run:
the outbox row commits with the run's end or not at all. Each row is unique per (event, run,
channel), so a run end seen twice, or two rules naming one channel, alert once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from services.common.errors import InvalidArgument, Reason
from services.common.vocabulary import AlertEvent, ExecutionStatus
from services.registry.alerts import events as alert_events
from services.registry.db import upsert_into
from services.registry.models import (
    AlertAttemptRow,
    AlertDeliveryRow,
    AlertRuleRow,
    ExecutionRow,
    TaskRow,
)
from services.registry.store.calendars import resolve

PENDING, SENT, FAILED, SUPPRESSED, DIGESTED = "pending", "sent", "failed", "suppressed", "digested"
DELIVERY_STATES = (PENDING, SENT, FAILED, SUPPRESSED, DIGESTED)
# ---- the outbox -------------------------------------------------------------------------------


def _active_rules(session: Session) -> list[alert_events.Rule]:
    rows = session.execute(
        select(
            AlertRuleRow.id,
            AlertRuleRow.task_id,
            AlertRuleRow.events,
            AlertRuleRow.channel_ids,
            AlertRuleRow.slow_seconds,
        ).where(AlertRuleRow.enabled.is_(True))
    )
    return [
        alert_events.Rule(rule_id, task_id, frozenset(events), tuple(channels), slow)
        for rule_id, task_id, events, channels, slow in rows
    ]


def _previous_status(session: Session, row: ExecutionRow) -> str | None:
    return session.scalar(
        select(ExecutionRow.status)
        .where(
            ExecutionRow.task_id == row.task_id,
            ExecutionRow.id < row.id,
            ExecutionRow.status.in_((ExecutionStatus.SUCCESS, ExecutionStatus.FAILED)),
        )
        .order_by(ExecutionRow.id.desc())
        .limit(1)
    )


def payload_of(task: TaskRow | None, row: ExecutionRow, event: str) -> dict[str, Any]:
    """The event's fields as every channel gets them (the link is added at delivery)."""
    zone = task.timezone if task is not None else "UTC"
    moment = row.end_time or row.created_at
    try:
        local = moment.astimezone(ZoneInfo(zone))
    except (KeyError, ValueError):
        local = moment
    return {
        "event": event,
        "task_id": row.task_id,
        "task_name": task.name if task is not None else "",
        "execution_id": row.id,
        "status": row.status,
        "error_message": row.error_message or "",
        "time": local.isoformat(timespec="seconds"),
        "timezone": zone,
        "duration_seconds": row.duration_seconds if row.duration_seconds is not None else 0,
        "retry_count": row.retry_count,
    }


def enqueue_ends(session: Session, ended: Sequence[tuple[ExecutionRow, bool]], now: datetime) -> int:
    """Outbox rows for the alert events of ended runs: (row, final) where final means no retry
    follows. One small read of the rules when none apply; returns how many rows were written."""
    if not ended:
        return 0
    rules = _active_rules(session)
    if not rules:
        return 0
    values: list[dict[str, Any]] = []
    for row, final in ended:
        applicable = alert_events.rules_for_task(rules, row.task_id)
        if not applicable:
            continue
        previous = (
            _previous_status(session, row)
            if row.status == ExecutionStatus.SUCCESS and alert_events.needs_previous_status(applicable)
            else None
        )
        facts = alert_events.RunFacts(
            row.task_id, row.status, row.error_message or "", row.duration_seconds, final, previous
        )
        task = session.get(TaskRow, row.task_id)
        for rule in applicable:
            for event in alert_events.raised(facts, rule):
                payload = payload_of(task, row, event)
                values.extend(
                    _delivery_values(f"{event}:{row.id}:{channel}", event, rule.id, channel, payload, now)
                    for channel in rule.channel_ids
                )
    return _insert_deliveries(session, values)


# Task names a calendar_data_ending message lists.
_SHOWN_TASKS = 10


def calendar_rules(session: Session) -> list[alert_events.Rule]:
    """The enabled rules with the calendar_data_ending event (one read of the small rules table)."""
    return [rule for rule in _active_rules(session) if AlertEvent.CALENDAR_DATA_ENDING in rule.events]


def enqueue_calendar_endings(session: Session, now: datetime, warn_days: int) -> int:
    """Outbox rows for calendar_data_ending: for each calendar an enabled task uses whose data ends
    within `warn_days` of today (UTC) or has ended, one message per channel of every enabled rule
    with the event (global, or of a task using the calendar). Keyed by calendar and data end, so
    a calendar alerts once until its data moves; nothing is read beyond the rules when no rule
    asks for the event. Loads calendar data the first time (call from a worker thread)."""
    rules = calendar_rules(session)
    if not rules:
        return 0
    users: dict[str, list[tuple[int, str]]] = {}
    for task_id, task_name, calendar_name in session.execute(
        select(TaskRow.id, TaskRow.name, TaskRow.calendar)
        .where(TaskRow.enabled.is_(True), TaskRow.calendar.is_not(None))
        .order_by(TaskRow.id)
    ):
        if calendar_name:
            users.setdefault(calendar_name, []).append((task_id, task_name))
    today = now.date()
    values: list[dict[str, Any]] = []
    for name, tasks in users.items():
        calendar = resolve(name)
        if calendar is None:
            continue
        days_left = (calendar.covered_until - today).days
        if days_left > warn_days:
            continue
        task_ids = {task_id for task_id, _ in tasks}
        event = AlertEvent.CALENDAR_DATA_ENDING.value
        payload: dict[str, Any] = {
            "event": event,
            "calendar": name,
            "data_end": calendar.covered_until.isoformat(),
            "days_left": days_left,
            "task_count": len(tasks),
            "task_names": [shown for _, shown in tasks[:_SHOWN_TASKS]],
            "time": now.isoformat(timespec="seconds"),
            "timezone": "UTC",
        }
        key = f"{AlertEvent.CALENDAR_DATA_ENDING}:{name}:{payload['data_end']}"
        for rule in rules:
            if rule.task_id is None or rule.task_id in task_ids:
                values.extend(
                    _delivery_values(f"{key}:{channel}", event, rule.id, channel, payload, now)
                    for channel in rule.channel_ids
                )
    return _insert_deliveries(session, values)


def enqueue_skipped(session: Session, rows: Sequence[ExecutionRow], now: datetime) -> int:
    return enqueue_ends(session, [(row, True) for row in rows if row.status == ExecutionStatus.SKIPPED], now)


def _delivery_values(
    key: str, event: str, rule_id: int | None, channel_id: int, payload: dict[str, Any], now: datetime
) -> dict[str, Any]:
    execution = payload.get("execution_id")
    task = payload.get("task_id")
    return {
        "dedup_key": key,
        "event": event,
        "rule_id": rule_id,
        "channel_id": channel_id,
        "task_id": task if isinstance(task, int) and task else None,
        "execution_id": execution if isinstance(execution, int) and execution else None,
        "payload": payload,
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": "",
        "created_at": now,
        "sent_at": None,
    }


DELIVERIES = cast(Table, AlertDeliveryRow.__table__)


@functools.cache
def _insert_delivery(dialect: str) -> Any:
    insert = upsert_into(DELIVERIES, dialect)
    return insert.on_conflict_do_nothing(index_elements=["dedup_key"])


def _insert_deliveries(session: Session, values: list[dict[str, Any]]) -> int:
    # Within one call, two rules naming one channel make the same key: the first one stays.
    unique: dict[str, dict[str, Any]] = {}
    for value in values:
        unique.setdefault(value["dedup_key"], value)
    if not unique:
        return 0
    result = cast(
        CursorResult[Any],
        session.execute(_insert_delivery(session.get_bind().dialect.name), list(unique.values())),
    )
    return max(result.rowcount, 0)


def record_test(
    session: Session, channel_id: int, payload: dict[str, Any], now: datetime, error: str
) -> AlertDeliveryRow:
    """A test message already sent (or not): recorded in the history like any delivery."""
    values = _delivery_values(f"test:{channel_id}:{now.timestamp()}", "test", None, channel_id, payload, now)
    row = AlertDeliveryRow(**values)
    row.attempts = 1
    row.state = FAILED if error else SENT
    row.sent_at = None if error else now
    row.last_error = error
    session.add(row)
    session.flush()
    session.add(AlertAttemptRow(delivery_id=row.id, at=now, ok=not error, error=error))
    return row


# ---- delivery (the scheduler leader's housekeeping) -------------------------------------------


def claim_due(session: Session, now: datetime, limit: int, hold: timedelta) -> list[AlertDeliveryRow]:
    """Pending deliveries whose time has come, each held for `hold` so that no concurrent pass
    (a leader that just changed) takes the same one; a pass that dies leaves them due again."""
    due = list(
        session.scalars(
            select(AlertDeliveryRow.id)
            .where(AlertDeliveryRow.state == PENDING, AlertDeliveryRow.next_attempt_at <= now)
            .order_by(AlertDeliveryRow.next_attempt_at, AlertDeliveryRow.id)
            .limit(limit)
        )
    )
    claimed = []
    for delivery_id in due:
        held = session.execute(
            update(AlertDeliveryRow)
            .where(
                AlertDeliveryRow.id == delivery_id,
                AlertDeliveryRow.state == PENDING,
                AlertDeliveryRow.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + hold)
            .returning(AlertDeliveryRow.id)
        ).scalar()
        if held is not None:
            row = session.get(AlertDeliveryRow, delivery_id)
            assert row is not None
            claimed.append(row)
    return claimed


def next_due(session: Session) -> datetime | None:
    """When the earliest pending delivery falls due (a retry, or one held by a pass); None when
    none is pending."""
    due: datetime | None = session.scalar(
        select(func.min(AlertDeliveryRow.next_attempt_at)).where(AlertDeliveryRow.state == PENDING)
    )
    return due


def sent_recently(session: Session, rule_id: int, channel_id: int, since: datetime) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(AlertDeliveryRow)
            .where(
                AlertDeliveryRow.rule_id == rule_id,
                AlertDeliveryRow.channel_id == channel_id,
                AlertDeliveryRow.event != "digest",
                AlertDeliveryRow.state.in_((SENT, PENDING)),
                AlertDeliveryRow.sent_at >= since,
            )
        )
        or 0
    )


def record_attempt(
    session: Session, delivery_id: int, now: datetime, error: str, retry_at: datetime | None
) -> None:
    """One try: sent (error ""), to be retried at `retry_at`, or given up (retry_at None)."""
    session.add(AlertAttemptRow(delivery_id=delivery_id, at=now, ok=not error, error=error))
    values: dict[str, Any] = {"attempts": AlertDeliveryRow.attempts + 1, "last_error": error}
    if not error:
        values.update(state=SENT, sent_at=now)
    elif retry_at is not None:
        values.update(next_attempt_at=retry_at)
    else:
        values.update(state=FAILED)
    session.execute(update(AlertDeliveryRow).where(AlertDeliveryRow.id == delivery_id).values(**values))


def suppress(session: Session, delivery_id: int) -> None:
    session.execute(
        update(AlertDeliveryRow)
        .where(AlertDeliveryRow.id == delivery_id)
        .values(state=SUPPRESSED, last_error="rate limited")
    )


def enqueue_digests(session: Session, now: datetime) -> int:
    """For each rule and channel whose held-back alerts waited a whole rate-limit window, one
    digest (not rate limited itself) telling of them all; they become `digested`."""
    held = session.execute(
        select(AlertDeliveryRow.rule_id, AlertDeliveryRow.channel_id, func.min(AlertDeliveryRow.created_at))
        .where(AlertDeliveryRow.state == SUPPRESSED)
        .group_by(AlertDeliveryRow.rule_id, AlertDeliveryRow.channel_id)
    ).all()
    written = 0
    for rule_id, channel_id, oldest in held:
        rule = session.get(AlertRuleRow, rule_id) if rule_id is not None else None
        window = timedelta(seconds=rule.rate_limit_seconds if rule is not None else 0)
        if oldest + window > now:
            continue
        rows = list(
            session.scalars(
                select(AlertDeliveryRow)
                .where(
                    AlertDeliveryRow.rule_id == rule_id,
                    AlertDeliveryRow.channel_id == channel_id,
                    AlertDeliveryRow.state == SUPPRESSED,
                )
                .order_by(AlertDeliveryRow.id)
                .with_for_update()
            )
        )
        if not rows:
            continue
        lines = [
            f"#{row.execution_id} {row.payload.get('task_name', '')} {row.event} {row.payload.get('time', '')}"
            for row in rows[:50]
        ]
        if len(rows) > 50:
            lines.append(f"… +{len(rows) - 50}")
        payload = {
            "event": "digest",
            "count": len(rows),
            "lines": "\n".join(lines),
            "events": [row.id for row in rows],
        }
        key = f"digest:{rule_id}:{channel_id}:{rows[0].id}"
        written += _insert_deliveries(
            session, [_delivery_values(key, "digest", rule_id, channel_id, payload, now)]
        )
        session.execute(
            update(AlertDeliveryRow)
            .where(AlertDeliveryRow.id.in_([row.id for row in rows]))
            .values(state=DIGESTED)
        )
    return written


# ---- history ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    skip: int = 0
    limit: int = 100
    state: str = ""
    channel_id: int = 0
    task_id: int = 0
    execution_id: int = 0


def list_deliveries(session: Session, query: DeliveryQuery) -> tuple[list[AlertDeliveryRow], int]:
    if query.skip < 0:
        raise InvalidArgument("skip 不能为负数", reason=Reason.PAGE_INVALID)
    if not 1 <= query.limit <= 1000:
        raise InvalidArgument("limit 必须在1到1000之间", reason=Reason.PAGE_INVALID)
    conditions = []
    if query.state:
        if query.state not in DELIVERY_STATES:
            raise InvalidArgument(
                f"无效的投递状态: {query.state}，支持: {', '.join(DELIVERY_STATES)}",
                reason=Reason.FILTER_INVALID,
            )
        conditions.append(AlertDeliveryRow.state == query.state)
    if query.channel_id:
        conditions.append(AlertDeliveryRow.channel_id == query.channel_id)
    if query.task_id:
        conditions.append(AlertDeliveryRow.task_id == query.task_id)
    if query.execution_id:
        conditions.append(AlertDeliveryRow.execution_id == query.execution_id)
    rows = select(AlertDeliveryRow).where(*conditions).order_by(AlertDeliveryRow.id.desc())
    count = select(func.count()).select_from(AlertDeliveryRow).where(*conditions)
    return list(session.scalars(rows.offset(query.skip).limit(query.limit))), session.scalar(count) or 0


def attempts_of(session: Session, delivery_ids: Sequence[int]) -> dict[int, list[AlertAttemptRow]]:
    found: dict[int, list[AlertAttemptRow]] = {delivery_id: [] for delivery_id in delivery_ids}
    if delivery_ids:
        for attempt in session.scalars(
            select(AlertAttemptRow)
            .where(AlertAttemptRow.delivery_id.in_(delivery_ids))
            .order_by(AlertAttemptRow.id)
        ):
            found[attempt.delivery_id].append(attempt)
    return found

"""Typed SQLAlchemy models. Table names of tasks and executions are the user guide's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.vocabulary import ConcurrencyPolicy, HolidayPolicy, MisfirePolicy
from services.registry.db import UTCDateTime, utcnow

JsonDict = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


# Ids are never reused (SQLite would reuse the highest deleted id without AUTOINCREMENT).
NO_ID_REUSE = {"sqlite_autoincrement": True}


# Indexes a migration creates only where it can (migrations/versions/0010_task_search.py: the
# trigram index of the name search needs PostgreSQL's pg_trgm); the schema comparison ignores them.
NAME_SEARCH_INDEX = "ix_zq_task_scheduled_tasks_name_trgm"
OPTIONAL_INDEXES = frozenset({NAME_SEARCH_INDEX})


def in_schema_comparison(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's `include_object`: everything but the optional indexes."""
    return not (type_ == "index" and name in OPTIONAL_INDEXES)


class TaskRow(Base):
    __tablename__ = "zq_task_scheduled_tasks"
    __table_args__ = NO_ID_REUSE

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    task_type: Mapped[str] = mapped_column(String(32), index=True)
    cron_expression: Mapped[str | None] = mapped_column(String(200))
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    max_retries: Mapped[int] = mapped_column(Integer, default=3)
    retry_interval: Mapped[int] = mapped_column(Integer, default=60)
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=0)
    concurrency_policy: Mapped[str] = mapped_column(String(16), default=ConcurrencyPolicy.FORBID)
    misfire_policy: Mapped[str] = mapped_column(String(16), default=MisfirePolicy.RUN_ONCE)
    misfire_grace_seconds: Mapped[int] = mapped_column(Integer, default=60)
    # A trading calendar for a cron schedule (services/common/calendars.py); None = every day.
    calendar: Mapped[str | None] = mapped_column(String(64))
    calendar_shift: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    calendar_holidays: Mapped[str] = mapped_column(
        String(16), default=HolidayPolicy.SILENT, server_default=HolidayPolicy.SILENT
    )
    # Days its ended runs are kept; None = the global ZQ_RETENTION_DAYS, 0 = forever.
    retention_days: Mapped[int | None] = mapped_column(Integer, index=True)
    # Interval schedules fire at anchor + k * interval (k >= 1); it moves only when the schedule
    # is redefined or the task is enabled, so restarts and manual triggers keep the phase.
    schedule_anchor: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    # A JSON list of strings (store/task_rules.py has the rules); the list filters on it in SQL.
    tags: Mapped[list[str]] = mapped_column(JsonDict, default=list)


class CalendarRow(Base):
    """A custom trading calendar: a library calendar plus added and removed session dates."""

    __tablename__ = "zq_task_calendars"
    __table_args__ = NO_ID_REUSE

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    base: Mapped[str] = mapped_column(String(64))
    # Sorted "YYYY-MM-DD" strings.
    added_dates: Mapped[list[str]] = mapped_column(JsonDict, default=list)
    removed_dates: Mapped[list[str]] = mapped_column(JsonDict, default=list)
    # "YYYY-MM-DD": the data covers up to this day (beyond the base's end); None = the base's end.
    data_end: Mapped[str | None] = mapped_column(String(10))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class CalendarSyncRow(Base):
    """A library calendar's sessions as data_sync_trading_calendar runs fetched them, merged
    (services.common.calendars.SyncedSessions): they refresh and extend the library's data."""

    __tablename__ = "zq_task_calendar_syncs"
    __table_args__ = NO_ID_REUSE

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    calendar: Mapped[str] = mapped_column(String(64), unique=True)
    # [["YYYY-MM-DD", "YYYY-MM-DD"], ...]: the ranges covered, sorted.
    ranges: Mapped[list[list[str]]] = mapped_column(JsonDict, default=list)
    # Sorted "YYYY-MM-DD": weekdays without a session; weekend days with one.
    closed_dates: Mapped[list[str]] = mapped_column(JsonDict, default=list)
    opened_dates: Mapped[list[str]] = mapped_column(JsonDict, default=list)
    # The provider, and the run that synced last.
    source: Mapped[str] = mapped_column(String(32))
    execution_id: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExecutionRow(Base):
    __tablename__ = "zq_task_task_executions"
    __table_args__ = (
        Index("ix_zq_exec_task_id_id", "task_id", "id"),
        Index("ix_zq_exec_status_id", "status", "id"),
        Index("ix_zq_exec_end_time", "end_time"),
        # The runs statistics read one by one: those not sealed into the daily aggregates (few).
        Index(
            "ix_zq_exec_unsealed",
            "id",
            postgresql_where=text("sealed = false"),
            sqlite_where=text("sealed = 0"),
        ),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("zq_task_scheduled_tasks.id", ondelete="CASCADE"))
    parent_execution_id: Mapped[int | None] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))
    scheduled_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Uniqueness guard against duplicate runs: "s:{task}:{planned}" for scheduled runs, etc.
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    result: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    error_message: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    executor: Mapped[str | None] = mapped_column(String(200))
    # Incremented on every claim; reports from an older attempt are rejected.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    terminate_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # YYYY-MM-DD in the task's zone (services/common/run_params.py); None for runs from before it.
    logical_date: Mapped[str | None] = mapped_column(String(10))
    # This run's parameters, merged over the task's config; None = none.
    params: Mapped[dict[str, Any] | None] = mapped_column(JsonDict)
    # The backfill that made this run (trigger "backfill").
    backfill_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # The run this one reruns (POST /executions/{id}/rerun): the attempts of one run are linked.
    rerun_of_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # Who asked for this run (manual triggers) and who terminated it; "" for the scheduler.
    triggered_by: Mapped[str] = mapped_column(String(64), default="")
    terminated_by: Mapped[str] = mapped_column(String(64), default="")
    # A mark on how the run was made, shown in the history (a fire beyond its calendar's data:
    # 日历数据未覆盖, services/common/calendars.py); None = none.
    note: Mapped[str | None] = mapped_column(String(200))
    # The W3C traceparent of the trigger that made it (with tracing on; a retry keeps its failed
    # run's): every scheduler that drives the run continues it. NULL otherwise.
    traceparent: Mapped[str | None] = mapped_column(String(64))
    # Its counts and duration are in the daily aggregates (ExecutionDailyRow; store.retention):
    # statistics read only the unsealed runs one by one. Set once, on an ended run.
    sealed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class BackfillRow(Base):
    """One backfill: the planned times of a date range, run at most `max_parallel` at once by the
    scheduler; its runs are the executions with this `backfill_id`."""

    __tablename__ = "zq_task_backfills"
    __table_args__ = NO_ID_REUSE

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(
        ForeignKey("zq_task_scheduled_tasks.id", ondelete="CASCADE"), index=True
    )
    # The range as asked, YYYY-MM-DD inclusive, in the task's time zone.
    start_date: Mapped[str] = mapped_column(String(10))
    end_date: Mapped[str] = mapped_column(String(10))
    max_parallel: Mapped[int] = mapped_column(Integer)
    rerun_succeeded: Mapped[bool] = mapped_column(Boolean, default=False)
    params: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    # The planned times to run (RFC 3339 UTC strings, oldest first), fixed when it was created.
    planned: Mapped[list[str]] = mapped_column(JsonDict, default=list)
    # Planned times left out because they already had a successful run.
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    # running | success | failed | cancelled.
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    # The W3C traceparent of the call that asked for it (with tracing on): its runs join that trace.
    traceparent: Mapped[str | None] = mapped_column(String(64))


class ExecutionLogChunkRow(Base):
    """A piece of a run's log (append-only): `data` holds the log's bytes from `offset` on. Chunks
    of one execution follow each other without gaps or overlaps; they go with their execution."""

    __tablename__ = "zq_task_execution_logs"

    execution_id: Mapped[int] = mapped_column(
        ForeignKey("zq_task_task_executions.id", ondelete="CASCADE"), primary_key=True
    )
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserRow(Base):
    __tablename__ = "zq_task_users"
    __table_args__ = NO_ID_REUSE

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # In every token; a password or role change, disabling or deleting bumps it (old tokens die).
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The previous release's per-username lockout, replaced by LoginFailureRow: never read here, and
    # written only with its neutral value (a new user) while that release may still run on this
    # schema (a rolling update, a rollback). A later release's migration drops both
    # (docs/migrations.md, expand then contract).
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SessionRow(Base):
    """One login: its refresh tokens form a family; only the newest (`refresh_jti`) may be used."""

    __tablename__ = "zq_task_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("zq_task_users.id", ondelete="CASCADE"), index=True)
    refresh_jti: Mapped[str] = mapped_column(String(32))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginFailureRow(Base):
    """Failed logins of one username (existing or not) from one client address, and its lock."""

    __tablename__ = "zq_task_login_failures"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SchedulerLeaderRow(Base):
    """The one row (id 1) saying which scheduler instance leads, until when, in which term."""

    __tablename__ = "zq_task_scheduler_leader"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), default="")
    term: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the holder took its term, and last renewed it (a renewal needs the scheduler's
    # acknowledgement, so it proves the leader alive then); None before the first election.
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The executors as the leader last reported them (store/leadership.py).
    executors: Mapped[list[dict[str, Any]]] = mapped_column(JsonDict, default=list)


class AuditRow(Base):
    """One change made through the API: who, from where, what, on what; written in the change's
    own transaction (store/audit.py)."""

    __tablename__ = "zq_task_audit_log"
    __table_args__ = (Index("ix_zq_audit_target", "target_type", "target_id"), NO_ID_REUSE)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    # The client address the gateway saw (x-zq-client-address), else the gRPC peer.
    address: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    target_name: Mapped[str] = mapped_column(String(100))
    # {field: [before, after]} for updates; the fields set for creates; {} otherwise.
    changes: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)


class AlertChannelRow(Base):
    """Where alerts go. `config` is what the API shows back; `secret` the write-only part
    (password, signing secret), Fernet-encrypted JSON (services/registry/alerts/secrets.py)."""

    __tablename__ = "zq_task_alert_channels"
    __table_args__ = NO_ID_REUSE

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    secret: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertRuleRow(Base):
    """Which events of which tasks (all: task_id None) alert which channels, at most how often."""

    __tablename__ = "zq_task_alert_rules"
    __table_args__ = NO_ID_REUSE

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("zq_task_scheduled_tasks.id", ondelete="CASCADE"), index=True
    )
    events: Mapped[list[str]] = mapped_column(JsonDict, default=list)
    channel_ids: Mapped[list[int]] = mapped_column(JsonDict, default=list)
    slow_seconds: Mapped[int] = mapped_column(Integer, default=0)
    rate_limit_count: Mapped[int] = mapped_column(Integer, default=10)
    rate_limit_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertDeliveryRow(Base):
    """The outbox: one message for one channel, written in the transaction of the event it tells
    of, delivered (at least once) by the scheduler leader's housekeeping."""

    __tablename__ = "zq_task_alert_deliveries"
    __table_args__ = (Index("ix_zq_alert_due", "state", "next_attempt_at"), NO_ID_REUSE)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # "{event}:{execution_id}:{channel_id}": an event alerts a channel once, however many rules name it.
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    event: Mapped[str] = mapped_column(String(32))
    rule_id: Mapped[int | None] = mapped_column(Integer, index=True)
    channel_id: Mapped[int] = mapped_column(Integer, index=True)
    task_id: Mapped[int | None] = mapped_column(Integer)
    execution_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    # pending -> sent | failed (gave up) | suppressed (rate limit) -> digested (told in a digest).
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class AlertAttemptRow(Base):
    """Every try of a delivery, successful or not."""

    __tablename__ = "zq_task_alert_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("zq_task_alert_deliveries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str] = mapped_column(Text, default="")


class ExecutionDailyRow(Base):
    """The sealed runs (ExecutionRow.sealed), purged or not: per task, UTC day (of their start) and
    status, how many there were and their total duration, so statistics read these few rows
    instead of the history, and stay correct when runs are purged."""

    __tablename__ = "zq_task_execution_daily"

    task_id: Mapped[int] = mapped_column(
        ForeignKey("zq_task_scheduled_tasks.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    # Of the runs with a duration (those that ran): their number and their total seconds.
    timed_runs: Mapped[int] = mapped_column(Integer, default=0)
    duration_total: Mapped[float] = mapped_column(Float, default=0.0)

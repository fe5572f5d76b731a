"""Typed SQLAlchemy models. Table names of tasks and executions are the user guide's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.registry.db import UTCDateTime, utcnow

JsonDict = JSON().with_variant(JSONB(), "postgresql")

TASK_TYPES = ("example_task", "manual_task", "common_task", "workflow")
EXECUTION_STATUSES = ("pending", "running", "success", "failed", "terminated", "skipped")
ACTIVE_STATUSES = ("pending", "running")
FINISHED_STATUSES = ("success", "failed", "terminated", "skipped")
TRIGGERS = ("schedule", "manual", "retry", "workflow")
CONCURRENCY_POLICIES = ("forbid", "allow", "replace")
MISFIRE_POLICIES = ("run_once", "skip")


class Base(DeclarativeBase):
    pass


# Ids are never reused (SQLite would reuse the highest deleted id without AUTOINCREMENT).
NO_ID_REUSE = {"sqlite_autoincrement": True}


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
    concurrency_policy: Mapped[str] = mapped_column(String(16), default="forbid")
    misfire_policy: Mapped[str] = mapped_column(String(16), default="run_once")
    misfire_grace_seconds: Mapped[int] = mapped_column(Integer, default=60)
    # Interval schedules fire at anchor + k * interval (k >= 1); it moves only when the schedule
    # is redefined or the task is enabled, so restarts and manual triggers keep the phase.
    schedule_anchor: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class ExecutionRow(Base):
    __tablename__ = "zq_task_task_executions"
    __table_args__ = (
        Index("ix_zq_exec_task_id_id", "task_id", "id"),
        Index("ix_zq_exec_status_id", "status", "id"),
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


class UserRow(Base):
    __tablename__ = "zq_task_users"
    __table_args__ = NO_ID_REUSE

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SchedulerLeaderRow(Base):
    """The one row (id 1) saying which scheduler instance leads, until when, in which term."""

    __tablename__ = "zq_task_scheduler_leader"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), default="")
    term: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

"""The audit log: who changed what through the API, from where, and how.

Every entry is written in the transaction of the change it describes, so it commits or rolls back
with it: a refused change leaves no entry, and no change goes unrecorded. It is one Core INSERT,
sent at once (the ORM's unit of work costs a manual trigger, whose path is timed, a third of a
millisecond); the creates of a group or a batch send their entries as one statement. An entry
names its actor (the token's user), the client address the gateway saw, an action (`Action`), the
target (a task, an execution, a user, an alert channel or rule, by id or username and by name)
and, for updates, the fields that changed as `{field: [before, after]}` (a password is recorded
as changed, never its hash). Reading the log is for admins (the servicer checks); it is paged
newest first and filtered by actor, action and target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from services.common.errors import InvalidArgument, Reason
from services.common.input_checks import check_text, shown
from services.registry.models import AuditRow

AUDIT: Table = AuditRow.__table__  # type: ignore[assignment]
_INSERT_ENTRY = insert(AUDIT)


class Action(StrEnum):
    TASK_CREATE = "task.create"
    TASK_UPDATE = "task.update"
    TASK_DELETE = "task.delete"
    TASK_ENABLE = "task.enable"
    TASK_DISABLE = "task.disable"
    TASK_PAUSE = "task.pause"
    TASK_RESUME = "task.resume"
    TASK_TRIGGER = "task.trigger"
    EXECUTION_TERMINATE = "execution.terminate"
    USER_CREATE = "user.create"
    USER_UPDATE = "user.update"
    USER_DELETE = "user.delete"
    USER_UNLOCK = "user.unlock"
    # A login that issued a session, and one refused (wrong password, or a disabled user).
    USER_LOGIN = "user.login"
    USER_LOGIN_FAILED = "user.login_failed"
    ALERT_CHANNEL_CREATE = "alert_channel.create"
    ALERT_CHANNEL_UPDATE = "alert_channel.update"
    ALERT_CHANNEL_DELETE = "alert_channel.delete"
    ALERT_CHANNEL_TEST = "alert_channel.test"
    ALERT_RULE_CREATE = "alert_rule.create"
    ALERT_RULE_UPDATE = "alert_rule.update"
    ALERT_RULE_DELETE = "alert_rule.delete"


class Target(StrEnum):
    TASK = "task"
    EXECUTION = "execution"
    USER = "user"
    ALERT_CHANNEL = "alert_channel"
    ALERT_RULE = "alert_rule"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change and from which client address."""

    username: str
    address: str


MAX_NAME = 100
MAX_PAGE = 500


def record(session: Session, *entries: dict[str, Any]) -> None:
    """Writes entries (`entry`) in one statement: one change's, or a group's or a batch's creates."""
    if entries:
        session.execute(_INSERT_ENTRY, entries[0] if len(entries) == 1 else list(entries))


def entry(
    actor: Actor,
    action: Action,
    target: Target,
    target_id: int | str,
    now: datetime,
    *,
    name: str = "",
    changes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The values of one entry, for `record`."""
    return {
        "at": now,
        "actor": actor.username[:64],
        "address": actor.address[:64],
        "action": action,
        "target_type": target,
        "target_id": str(target_id),
        "target_name": name[:MAX_NAME],
        "changes": dict(changes or {}),
    }


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """{field: [before, after]} for each field whose value differs."""
    return {name: [before.get(name), value] for name, value in after.items() if before.get(name) != value}


@dataclass(frozen=True, slots=True)
class AuditQuery:
    skip: int = 0
    limit: int = 50
    actor: str = ""
    action: str = ""
    target_type: str = ""
    target_id: str = ""


def list_entries(session: Session, query: AuditQuery) -> tuple[list[AuditRow], int]:
    """A page of entries, newest first, and how many match."""
    if query.skip < 0:
        raise InvalidArgument("skip 不能为负数", reason=Reason.PAGE_INVALID)
    if not 1 <= query.limit <= MAX_PAGE:
        raise InvalidArgument(f"limit 必须在1到{MAX_PAGE}之间", reason=Reason.PAGE_INVALID)
    statement = select(AuditRow)
    if query.actor:
        check_text(query.actor, "actor", 64, reason=Reason.FILTER_INVALID)
        statement = statement.where(AuditRow.actor == query.actor)
    if query.action:
        if query.action not in set(Action):
            choices = ", ".join(Action)
            raise InvalidArgument(
                f"无效的操作: {shown(query.action)}，支持: {choices}", reason=Reason.FILTER_INVALID
            )
        statement = statement.where(AuditRow.action == query.action)
    if query.target_type:
        if query.target_type not in set(Target):
            choices = ", ".join(Target)
            raise InvalidArgument(
                f"无效的对象类型: {shown(query.target_type)}，支持: {choices}", reason=Reason.FILTER_INVALID
            )
        statement = statement.where(AuditRow.target_type == query.target_type)
    if query.target_id:
        check_text(query.target_id, "target_id", 64, reason=Reason.FILTER_INVALID)
        statement = statement.where(AuditRow.target_id == query.target_id)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(statement.order_by(AuditRow.id.desc()).offset(query.skip).limit(query.limit))
    return list(rows), total

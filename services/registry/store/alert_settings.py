"""Alert channels and rules: their checks and CRUD (the admin's settings).

What they make happen, the outbox of messages and its delivery history, is store.alerts. Secrets
of a channel are stored encrypted (alerts.secrets) and never returned; the audit log sees only
which secret fields changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, Reason
from services.common.input_checks import check_text
from services.common.vocabulary import AlertChannelType, AlertEvent, listed, word_of
from services.registry.alerts.channels import SECRET_FIELDS, channel_type, check_config
from services.registry.alerts.secrets import SecretBox
from services.registry.db import locked
from services.registry.models import AlertChannelRow, AlertRuleRow, TaskRow
from services.registry.store.tasks import task_not_found

MAX_NAME = 100
MAX_RATE_LIMIT_SECONDS = 7 * 24 * 3600


# ---- channels ---------------------------------------------------------------------------------


def channel_not_found(channel_id: int) -> NotFound:
    return NotFound(f"告警渠道 {channel_id} 不存在", reason=Reason.ALERT_CHANNEL_NOT_FOUND)


def _check_name(name: str, reason: Reason) -> str:
    name = name.strip()
    if not name:
        raise InvalidArgument("name 不能为空", reason=reason)
    return check_text(name, "name ", MAX_NAME, reason=reason)


def get_channel(session: Session, channel_id: int) -> AlertChannelRow:
    row = session.get(AlertChannelRow, channel_id)
    if row is None:
        raise channel_not_found(channel_id)
    return row


def list_channels(session: Session) -> list[AlertChannelRow]:
    return list(session.scalars(select(AlertChannelRow).order_by(AlertChannelRow.id)))


def save_channel(
    session: Session,
    box: SecretBox,
    name: str,
    kind: str,
    config: dict[str, Any],
    now: datetime,
    channel_id: int = 0,
) -> AlertChannelRow:
    """Creates the channel (channel_id 0) or replaces one's config. Secrets left out of an update
    (or given as "") keep their stored values: the API never shows them, so a form cannot send them
    back. A secret given as null is removed; a change of type drops the old type's secrets."""
    name = _check_name(name, Reason.ALERT_CHANNEL_INVALID)
    channel_kind = channel_type(kind)
    public, secrets = check_config(channel_kind, config)
    row = get_channel(session, channel_id) if channel_id else AlertChannelRow(created_at=now, secret="")
    if channel_id and row.type == channel_kind:
        cleared = {
            field for field in SECRET_FIELDS[channel_kind] if field in config and config[field] is None
        }
        kept = {field: value for field, value in box.open(row.secret).items() if field not in cleared}
        secrets = {**kept, **secrets}
    taken = session.scalar(
        select(AlertChannelRow.id).where(AlertChannelRow.name == name, AlertChannelRow.id != channel_id)
    )
    if taken is not None:
        raise AlreadyExists(f"告警渠道名称已存在: {name}", reason=Reason.ALERT_CHANNEL_NAME_TAKEN)
    row.name, row.type, row.config, row.updated_at = name, channel_kind, public, now
    row.secret = box.seal(secrets)
    if not channel_id:
        session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # the same name committed meanwhile (the check above read before)
        raise AlreadyExists(f"告警渠道名称已存在: {name}", reason=Reason.ALERT_CHANNEL_NAME_TAKEN) from exc
    return row


def channel_audit_values(box: SecretBox, row: AlertChannelRow) -> dict[str, Any]:
    """What the audit log compares of a channel: name, type, each public config field on its own
    (a long CA certificate is then not repeated when only the URL changed) and the names of the
    stored secrets, never their values."""
    values: dict[str, Any] = {"name": row.name, "type": row.type}
    values.update({f"config.{key}": value for key, value in sorted(row.config.items())})
    values["secrets_set"] = secret_fields_set(box, row)
    return values


def secrets_given(kind: str, config: dict[str, Any]) -> list[str]:
    """The secret fields an update sets (a new value, whatever it is): the audit says "changed"."""
    known = word_of(AlertChannelType, kind)
    fields = SECRET_FIELDS[known] if known is not None else ()
    return [field for field in fields if isinstance(config.get(field), str) and config[field]]


def secret_fields_set(box: SecretBox, row: AlertChannelRow) -> list[str]:
    """Which secret fields a channel has (their names only, never their values)."""
    try:
        return sorted(box.open(row.secret))
    except Exception:  # a key changed since: the names are unknown, the channel still listed
        return []


def delete_channel(session: Session, channel_id: int) -> None:
    # Locked first (PostgreSQL): a rule naming the channel in a transaction still open holds it
    # (`_check_rule`); once that commits, the check below sees the rule.
    if locked(session, AlertChannelRow, channel_id) is None:
        raise channel_not_found(channel_id)
    users = [rule.name for rule in session.scalars(select(AlertRuleRow)) if channel_id in rule.channel_ids]
    if users:
        raise Conflict(
            f"告警渠道 {channel_id} 仍被规则使用: {', '.join(users)}", reason=Reason.ALERT_CHANNEL_IN_USE
        )
    session.execute(delete(AlertChannelRow).where(AlertChannelRow.id == channel_id))


# ---- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleInput:
    name: str
    events: Sequence[str]
    channel_ids: Sequence[int]
    task_id: int = 0
    slow_seconds: int = 0
    rate_limit_count: int = 10
    rate_limit_seconds: int = 3600
    enabled: bool = True


def rule_not_found(rule_id: int) -> NotFound:
    return NotFound(f"告警规则 {rule_id} 不存在", reason=Reason.ALERT_RULE_NOT_FOUND)


def _rule_invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason=Reason.ALERT_RULE_INVALID)


def _check_rule(session: Session, rule: RuleInput) -> None:
    if not rule.events:
        raise _rule_invalid(f"events 至少需要一个事件，支持: {listed(AlertEvent)}")
    bad = [event for event in rule.events if word_of(AlertEvent, event) is None]
    if bad:
        raise _rule_invalid(f"未知的告警事件: {', '.join(map(str, bad))}，支持: {listed(AlertEvent)}")
    if not rule.channel_ids:
        raise _rule_invalid("channel_ids 至少需要一个告警渠道")
    # The channels and the task are read FOR SHARE (PostgreSQL): a delete of one waits for this
    # rule to commit (and then finds the rule using the channel, or deletes the task's rules with
    # it), or commits first and the rule is refused. Never a rule naming a channel that is gone.
    shared = select(AlertChannelRow.id).where(AlertChannelRow.id.in_(rule.channel_ids))
    known = set(session.scalars(shared.with_for_update(read=True)))
    missing = [str(channel) for channel in rule.channel_ids if channel not in known]
    if missing:
        raise _rule_invalid(f"告警渠道不存在: {', '.join(missing)}")
    if rule.task_id and locked(session, TaskRow, rule.task_id, shared=True) is None:
        raise task_not_found(rule.task_id)
    if AlertEvent.SLOW in rule.events and rule.slow_seconds <= 0:
        raise _rule_invalid("slow 事件需要 slow_seconds（正整数，秒）")
    if rule.slow_seconds < 0:
        raise _rule_invalid("slow_seconds 不能为负数")
    if not 1 <= rule.rate_limit_count <= 10000:
        raise _rule_invalid("rate_limit_count 必须在1到10000之间")
    if not 1 <= rule.rate_limit_seconds <= MAX_RATE_LIMIT_SECONDS:
        raise _rule_invalid(f"rate_limit_seconds 必须在1到{MAX_RATE_LIMIT_SECONDS}之间")


def get_rule(session: Session, rule_id: int) -> AlertRuleRow:
    row = session.get(AlertRuleRow, rule_id)
    if row is None:
        raise rule_not_found(rule_id)
    return row


def list_rules(session: Session, task_id: int = 0) -> list[AlertRuleRow]:
    query = select(AlertRuleRow).order_by(AlertRuleRow.id)
    if task_id:
        query = query.where(AlertRuleRow.task_id == task_id)
    return list(session.scalars(query))


def save_rule(session: Session, rule: RuleInput, now: datetime, rule_id: int = 0) -> AlertRuleRow:
    name = _check_name(rule.name, Reason.ALERT_RULE_INVALID)
    _check_rule(session, rule)
    row = get_rule(session, rule_id) if rule_id else AlertRuleRow(created_at=now)
    taken = session.scalar(
        select(AlertRuleRow.id).where(AlertRuleRow.name == name, AlertRuleRow.id != rule_id)
    )
    if taken is not None:
        raise AlreadyExists(f"告警规则名称已存在: {name}", reason=Reason.ALERT_RULE_NAME_TAKEN)
    row.name = name
    row.events = [str(AlertEvent(event)) for event in dict.fromkeys(rule.events)]
    row.channel_ids = list(dict.fromkeys(rule.channel_ids))
    row.task_id = rule.task_id or None
    row.slow_seconds = rule.slow_seconds
    row.rate_limit_count = rule.rate_limit_count
    row.rate_limit_seconds = rule.rate_limit_seconds
    row.enabled = rule.enabled
    if not rule_id:
        session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # the same name committed meanwhile (its task is held: not a key)
        raise AlreadyExists(f"告警规则名称已存在: {name}", reason=Reason.ALERT_RULE_NAME_TAKEN) from exc
    return row


def rule_audit_values(row: AlertRuleRow) -> dict[str, Any]:
    """What the audit log compares of a rule."""
    return {
        "name": row.name,
        "events": list(row.events),
        "channel_ids": list(row.channel_ids),
        "task_id": row.task_id or 0,
        "slow_seconds": row.slow_seconds,
        "rate_limit_count": row.rate_limit_count,
        "rate_limit_seconds": row.rate_limit_seconds,
        "enabled": row.enabled,
    }


def delete_rule(session: Session, rule_id: int) -> None:
    get_rule(session, rule_id)
    session.execute(delete(AlertRuleRow).where(AlertRuleRow.id == rule_id))

"""Alert settings edited at once (PostgreSQL, two transactions): a rule never names a channel that
is gone, whichever of the rule's save and the channel's delete commits first, and a name taken by
a transaction that commits meanwhile is refused as taken, not a 500. SQLite runs such edits one
after the other (serialized transactions).

Each test holds one transaction open and runs the other in a thread (tests/unit/registry/races.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.common.errors import Reason
from services.registry.alerts.secrets import SecretBox
from services.registry.db import Database
from services.registry.models import AlertRuleRow
from services.registry.store import alert_settings
from tests.unit.registry.races import InThread, wait_until_waiting_on

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
BOX = SecretBox(SecretBox.new_key())


def new_channel(db: Database, name: str) -> int:
    with db.session() as session:
        config = {"url": "http://127.0.0.1:9/hook"}
        return alert_settings.save_channel(session, BOX, name, "webhook", config, NOW).id


def rule(name: str, channel_id: int) -> alert_settings.RuleInput:
    return alert_settings.RuleInput(name=name, events=["run_failed"], channel_ids=[channel_id])


def rules_named(db: Database, name: str) -> list[list[int]]:
    with db.session() as session:
        rows = session.query(AlertRuleRow).filter(AlertRuleRow.name == name).all()
        return [list(row.channel_ids) for row in rows]


def test_a_channel_delete_waits_for_a_rule_being_saved_with_it_and_then_finds_the_rule(pg: Database) -> None:
    channel = new_channel(pg, "ops_a")
    with pg.session() as session:
        alert_settings.save_rule(session, rule("rule_a", channel), NOW)
        delete = InThread(pg, lambda other: alert_settings.delete_channel(other, channel))
        wait_until_waiting_on(pg, "zq_task_alert_channels")
    delete.join()
    assert delete.error is not None and delete.error.reason == Reason.ALERT_CHANNEL_IN_USE
    assert rules_named(pg, "rule_a") == [[channel]]


def test_a_rule_saved_with_a_channel_being_deleted_waits_and_is_then_refused(pg: Database) -> None:
    channel = new_channel(pg, "ops_b")
    with pg.session() as session:
        alert_settings.delete_channel(session, channel)
        save = InThread(pg, lambda other: alert_settings.save_rule(other, rule("rule_b", channel), NOW))
        wait_until_waiting_on(pg, "zq_task_alert_channels")
    save.join()
    assert save.error is not None and save.error.reason == Reason.ALERT_RULE_INVALID
    assert "告警渠道不存在" in save.error.message
    assert rules_named(pg, "rule_b") == []


def test_a_rule_name_taken_by_a_save_committing_meanwhile_is_refused_as_taken(pg: Database) -> None:
    channel = new_channel(pg, "ops_c")
    with pg.session() as session:
        alert_settings.save_rule(session, rule("rule_c", channel), NOW)
        second = InThread(pg, lambda other: alert_settings.save_rule(other, rule("rule_c", channel), NOW))
        wait_until_waiting_on(pg, "zq_task_alert_rules")  # at the unique index
    second.join()
    assert second.error is not None and second.error.reason == Reason.ALERT_RULE_NAME_TAKEN
    assert rules_named(pg, "rule_c") == [[channel]]


def test_a_channel_name_taken_by_a_save_committing_meanwhile_is_refused_as_taken(pg: Database) -> None:
    with pg.session() as session:
        alert_settings.save_channel(session, BOX, "ops_d", "webhook", {"url": "http://127.0.0.1:9/a"}, NOW)
        second = InThread(
            pg,
            lambda other: alert_settings.save_channel(
                other, BOX, "ops_d", "webhook", {"url": "http://127.0.0.1:9/b"}, NOW
            ),
        )
        wait_until_waiting_on(pg, "zq_task_alert_channels")
    second.join()
    assert second.error is not None and second.error.reason == Reason.ALERT_CHANNEL_NAME_TAKEN

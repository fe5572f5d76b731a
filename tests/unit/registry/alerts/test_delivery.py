"""The outbox and its delivery passes against real receivers (an HTTP server checking each robot's
signature, an SMTP server requiring a login), on both backends, with a clock the tests move."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services.common.auth import TokenService, load_or_create_keys
from services.common.errors import DomainError, Reason
from services.registry.alerts import delivery
from services.registry.alerts.secrets import SecretBox
from services.registry.app import RegistryApp
from services.registry.db import Database, utcnow
from services.registry.models import AlertChannelRow, AlertDeliveryRow, ExecutionRow, TaskRow
from services.registry.runs.model import NewRun
from services.registry.runs.recorder import RunRecorder
from services.registry.settings import RegistrySettings
from services.registry.store import alert_settings, run_ends
from services.registry.store import alerts as store
from services.registry.store import executions as exec_store
from services.registry.store import tasks as task_store
from tests.receivers import HttpReceiver, SmtpReceiver, http_receiver, smtp_receiver
from tests.unit.registry.store.test_executions import running

SECRET = "robot-secret"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(db: Database, tmp_path: Path, clock: Clock) -> RegistryApp:
    settings = RegistrySettings.from_env(
        {
            "ZQ_SERVICE_TOKEN": "t",
            "ZQ_DATA_DIR": str(tmp_path),
            "ZQ_ALERT_KEY": SecretBox.new_key(),
            "ZQ_PUBLIC_URL": "http://zq.example.com/",
            "ZQ_ALERT_RETRY_MAX_SECONDS": "5",
        }
    )
    keys = load_or_create_keys(settings.jwt_key_path, settings.jwks_path)
    return RegistryApp.create(settings, db, TokenService(keys, 3600, 3600), clock=clock)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver(SECRET) as running:
        yield running


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with smtp_receiver() as running:
        yield running


def channel(app: RegistryApp, kind: str, config: dict[str, Any]) -> int:
    def save(session: Any) -> int:
        row = alert_settings.save_channel(
            session, app.secrets, f"{kind}_{uuid.uuid4().hex[:8]}", kind, config, app.clock()
        )
        return row.id

    with app.db.session() as session:
        return save(session)


def rule(
    app: RegistryApp,
    channels: list[int],
    events: list[str],
    rate_limit_count: int = 10,
    rate_limit_seconds: int = 3600,
) -> int:
    with app.db.session() as session:
        row = alert_settings.save_rule(
            session,
            alert_settings.RuleInput(
                name=f"rule_{uuid.uuid4().hex[:8]}",
                events=events,
                channel_ids=channels,
                rate_limit_count=rate_limit_count,
                rate_limit_seconds=rate_limit_seconds,
            ),
            app.clock(),
        )
        return row.id


def failed_runs(app: RegistryApp, count: int = 1) -> list[ExecutionRow]:
    """Runs of a new task (no retries, in Asia/Shanghai) that failed now: their ends wrote the outbox."""
    rows = running(app.db, count)
    now = app.clock()
    with app.db.session() as session:
        task = session.get(TaskRow, rows[0].task_id)
        assert task is not None
        task.timezone = "Asia/Shanghai"
        ends = [
            run_ends.RunEnd(row.id, row.attempt, "failed", {}, "exit code 3", started=now) for row in rows
        ]
        return [run.row for run in run_ends.end_runs(session, ends, now)]


def deliveries(app: RegistryApp) -> list[AlertDeliveryRow]:
    with app.db.session() as session:
        return list(session.scalars(select(AlertDeliveryRow).order_by(AlertDeliveryRow.id)))


def test_a_final_failure_reaches_every_kind_of_channel_once_with_valid_signatures(
    app: RegistryApp, receiver: HttpReceiver, smtp: SmtpReceiver
) -> None:
    channels = [
        channel(app, "webhook", {"url": receiver.url("/webhook"), "secret": SECRET}),
        channel(app, "dingtalk", {"url": receiver.url("/dingtalk?access_token=abc"), "secret": SECRET}),
        channel(app, "wecom", {"url": receiver.url("/wecom?key=abc")}),
        channel(app, "feishu", {"url": receiver.url("/feishu/hook"), "secret": SECRET, "language": "en"}),
        channel(
            app,
            "email",
            {
                "smtp_url": f"smtp://127.0.0.1:{smtp.port}",
                "username": smtp.username,
                "password": smtp.password,
                "from": "zq@example.com",
                "to": ["ops@example.com"],
            },
        ),
    ]
    rule(app, channels, ["run_failed"])
    [run] = failed_runs(app)

    assert delivery.deliver_due(app).sent == 5
    assert delivery.deliver_due(app).sent == 0  # nothing twice
    assert len(receiver.messages()) == 4 and all(item.signed for item in receiver.messages())
    [webhook] = receiver.messages("/webhook")
    assert {
        k: webhook.body[k] for k in ("event", "task_id", "execution_id", "status", "error_message", "url")
    } == {
        "event": "run_failed",
        "task_id": run.task_id,
        "execution_id": run.id,
        "status": "failed",
        "error_message": "exit code 3",
        "url": f"http://zq.example.com/admin/scheduler/?task={run.task_id}&execution={run.id}",
    }
    assert webhook.body["time"].endswith("+08:00")  # the task's own zone
    assert "任务执行失败" in receiver.messages("/dingtalk")[0].body["markdown"]["title"]
    assert "Run failed" in receiver.messages("/feishu")[0].body["content"]["text"]
    [mail] = smtp.messages
    assert "exit code 3" in mail.get_payload() and mail["To"] == "ops@example.com"
    assert {row.state for row in deliveries(app)} == {"sent"}


def test_a_receiver_that_is_down_gets_the_message_once_it_is_back(
    app: RegistryApp, receiver: HttpReceiver, clock: Clock
) -> None:
    webhook = channel(app, "webhook", {"url": receiver.url("/webhook"), "secret": SECRET})
    rule(app, [webhook], ["run_failed"])
    failed_runs(app)
    receiver.down = True
    for _ in range(3):
        delivery.deliver_due(app)
        clock.now += timedelta(seconds=10)
    assert receiver.messages() == []
    receiver.down = False
    delivery.deliver_due(app)
    clock.now += timedelta(seconds=10)
    delivery.deliver_due(app)
    assert len(receiver.messages()) == 1
    [row] = deliveries(app)
    assert (row.state, row.attempts) == ("sent", 4)
    with app.db.session() as session:
        attempts = store.attempts_of(session, [row.id])[row.id]
    assert [attempt.ok for attempt in attempts] == [False, False, False, True]


def test_a_task_failing_again_and_again_sends_the_rate_limit_then_one_digest(
    app: RegistryApp, receiver: HttpReceiver, clock: Clock
) -> None:
    webhook = channel(app, "webhook", {"url": receiver.url("/webhook"), "secret": SECRET})
    rule(app, [webhook], ["run_failed"], rate_limit_count=2, rate_limit_seconds=60)
    for _ in range(10):
        failed_runs(app)
        delivery.deliver_due(app)
        clock.now += timedelta(seconds=1)
    assert [item.body["event"] for item in receiver.messages()] == ["run_failed", "run_failed"]
    clock.now += timedelta(seconds=60)
    delivery.deliver_due(app)
    delivery.deliver_due(app)
    events = [item.body["event"] for item in receiver.messages()]
    assert events == ["run_failed", "run_failed", "digest"]
    digest = receiver.messages()[-1].body
    assert digest["count"] == 8 and "8" in digest["text"]
    assert sorted(row.state for row in deliveries(app)).count("digested") == 8


def test_an_end_rolled_back_leaves_no_alert_and_two_rules_on_one_channel_alert_once(
    app: RegistryApp, receiver: HttpReceiver
) -> None:
    webhook = channel(app, "webhook", {"url": receiver.url("/webhook")})
    rule(app, [webhook], ["run_failed"])
    rule(app, [webhook], ["run_failed", "attempt_failed"])

    class Abort(Exception):
        pass

    failed_runs(app)
    assert [row.event for row in deliveries(app)] == ["run_failed", "attempt_failed"]
    now = app.clock()
    with pytest.raises(Abort), app.db.session() as session:
        task = task_store.create_task(
            session,
            {"name": "rolled_back", "task_type": "example_task", "max_retries": 0},
            "admin",
            "UTC",
            now,
        )
        row, _ = exec_store.create_execution(
            session, exec_store.NewExecution(task_id=task.id, trigger="manual", scheduled_time=now), now
        )
        run_ends.end_runs(session, [run_ends.RunEnd(row.id, row.attempt, "failed", {}, "boom")], now)
        assert session.scalar(select(func.count()).select_from(AlertDeliveryRow)) == 4
        raise Abort
    assert len(deliveries(app)) == 2


@pytest.mark.parametrize(
    ("kind", "config", "reason"),
    [
        (
            "email",
            {"smtp_url": "mailto:ops@example.com", "to": ["ops@example.com"]},
            Reason.ALERT_CHANNEL_INVALID,
        ),
        ("webhook", {"url": "ftp://hooks.example.com"}, Reason.ALERT_CHANNEL_INVALID),
        ("pager", {"url": "https://hooks.example.com"}, Reason.ALERT_CHANNEL_INVALID),
        (
            "webhook",
            {"url": "https://hooks.example.com", "template": "{nope}"},
            Reason.ALERT_TEMPLATE_INVALID,
        ),
    ],
)
def test_bad_channel_input_stores_nothing(
    app: RegistryApp, kind: str, config: dict[str, Any], reason: Reason
) -> None:
    with pytest.raises(DomainError) as caught, app.db.session() as session:
        alert_settings.save_channel(session, app.secrets, "bad", kind, config, app.clock())
    assert caught.value.reason == reason
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(AlertChannelRow)) == 0


def test_secrets_are_stored_encrypted_and_kept_when_an_update_leaves_them_out(app: RegistryApp) -> None:
    channel_id = channel(app, "webhook", {"url": "https://hooks.example.com/a", "secret": "s3cr3t-value"})
    with app.db.session() as session:
        row = alert_settings.get_channel(session, channel_id)
        assert "s3cr3t-value" not in row.secret and "s3cr3t-value" not in str(row.config)
        alert_settings.save_channel(
            session,
            app.secrets,
            row.name,
            "webhook",
            {"url": "https://hooks.example.com/b"},
            app.clock(),
            channel_id,
        )
    with app.db.session() as session:
        row = alert_settings.get_channel(session, channel_id)
        assert app.secrets.open(row.secret) == {"secret": "s3cr3t-value"}
        assert row.config["url"] == "https://hooks.example.com/b"


def test_an_update_removes_a_secret_given_as_null_and_a_new_type_drops_the_old_types_secrets(
    app: RegistryApp,
) -> None:
    channel_id = channel(app, "dingtalk", {"url": "https://oapi.example.com/robot", "secret": "one"})

    def update(kind: str, config: dict[str, Any]) -> dict[str, str]:
        with app.db.session() as session:
            row = alert_settings.save_channel(
                session, app.secrets, "robot", kind, config, app.clock(), channel_id
            )
            return app.secrets.open(row.secret)

    assert update("dingtalk", {"url": "https://oapi.example.com/robot", "secret": ""}) == {"secret": "one"}
    assert update("dingtalk", {"url": "https://oapi.example.com/robot", "secret": None}) == {}
    assert update("dingtalk", {"url": "https://oapi.example.com/robot", "secret": "two"}) == {"secret": "two"}
    assert update("feishu", {"url": "https://open.example.com/hook"}) == {}


def test_a_channel_still_named_by_a_rule_cannot_be_deleted(app: RegistryApp) -> None:
    channel_id = channel(app, "wecom", {"url": "https://hooks.example.com/w"})
    rule(app, [channel_id], ["skipped"])
    with pytest.raises(DomainError) as caught, app.db.session() as session:
        alert_settings.delete_channel(session, channel_id)
    assert caught.value.reason == Reason.ALERT_CHANNEL_IN_USE


async def test_skipped_runs_recorded_alone_or_in_a_batch_alert_once_each(
    app: RegistryApp, receiver: HttpReceiver
) -> None:
    webhook = channel(app, "webhook", {"url": receiver.url("/webhook/skipped"), "secret": SECRET})
    rule(app, [webhook], ["skipped"])
    task_id = running(app.db)[0].task_id
    now = app.clock()

    def skipped(key: str) -> NewRun:
        execution = exec_store.NewExecution(
            task_id=task_id,
            trigger="schedule",
            scheduled_time=now,
            status="skipped",
            error_message="overlap",
            dedup_key=key,
        )
        return NewRun(execution)

    recorder = RunRecorder(app)
    await recorder.create(skipped("s:alone"))
    await recorder.record([skipped("s:batch-1"), skipped("s:batch-2"), skipped("s:alone")])
    assert (await asyncio.to_thread(delivery.deliver_due, app)).sent == 3
    assert sorted(item.body["event"] for item in receiver.messages("/webhook/skipped")) == ["skipped"] * 3

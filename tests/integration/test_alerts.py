"""Failure alerts through the real stack (two schedulers, Envoy) on both backends, to a real SMTP
server and an HTTP receiver that verifies each channel's signature: REST input rules, write-only
secrets, exactly one message per channel for a run that failed after its retries, a receiver that
was down getting its message once back, and the test message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stack import Stack
from tests.conftest import BACKENDS
from tests.integration.api import Api, error, unique
from tests.integration.conftest import USER_PASSWORD, stack_on_backend
from tests.receivers import HttpReceiver, SmtpReceiver, http_receiver, smtp_receiver
from tests.waiting import wait_for

SECRET = "robot-signing-secret"
ALERTS = "/api/v1/alerts"
FAILING = {"command": ["sh", "-c", "echo boom >&2; exit 3"]}


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two schedulers (only the leader's housekeeping delivers), passes every 0.5 s, retries 1 s apart."""
    yield from stack_on_backend(
        request,
        tmp_path_factory,
        "alerts",
        executors=1,
        schedulers=2,
        extra_env={"ZQ_HOUSEKEEPING_SECONDS": "0.5", "ZQ_ALERT_RETRY_MAX_SECONDS": "1"},
    )


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver(SECRET) as running:
        yield running


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    with smtp_receiver() as running:
        yield running


def channel(admin: Api, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = admin.ok(
        "POST", f"{ALERTS}/channels", json={"name": unique(kind), "type": kind, "config": config}
    )
    return created


def failing_task(admin: Api, channel_ids: list[int], max_retries: int = 0) -> dict[str, Any]:
    task = admin.create_task(
        name=unique("alerted"),
        task_type="common_task",
        config=FAILING,
        max_retries=max_retries,
        retry_interval=1,
    )
    admin.ok(
        "POST",
        f"{ALERTS}/rules",
        json={
            "name": unique("rule"),
            "events": ["run_failed"],
            "channel_ids": channel_ids,
            "task_id": task["id"],
        },
    )
    return task


def deliveries(admin: Api, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = admin.ok("GET", f"{ALERTS}/deliveries", params=params)["deliveries"]
    return found


def test_bad_channel_input_is_a_400_with_its_reason_and_stores_nothing(admin: Api) -> None:
    before = admin.ok("GET", f"{ALERTS}/channels")["channels"]
    cases = [
        ("email", {"smtp_url": "http://mail.example.com", "to": ["a@example.com"]}, "ALERT_CHANNEL_INVALID"),
        ("webhook", {"url": "ftp://hooks.example.com/x"}, "ALERT_CHANNEL_INVALID"),
        ("pager", {"url": "https://hooks.example.com/x"}, "ALERT_CHANNEL_INVALID"),
        (
            "webhook",
            {"url": "https://hooks.example.com/x", "template": "{task_name"},
            "ALERT_TEMPLATE_INVALID",
        ),
        ("webhook", {"url": "https://hooks.example.com/x", "template": "{secret}"}, "ALERT_TEMPLATE_INVALID"),
    ]
    for kind, config, reason in cases:
        response = admin.post(
            f"{ALERTS}/channels", json={"name": unique("bad"), "type": kind, "config": config}
        )
        error(response, 400, reason=reason)
    assert admin.ok("GET", f"{ALERTS}/channels")["channels"] == before
    response = admin.post(
        f"{ALERTS}/rules", json={"name": unique("r"), "events": ["on_fire"], "channel_ids": [1]}
    )
    error(response, 400, reason="ALERT_RULE_INVALID")


def test_secrets_are_write_only_and_channels_are_for_admins(
    stack: Stack, admin: Api, receiver: HttpReceiver
) -> None:
    created = channel(admin, "webhook", {"url": receiver.url("/webhook"), "secret": SECRET})
    assert created["secrets_set"] == ["secret"] and "secret" not in created["config"]
    listing = admin.get(f"{ALERTS}/channels")
    assert SECRET not in listing.text
    admin.ok(
        "POST",
        "/api/v1/auth/users",
        json={"username": "alert_op", "password": USER_PASSWORD, "role": "operator"},
    )
    operator = Api.login(stack.http_url, "alert_op", USER_PASSWORD)
    error(operator.get(f"{ALERTS}/channels"), 403)
    assert operator.ok("GET", f"{ALERTS}/rules")["rules"] is not None


def test_a_run_failed_after_its_retries_alerts_each_channel_exactly_once_with_two_schedulers(
    admin: Api, receiver: HttpReceiver, smtp: SmtpReceiver
) -> None:
    # The receivers serve both backends' stacks: each test's channels have paths of their own.
    hook_path, robot_path = f"/webhook/{unique('once')}", f"/dingtalk/{unique('once')}"
    webhook = channel(admin, "webhook", {"url": receiver.url(hook_path), "secret": SECRET})
    dingtalk = channel(
        admin, "dingtalk", {"url": receiver.url(f"{robot_path}?access_token=t"), "secret": SECRET}
    )
    email = channel(
        admin,
        "email",
        {
            "smtp_url": f"smtp://127.0.0.1:{smtp.port}",
            "username": smtp.username,
            "password": smtp.password,
            "from": "zq@example.com",
            "to": ["oncall@example.com"],
            "language": "en",
        },
    )
    task = failing_task(admin, [webhook["id"], dingtalk["id"], email["id"]], max_retries=1)
    admin.ok("POST", f"/tasks/{task['id']}/trigger")

    def all_sent() -> list[dict[str, Any]] | None:
        found = deliveries(admin, task_id=task["id"])
        return found if len(found) == 3 and all(d["state"] == "sent" for d in found) else None

    sent = wait_for(all_sent, 60, "the three alerts to be sent")
    runs = admin.executions(task["id"])
    assert [run["status"] for run in runs] == ["failed", "failed"]  # the retry failed too
    assert {d["execution_id"] for d in sent} == {runs[0]["id"]}  # the final failure only
    [hook] = receiver.messages(hook_path)
    [robot] = receiver.messages(robot_path)
    assert hook.signed and robot.signed
    assert hook.body["task_name"] == task["name"] and hook.body["status"] == "failed"
    assert hook.body["url"].endswith(f"/admin/scheduler/?task={task['id']}&execution={runs[0]['id']}")
    mails = [mail for mail in smtp.messages if task["name"] in mail["Subject"]]
    assert len(mails) == 1 and "Run failed" in mails[0]["Subject"]
    assert all(d["attempts"] == 1 and d["attempt_log"][0]["ok"] for d in sent)


def test_a_receiver_that_was_down_gets_the_message_once_it_is_back(
    admin: Api, receiver: HttpReceiver
) -> None:
    path = f"/webhook/{unique('down')}"
    webhook = channel(admin, "webhook", {"url": receiver.url(path), "secret": SECRET})
    task = failing_task(admin, [webhook["id"]])
    receiver.down = True
    try:
        admin.ok("POST", f"/tasks/{task['id']}/trigger")
        wait_for(
            lambda: [d for d in deliveries(admin, task_id=task["id"]) if d["attempts"] >= 2],
            60,
            "two failed delivery attempts",
        )
        assert receiver.messages(path) == []
    finally:
        receiver.down = False
    [sent] = wait_for(lambda: deliveries(admin, task_id=task["id"], state="sent"), 60, "the delivery")
    assert "503" in sent["attempt_log"][0]["error"] and sent["attempt_log"][-1]["ok"]
    assert len(receiver.messages(path)) == 1


def test_a_test_message_reaches_the_channel_or_says_why_not(admin: Api, receiver: HttpReceiver) -> None:
    path = f"/feishu/{unique('test')}"
    feishu = channel(admin, "feishu", {"url": receiver.url(path), "secret": SECRET})
    answer = admin.ok("POST", f"{ALERTS}/channels/{feishu['id']}/test", json={})
    assert answer["ok"] is True and answer["error"] == ""
    [message] = receiver.messages(path)
    assert message.signed and "测试消息" in message.body["content"]["text"]
    closed = channel(admin, "wecom", {"url": "http://127.0.0.1:9/closed", "timeout_seconds": 2})
    answer = admin.ok("POST", f"{ALERTS}/channels/{closed['id']}/test", json={})
    assert answer["ok"] is False and answer["error"]
    [recorded] = [d for d in deliveries(admin, channel_id=closed["id"]) if d["id"] == answer["delivery_id"]]
    assert recorded["state"] == "failed" and recorded["event"] == "test"


def audit_of(admin: Api, target_type: str, target_id: int) -> list[dict[str, Any]]:
    """The target's audit entries, oldest first."""
    params = {"target_type": target_type, "target_id": str(target_id)}
    entries: list[dict[str, Any]] = admin.ok("GET", "/api/v1/audit", params=params)["entries"]
    return entries[::-1]


def test_editing_a_channel_keeps_the_secrets_it_leaves_out_and_every_change_is_audited(
    stack: Stack, admin: Api, receiver: HttpReceiver
) -> None:
    first, second = f"/webhook/{unique('edit')}", f"/webhook/{unique('edited')}"
    created = channel(admin, "webhook", {"url": receiver.url(first), "secret": SECRET})
    path = f"{ALERTS}/channels/{created['id']}"
    renamed = unique("renamed")
    edited = admin.ok(
        "PUT", path, json={"name": renamed, "type": "webhook", "config": {"url": receiver.url(second)}}
    )
    assert (edited["name"], edited["config"]["url"], edited["secrets_set"]) == (
        renamed,
        receiver.url(second),
        ["secret"],
    )
    # The kept secret still signs: the receiver verifies the test message at the new address.
    assert admin.ok("POST", f"{path}/test", json={})["ok"] is True
    [message] = receiver.messages(second)
    assert message.signed
    bad = {"name": renamed, "type": "webhook", "config": {"url": "ftp://hooks.example.com/x"}}
    error(admin.put(path, json=bad), 400, reason="ALERT_CHANNEL_INVALID")
    for missing in (999999, 0):  # 0 is no channel either: an update never creates one
        good = {**bad, "config": {"url": receiver.url(second)}}
        error(admin.put(f"{ALERTS}/channels/{missing}", json=good), 404, reason="ALERT_CHANNEL_NOT_FOUND")
    cleared = admin.ok(
        "PUT",
        path,
        json={"name": renamed, "type": "webhook", "config": {"url": receiver.url(second), "secret": None}},
    )
    assert cleared["secrets_set"] == []
    admin.ok(
        "PUT",
        path,
        json={
            "name": renamed,
            "type": "webhook",
            "config": {"url": receiver.url(second), "secret": "new-secret"},
        },
    )
    operator_name = unique("edit_op")
    admin.ok(
        "POST",
        "/api/v1/auth/users",
        json={"username": operator_name, "password": USER_PASSWORD, "role": "operator"},
    )
    operator = Api.login(stack.http_url, operator_name, USER_PASSWORD)
    error(operator.put(path, json=bad), 403)

    entries = audit_of(admin, "alert_channel", created["id"])
    assert [e["action"] for e in entries] == [
        "alert_channel.create",
        "alert_channel.update",
        "alert_channel.test",
        "alert_channel.update",
        "alert_channel.update",
    ]
    assert entries[0]["changes"]["secrets_set"] == ["secret"]
    assert entries[1]["changes"] == {
        "name": [created["name"], renamed],
        "config.url": [receiver.url(first), receiver.url(second)],
    }
    assert entries[3]["changes"] == {"secrets_set": [["secret"], []]}
    assert entries[4]["changes"] == {"secrets_set": [[], ["secret"]], "secret": "changed"}
    assert all(e["actor"] == "admin" and e["target_name"] for e in entries)
    text = str(entries)
    assert SECRET not in text and "new-secret" not in text


def test_editing_a_rule_replaces_it_after_checking_it_and_is_audited(admin: Api) -> None:
    hook = channel(admin, "wecom", {"url": "https://qyapi.example.com/hook"})
    created = admin.ok(
        "POST",
        f"{ALERTS}/rules",
        json={"name": unique("rule"), "events": ["run_failed"], "channel_ids": [hook["id"]]},
    )
    path = f"{ALERTS}/rules/{created['id']}"
    body = {"name": created["name"], "events": ["run_failed", "slow"], "channel_ids": [hook["id"]]}
    error(admin.put(path, json=body), 400, reason="ALERT_RULE_INVALID")  # slow needs slow_seconds
    error(admin.put(path, json={**body, "channel_ids": [999999]}), 400, reason="ALERT_RULE_INVALID")
    error(admin.put(f"{ALERTS}/rules/0", json=body), 404, reason="ALERT_RULE_NOT_FOUND")
    edited = admin.ok("PUT", path, json={**body, "slow_seconds": 60, "rate_limit_count": 3, "enabled": False})
    assert (edited["events"], edited["slow_seconds"], edited["rate_limit_count"], edited["enabled"]) == (
        ["run_failed", "slow"],
        60,
        3,
        False,
    )
    admin.ok("DELETE", path)
    entries = audit_of(admin, "alert_rule", created["id"])
    assert [e["action"] for e in entries] == ["alert_rule.create", "alert_rule.update", "alert_rule.delete"]
    assert entries[1]["changes"] == {
        "events": [["run_failed"], ["run_failed", "slow"]],
        "slow_seconds": [0, 60],
        "rate_limit_count": [10, 3],
        "enabled": [True, False],
    }

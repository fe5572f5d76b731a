"""The alerts drawer (admin only) in real headless Chromium against the real stack: a webhook
channel created from the page receives a signed test message, a rule names it, both are edited
from the page (the channel's secret kept though the form never shows it), and the delivery
history shows the test."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from stack import Stack
from tests.browser.test_admin_ui import QUICK_CONFIG, more_action, unique
from tests.browser.ui import login, ui_url
from tests.integration.api import Api
from tests.integration.conftest import ADMIN_PASSWORD
from tests.receivers import http_receiver

pytestmark = pytest.mark.browser


def test_an_admin_sets_up_a_webhook_channel_and_a_rule_sends_a_test_and_edits_both(
    page: Page, stack: Stack, admin: Api
) -> None:
    with http_receiver("page-secret") as receiver:
        login(page, stack, "admin", ADMIN_PASSWORD)
        page.get_by_test_id("alerts-open").click()
        expect(page.get_by_test_id("alerts-drawer")).to_be_visible()

        page.get_by_test_id("alert-channel-create").click()
        page.get_by_test_id("alert-channel-name").fill("值班机器人")
        config = {"url": receiver.url("/webhook/page"), "secret": "page-secret"}
        page.get_by_test_id("alert-channel-config").fill(json.dumps(config))
        page.get_by_test_id("alert-channel-submit").click()
        # Saved once the form has closed (the API is asked only then: the save may still be under way).
        expect(page.get_by_test_id("alert-channel-submit")).to_be_hidden()
        [channel] = [
            c for c in admin.ok("GET", "/api/v1/alerts/channels")["channels"] if c["name"] == "值班机器人"
        ]
        expect(page.get_by_test_id(f"alert-channel-test-{channel['id']}")).to_be_visible()
        expect(page.get_by_test_id("alerts-drawer")).not_to_contain_text("page-secret")

        page.get_by_test_id(f"alert-channel-test-{channel['id']}").click()
        expect(page.locator(".ant-modal-confirm")).to_contain_text("测试消息已发送")
        [message] = receiver.messages("/webhook/page")
        assert message.signed and message.body["event"] == "test"
        page.locator(".ant-modal-confirm .ant-btn").click()

        page.get_by_test_id("alert-rule-create").click()
        page.get_by_test_id("alert-rule-name").fill("全局失败告警")
        page.locator(".ant-modal .ant-form-item", has_text="告警渠道").locator(".ant-select").click()
        page.locator(".ant-select-item-option", has_text="值班机器人").click()
        page.keyboard.press("Escape")
        page.get_by_test_id("alert-rule-submit").click()
        # Saved once the form has closed. Not the "已保存" toast: the channel's may still be showing.
        expect(page.get_by_test_id("alert-rule-submit")).to_be_hidden()
        rules = admin.ok("GET", "/api/v1/alerts/rules")["rules"]
        assert [(r["name"], r["events"], r["channel_ids"]) for r in rules] == [
            ("全局失败告警", ["run_failed"], [channel["id"]])
        ]

        # Edit the channel: a new address, the secret left out of the config (it stays stored).
        drawer = page.get_by_test_id("alerts-drawer")
        page.get_by_test_id(f"alert-channel-edit-{channel['id']}").click()
        expect(page.get_by_test_id("alert-channel-config")).to_contain_text("/webhook/page")
        expect(page.get_by_test_id("alert-channel-config")).not_to_contain_text("page-secret")
        expect(page.get_by_test_id("alert-channel-secrets-kept")).to_contain_text("secret")
        page.get_by_test_id("alert-channel-config").fill(json.dumps({"url": receiver.url("/webhook/edited")}))
        page.get_by_test_id("alert-channel-submit").click()
        expect(drawer).to_contain_text("/webhook/edited")
        page.get_by_test_id(f"alert-channel-test-{channel['id']}").click()
        expect(page.locator(".ant-modal-confirm")).to_contain_text("测试消息已发送")
        [edited] = receiver.messages("/webhook/edited")
        assert edited.signed  # signed with the kept secret
        page.locator(".ant-modal-confirm .ant-btn").click()

        # Edit the rule: one more event, and switched off.
        [rule] = rules
        drawer.get_by_role("tab", name="告警规则").click()
        page.get_by_test_id(f"alert-rule-edit-{rule['id']}").click()
        page.locator(".ant-modal .ant-form-item", has_text="事件").locator(".ant-select").click()
        page.locator(".ant-select-item-option", has_text="每次失败").click()
        page.keyboard.press("Escape")
        page.get_by_test_id("alert-rule-enabled").click()
        page.get_by_test_id("alert-rule-submit").click()
        expect(drawer.locator(".ant-tabs-tabpane-active")).to_contain_text("每次失败")
        [saved] = admin.ok("GET", "/api/v1/alerts/rules")["rules"]
        assert (saved["events"], saved["enabled"]) == (["run_failed", "attempt_failed"], False)


def test_the_task_form_adds_and_removes_the_tasks_own_alert_rule(
    page: Page, stack: Stack, admin: Api
) -> None:
    channel = admin.ok(
        "POST",
        "/api/v1/alerts/channels",
        json={
            "name": unique("企业微信"),
            "type": "wecom",
            "config": {"url": "https://qyapi.example.com/hook"},
        },
    )
    task = admin.create_task(name=unique("告警任务"), config=QUICK_CONFIG)
    login(page, stack, "admin", ADMIN_PASSWORD)
    more_action(page, "edit", task["id"])
    section = page.get_by_test_id("task-alerts")
    expect(section).to_contain_text("本任务没有专属规则")
    section.get_by_test_id("task-alerts-channels").click()
    page.locator(".ant-select-item-option", has_text=channel["name"]).click()
    section.get_by_test_id("task-alerts-add").click()
    expect(section).to_contain_text(f"最终失败 → {channel['name']}")
    [rule] = admin.ok("GET", "/api/v1/alerts/rules", params={"task_id": task["id"]})["rules"]
    assert (rule["events"], rule["channel_ids"]) == (["run_failed"], [channel["id"]])
    section.locator(".ant-tag-close-icon").click()
    expect(section).to_contain_text("本任务没有专属规则")
    assert admin.ok("GET", "/api/v1/alerts/rules", params={"task_id": task["id"]})["rules"] == []


def test_an_alerts_link_opens_the_history_of_its_task(page: Page, stack: Stack, admin: Api) -> None:
    task = admin.create_task(name=unique("链接任务"), config=QUICK_CONFIG)
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]
    login(page, stack, "admin", ADMIN_PASSWORD)
    page.goto(f"{ui_url(stack)}?task={task['id']}&execution={execution_id}")
    expect(page.get_by_test_id("history-drawer")).to_be_visible()
    expect(page.get_by_test_id("history-drawer")).to_contain_text(str(execution_id))

"""The header's system status in real Chromium: red within 5 s of the scheduler stopping, a
trigger meanwhile says the run waits, green again once the scheduler is back. Its own stack
(module-scoped fixture of this file), since it stops the scheduler."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from stack import Stack
from tests.browser.test_admin_ui import QUICK_CONFIG, unique
from tests.browser.ui import login
from tests.integration.api import Api
from tests.integration.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.browser


def test_the_header_turns_red_while_no_scheduler_leads(page: Page, stack: Stack, admin: Api) -> None:
    task = admin.create_task(name=unique("状态"), config=QUICK_CONFIG)
    login(page, stack, "admin", ADMIN_PASSWORD)
    status = page.get_by_test_id("system-status")
    expect(status).to_have_attribute("data-state", "up")
    expect(status).to_contain_text("调度器运行中")

    scheduler = stack.config.scheduler_names[0]
    stack.stop_service(scheduler)
    try:
        expect(status).to_have_attribute("data-state", "down", timeout=5_000)
        expect(status).to_contain_text("调度器未运行")
        status.hover()
        expect(page.get_by_test_id("system-status-tip")).to_contain_text("调度器恢复后")
        page.get_by_test_id(f"action-trigger-{task['id']}").click()
        expect(page.locator(".ant-message")).to_contain_text("任务已触发（调度器未运行，将在恢复后执行）")
    finally:
        stack.start_service(scheduler)
    expect(status).to_have_attribute("data-state", "up", timeout=15_000)

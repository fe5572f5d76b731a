"""The run log viewer in real Chromium: a command's output appears while it runs, the tail follows
until you scroll up, search highlights, ANSI colours, wrap, download, and the whole log at the end."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from stack import Stack
from tests.browser.ui import login
from tests.integration.api import Api, unique
from tests.integration.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.browser

# The case: 50,000 lines over about 12 s.
LINES = 50_000
PRINTER = f"""
import time
for i in range({LINES}):
    if i % 500 == 0:
        print(f"\\x1b[32mgreen {{i}}\\x1b[0m", flush=True)
    print(f"row {{i}}", flush=True)
    if i % 40 == 0:
        time.sleep(0.01)
"""


def test_the_log_viewer_follows_a_running_command_live(page: Page, stack: Stack, admin: Api) -> None:
    task = admin.create_task(
        name=unique("日志"),
        task_type="common_task",
        config={"command": ["/usr/bin/python3", "-c", PRINTER]},
        max_retries=0,
    )
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger", json={})["execution_id"]
    login(page, stack, "admin", ADMIN_PASSWORD)
    page.get_by_test_id(f"action-history-{task['id']}").click()
    page.get_by_test_id(f"exec-log-{execution_id}").click()

    lines = page.get_by_test_id("log-lines")
    # Live: lines arrive while the command runs, and the newest stay in view.
    expect(page.get_by_test_id("log-live")).to_have_text("实时")
    expect(lines).to_contain_text(re.compile(r"row \d+"))
    expect(lines).to_have_attribute("data-following", "true")

    # Scrolling up pauses the tail; the first lines are the framework's.
    lines.evaluate("element => { element.scrollTop = 0; }")
    expect(lines).to_have_attribute("data-following", "false")
    expect(page.get_by_test_id("log-live")).to_have_text("已暂停滚动")
    expect(page.get_by_test_id("log-line-1")).to_contain_text("system")

    # Search highlights matches; ANSI colours are drawn, not printed.
    page.get_by_test_id("log-search").fill("green")
    expect(page.get_by_test_id("log-matches")).to_contain_text("行匹配")
    mark = lines.locator("mark").first
    expect(mark).to_have_text("green")
    expect(mark.locator("xpath=..")).to_have_css("color", "rgb(13, 188, 121)")
    expect(lines).not_to_contain_text("[32m")

    # The end: every line is there, the last one at the bottom.
    expect(page.get_by_test_id("log-complete")).to_be_visible(timeout=60_000)
    count = int(re.sub(r"\D", "", page.get_by_test_id("log-line-count").inner_text()))
    assert count >= LINES + LINES // 500
    lines.evaluate("element => { element.scrollTop = element.scrollHeight; }")
    expect(lines).to_contain_text(f"row {LINES - 1}")

    page.get_by_test_id("log-wrap").click()
    expect(lines).to_have_class(re.compile("log-wrap"))
    # Wrapped lines are drawn around the reader's place (here the end), a window of a huge log.
    expect(page.get_by_test_id("log-window")).to_contain_text(f"–{count} 行")
    expect(lines).to_contain_text(f"row {LINES - 1}")

    with page.expect_download() as download:
        page.get_by_test_id("log-download").click()
    path = download.value.path()
    text = path.read_text(encoding="utf-8")
    assert f" stdout row {LINES - 1}\n" in text
    assert text.count(" stdout row ") == LINES

    # The result tab shows the fields, not JSON.
    page.get_by_test_id("result-tab").click()
    expect(page.get_by_test_id("result-field-exit_code")).to_have_text("0")

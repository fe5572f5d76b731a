"""Shared by the browser tests and the screenshot script: headless Chromium (the Debian package,
driven by Playwright's Python API) and the admin page's login."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright, ViewportSize, expect

from stack import Stack

#: Debian's `chromium` (installed by the Makefile); Playwright downloads no browser here.
CHROMIUM = os.environ.get("ZQ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
UI_PATH = "/admin/scheduler/"


def launch(playwright: Playwright) -> Browser:
    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"{CHROMIUM} not found: apt-get install chromium (or set ZQ_CHROMIUM)")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def ui_url(stack: Stack) -> str:
    return stack.http_url + UI_PATH


def login(page: Page, stack: Stack, username: str, password: str, role: str = "admin") -> None:
    """Opens the admin page, logs in through the form and waits for the task list."""
    page.goto(ui_url(stack))
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("current-user")).to_have_attribute("data-role", role)
    # The first page of the list has loaded (the spinner is gone).
    expect(page.locator(".ant-table-wrapper .ant-spin-spinning")).to_have_count(0)

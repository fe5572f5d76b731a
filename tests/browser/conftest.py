"""Browser-test fixtures: one real stack on SQLite per module and one headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from stack import Stack
from tests.browser.ui import VIEWPORT, launch
from tests.conftest import database_url
from tests.integration.api import Api
from tests.integration.conftest import ADMIN_PASSWORD, start_stack

# Room for a loaded CI machine; a passing wait returns as soon as its condition holds.
expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("browser-stack")
    with database_url("sqlite", str(tmp)) as url:
        stack = start_stack(tmp, url, executors=2)
        try:
            yield stack
        finally:
            stack.stop()


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Api:
    return Api.login(stack.http_url, "admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh profile per test (own localStorage and cookies), 1280×800, Chinese locale.

    The profile asks for reduced motion, so the app opens modals and menus without animation: a
    click lands where the control will stay, even when a loaded machine draws frames late.
    """
    context = browser.new_context(
        viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai", reduced_motion="reduce"
    )
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page of that profile; an uncaught JavaScript error on it fails the test."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"{error.name}: {error.message}"))
    yield page
    assert not errors, f"uncaught errors in the page: {errors}"

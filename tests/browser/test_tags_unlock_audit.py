"""Tags, account unlocking and the executors in the header, in real headless Chromium against the
real stack: a tag set in the task form shows in the list and filters it; an admin unlocks a
locked-out user; the header shows the executors' free slots. (The audit page showing an operator's
trigger is the end of test_admin_ui's users-page test.)"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from stack import Stack
from tests.browser.test_admin_ui import QUICK_CONFIG, more_action, unique
from tests.browser.ui import login
from tests.integration.api import Api
from tests.integration.conftest import ADMIN_PASSWORD, USER_PASSWORD

pytestmark = pytest.mark.browser


def test_a_tag_set_in_the_form_shows_in_the_list_and_filters_it(page: Page, stack: Stack, admin: Api) -> None:
    tagged = admin.create_task(name=unique("标签任务"), config=QUICK_CONFIG)
    other = admin.create_task(name=unique("无标签任务"), config=QUICK_CONFIG)
    tag = unique("夜间")
    login(page, stack, "admin", ADMIN_PASSWORD)

    more_action(page, "edit", tagged["id"])
    page.get_by_test_id("form-tags").click()
    page.keyboard.type(tag)
    page.keyboard.press("Enter")
    page.get_by_test_id("form-submit").click()
    expect(page.get_by_test_id("task-form")).to_have_count(0)
    assert admin.ok("GET", f"/tasks/{tagged['id']}")["tags"] == [tag]
    expect(page.get_by_test_id(f"task-tags-{tagged['id']}")).to_contain_text(tag)

    page.get_by_test_id("filter-tag").fill(tag)
    expect(page.get_by_test_id(f"task-row-{other['id']}")).to_have_count(0)
    expect(page.get_by_test_id(f"task-row-{tagged['id']}")).to_be_visible()
    page.get_by_test_id("filter-tag").fill("")
    expect(page.get_by_test_id(f"task-row-{other['id']}")).to_be_visible()


def test_an_admin_unlocks_a_locked_out_user_on_the_users_page(page: Page, stack: Stack, admin: Api) -> None:
    username = unique("locked")
    admin.ok(
        "POST", "/api/v1/auth/users", json={"username": username, "password": USER_PASSWORD, "role": "viewer"}
    )
    attacker = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=30)
    with attacker:
        for _ in range(5):
            attacker.post(
                f"{stack.http_url}/api/v1/auth/login",
                json={"username": username, "password": "wrong-password"},
            )
    login(page, stack, "admin", ADMIN_PASSWORD)
    page.get_by_test_id("users-open").click()
    page.get_by_test_id(f"user-unlock-{username}").click()
    expect(page.get_by_test_id(f"user-unlock-{username}")).to_have_count(0)
    listed = {user["username"]: user for user in admin.ok("GET", "/api/v1/auth/users")["users"]}
    assert "locked_until" not in listed[username]
    expect(page.get_by_test_id("user-unlock-admin")).to_have_count(0)


def test_the_header_shows_the_executors_free_slots(page: Page, stack: Stack) -> None:
    login(page, stack, "admin", ADMIN_PASSWORD)
    slots = page.get_by_test_id("system-status-slots")
    expect(slots).to_contain_text("空闲槽位")
    # Polled every 2 s: a run of an earlier test of this module's stack may hold the slots a moment.
    expect(slots).not_to_have_attribute("data-free", "0", timeout=20_000)
    free = int(slots.get_attribute("data-free") or "0")
    assert free > 0
    page.get_by_test_id("system-status").hover()
    expect(page.get_by_test_id("system-status-executor").first).to_have_attribute("data-reachable", "true")

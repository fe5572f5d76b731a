"""The admin page (/admin/scheduler/) in real headless Chromium against the real stack (SQLite):
Envoy, registry, scheduler, executors and the built UI. Each test is one user flow; elements are
found by their data-testid (web/README.md § Test ids) and waited for explicitly."""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import pytest
from playwright.sync_api import Page, Request, expect

from services.stack import Stack
from tests.browser.ui import login, ui_url
from tests.integration.api import Api
from tests.integration.conftest import ADMIN_PASSWORD, USER_PASSWORD

pytestmark = pytest.mark.browser

#: The guide's 30-step example (实时进度查看 → 详细配置示例), at half the duration to keep CI fast.
PROGRESS_CONFIG = {"duration_seconds": 15, "success_rate": 1.0, "message": "长时间任务执行完成", "steps": 15}
QUICK_CONFIG = {"duration_seconds": 0.2, "steps": 2}
MUTATIONS = ("edit", "copy", "enable", "disable", "pause", "resume", "trigger", "delete")


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def add_user(admin: Api, role: str) -> str:
    username = unique(role)
    admin.ok(
        "POST", "/api/v1/auth/users", json={"username": username, "password": USER_PASSWORD, "role": role}
    )
    return username


def task_id_of(page: Page, name: str) -> int:
    """The id of the list row showing `name` (from its `task-name-{id}` test id)."""
    cell = page.locator('[data-testid^="task-name-"]', has_text=re.compile(f"^{re.escape(name)}$"))
    expect(cell).to_have_count(1)
    test_id = cell.get_attribute("data-testid") or ""
    return int(test_id.removeprefix("task-name-"))


def action_ids(page: Page) -> set[str]:
    """The action kinds rendered in the task table (`action-{kind}-{id}` → kind)."""
    ids: list[str] = page.locator('[data-testid^="action-"]').evaluate_all(
        "els => els.map(e => e.dataset.testid)"
    )
    return {test_id.split("-")[1] for test_id in ids}


def action_rows(page: Page, task_id: int) -> int:
    """How many lines the action buttons of a task row take."""
    tops: list[float] = (
        page.get_by_test_id(f"task-row-{task_id}")
        .locator('[data-testid^="action-"]')
        .evaluate_all("els => els.map(e => Math.round(e.getBoundingClientRect().top))")
    )
    return len(set(tops))


def test_login_reload_logout(page: Page, stack: Stack) -> None:
    page.goto(ui_url(stack))
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill("not-the-password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_be_visible()

    login(page, stack, "admin", ADMIN_PASSWORD)
    expect(page.get_by_test_id("current-user")).to_contain_text("admin")
    expect(page.locator(".ant-table")).to_be_visible()
    expect(page.get_by_test_id("create-task")).to_be_visible()

    page.reload()
    expect(page.get_by_test_id("current-user")).to_have_attribute("data-role", "admin")
    expect(page.get_by_test_id("login-username")).to_have_count(0)

    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login-username")).to_be_visible()
    assert page.evaluate("localStorage.getItem('zq.access_token')") is None
    assert not [c for c in page.context.cookies() if c["name"] == "access_token" and c["value"]]
    page.reload()
    expect(page.get_by_test_id("login-username")).to_be_visible()
    expect(page.get_by_test_id("current-user")).to_have_count(0)


def read_progress(page: Page, execution_id: int) -> dict[str, Any]:
    """Status, bar and `步骤` text of one history row, read in one round trip."""
    result: dict[str, Any] = page.evaluate(
        """id => {
            const q = name => document.querySelector(`[data-testid="${name}-${id}"]`);
            const bar = q('exec-progress');
            return {
                status: q('exec-status')?.dataset.status ?? null,
                statusText: q('exec-status')?.textContent ?? null,
                percent: bar ? Number(bar.dataset.percent) : null,
                valuenow: bar?.querySelector('[aria-valuenow]')?.getAttribute('aria-valuenow')
                    ?? bar?.getAttribute('aria-valuenow') ?? null,
                steps: q('exec-steps')?.textContent ?? null,
            };
        }""",
        execution_id,
    )
    return result


def test_create_trigger_and_watch_live_progress(page: Page, stack: Stack, admin: Api) -> None:
    requests: list[tuple[float, str]] = []
    page.on("request", lambda r: requests.append((time.monotonic(), r.url)))
    login(page, stack, "admin", ADMIN_PASSWORD)

    # Create the guide's example task through the form.
    name = unique("进度任务")
    page.get_by_test_id("create-task").click()
    expect(page.get_by_test_id("task-form")).to_be_visible()
    page.get_by_test_id("form-name").fill(name)
    expect(page.get_by_test_id("form-task-type")).to_contain_text("示例任务")
    page.get_by_test_id("form-config").fill(json.dumps(PROGRESS_CONFIG, ensure_ascii=False, indent=2))
    expect(page.get_by_test_id("config-error")).to_have_count(0)
    page.get_by_test_id("form-submit").click()
    expect(page.get_by_test_id("task-form")).to_have_count(0)
    task_id = task_id_of(page, name)
    assert admin.ok("GET", f"/tasks/{task_id}")["config"] == PROGRESS_CONFIG

    # 触发, then 执行历史.
    page.get_by_test_id(f"action-trigger-{task_id}").click()
    expect(page.locator(".ant-message")).to_contain_text("任务已触发")
    page.get_by_test_id(f"action-history-{task_id}").click()
    expect(page.get_by_test_id("history-drawer")).to_be_visible()
    row = page.locator('[data-testid^="exec-row-"]')
    expect(row).to_have_count(1)
    execution_id = int((row.get_attribute("data-testid") or "").removeprefix("exec-row-"))

    # Watch the bar and the 步骤 text advance until the run ends.
    samples: list[dict[str, Any]] = []
    deadline = time.monotonic() + 45
    while True:
        sample = read_progress(page, execution_id)
        if not samples or sample != samples[-1]:
            samples.append(sample)
        if sample["status"] not in (None, "pending", "running"):
            break
        assert time.monotonic() < deadline, f"the run did not end in the page; seen: {samples}"
        page.wait_for_timeout(150)
    ended_at = time.monotonic()

    running = [s for s in samples if s["status"] == "running" and s["steps"]]
    steps = [int(re.fullmatch(r"步骤 (\d+)/15", s["steps"]).group(1)) for s in running]  # type: ignore[union-attr]
    percents = [s["percent"] for s in running]
    assert len(set(steps)) >= 2, f"步骤 did not advance while running: {samples}"
    assert len(set(percents)) >= 2, f"the bar did not advance while running: {samples}"
    assert steps == sorted(steps) and percents == sorted(percents), f"progress went back: {samples}"
    assert all(str(s["percent"]) == s["valuenow"] for s in running), samples

    final = samples[-1]
    assert final["status"] == "success", samples
    expect(page.get_by_test_id(f"exec-status-{execution_id}")).to_have_text("成功")
    expect(page.get_by_test_id(f"exec-progress-{execution_id}")).to_have_attribute("data-percent", "100")
    expect(page.get_by_test_id(f"exec-steps-{execution_id}")).to_have_text("步骤 15/15")
    expect(page.get_by_test_id(f"exec-row-{execution_id}")).to_have_attribute("data-status", "success")

    # Live updates came over the SSE watch stream (cookie auth), not the 2 s polling fallback ...
    watch = f"/executions/{execution_id}/watch"
    single = re.compile(rf"/tasks/{task_id}/executions/{execution_id}(\?|$)")
    assert any(watch in url for _, url in requests), "no watch stream was opened"
    assert not [url for _, url in requests if single.search(url)], "fell back to polling"

    # ... and stop after the end: no reconnect (EventSource retries after ~3 s), nothing changes.
    page.wait_for_timeout(4000)
    late = [url for at, url in requests if at > ended_at + 0.5 and (watch in url or single.search(url))]
    assert not late, f"still watching after the end: {late}"
    assert read_progress(page, execution_id) == final


def create_workflow(admin: Api) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    first = admin.create_task(name=unique("清洗"), config=QUICK_CONFIG)
    second = admin.create_task(name=unique("入库"), config=QUICK_CONFIG)
    workflow = admin.create_task(
        name=unique("工作流"),
        task_type="workflow",
        config={
            "workflow_type": "serial",
            "tasks": [
                {"task_id": first["id"], "name": "步骤1：数据清洗", "dependencies": []},
                {"task_id": second["id"], "name": "步骤2：数据入库", "dependencies": [first["id"]]},
            ],
            "on_failure": "stop",
        },
    )
    return workflow, first, second


def test_expand_workflow_shows_indented_sub_tasks(page: Page, stack: Stack, admin: Api) -> None:
    workflow, first, second = create_workflow(admin)
    login(page, stack, "admin", ADMIN_PASSWORD)

    expect(page.get_by_test_id(f"task-row-{workflow['id']}")).to_be_visible()
    # Sub-tasks are not top-level rows.
    expect(page.get_by_test_id(f"task-row-{first['id']}")).to_have_count(0)
    expand = page.get_by_test_id(f"expand-{workflow['id']}")
    expect(expand).to_have_attribute("aria-expanded", "false")
    expand.click()
    expect(expand).to_have_attribute("aria-expanded", "true")

    children = page.locator("tr.child-task-row")
    expect(children).to_have_count(2)
    for child in (first, second):
        child_row = page.locator(f'tr.child-task-row[data-testid="task-row-{child["id"]}"]')
        expect(child_row).to_be_visible()
        expect(child_row.get_by_test_id(f"task-name-{child['id']}")).to_have_text(child["name"])
        # The same actions as top-level rows.
        expect(child_row.get_by_test_id(f"action-trigger-{child['id']}")).to_be_visible()
        expect(child_row.get_by_test_id(f"action-history-{child['id']}")).to_be_visible()

    # Visibly indented: the child's first cell content starts further right than the parent's.
    def first_cell_text_x(task_id: int) -> float:
        x: float = (
            page.get_by_test_id(f"task-row-{task_id}")
            .locator("td")
            .first.evaluate(
                """td => {
                const range = document.createRange();
                const text = [...td.childNodes].find(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
                range.selectNodeContents(text);
                return range.getBoundingClientRect().left;
            }"""
            )
        )
        return x

    indent = first_cell_text_x(first["id"]) - first_cell_text_x(workflow["id"])
    assert indent >= 16, f"sub-task rows are indented by {indent}px only"

    # All eight buttons on one line, in Chinese and in English.
    assert action_rows(page, workflow["id"]) == 1
    page.get_by_test_id("lang-switch").get_by_text("EN", exact=True).click()
    expect(page.get_by_test_id("create-task")).to_have_text("Create task")
    expect(page.get_by_test_id(f"action-history-{workflow['id']}").first).to_have_text("History")
    assert action_rows(page, workflow["id"]) == 1
    page.get_by_test_id("lang-switch").get_by_text("中文", exact=True).click()
    expect(page.get_by_test_id("create-task")).to_have_text("创建任务")

    expand.click()
    expect(children).to_have_count(0)


def test_cron_field_shows_error_position_and_next_runs(page: Page, stack: Stack) -> None:
    login(page, stack, "admin", ADMIN_PASSWORD)
    page.get_by_test_id("create-task").click()
    page.get_by_test_id("form-schedule-mode-cron").click()
    cron = page.get_by_test_id("form-cron")
    cron.fill("0 25 * * *")
    error = page.get_by_test_id("cron-error")
    expect(error).to_contain_text("第2个字段")
    expect(page.get_by_test_id("cron-preview")).to_have_count(0)
    cron_box, error_box = cron.bounding_box(), error.bounding_box()
    assert cron_box and error_box and error_box["y"] >= cron_box["y"] + cron_box["height"], (
        "error not under field"
    )

    cron.fill("*/5 * * * *")
    expect(page.get_by_test_id("cron-preview").locator("li")).to_have_count(5)
    expect(error).to_have_count(0)
    times = page.get_by_test_id("cron-preview").locator("li").all_inner_texts()
    assert len(set(times)) == 5 and all(re.search(r":[0-5][05]:00$", t) for t in times), times

    page.get_by_test_id("form-cancel").click()
    expect(page.get_by_test_id("task-form")).to_have_count(0)


def test_viewer_sees_no_mutation_buttons(page: Page, stack: Stack, admin: Api) -> None:
    task = admin.create_task(name=unique("viewer-visible"), config=QUICK_CONFIG)
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger", json={})["execution_id"]
    viewer = add_user(admin, "viewer")
    login(page, stack, viewer, USER_PASSWORD, role="viewer")

    expect(page.get_by_test_id(f"action-history-{task['id']}")).to_be_visible()
    expect(page.get_by_test_id("create-task")).to_have_count(0)
    for kind in MUTATIONS:
        expect(page.get_by_test_id(f"action-{kind}-{task['id']}")).to_have_count(0)
    assert action_ids(page) == {"history", "stats"}

    page.get_by_test_id(f"action-history-{task['id']}").click()
    expect(page.get_by_test_id(f"exec-row-{execution_id}")).to_be_visible()
    expect(page.locator('[data-testid^="exec-terminate-"]')).to_have_count(0)


def test_operator_may_trigger_and_switch_but_not_manage(page: Page, stack: Stack, admin: Api) -> None:
    on = admin.create_task(name=unique("op-on"), config=QUICK_CONFIG)
    off = admin.create_task(name=unique("op-off"), config=QUICK_CONFIG, enabled=False)
    operator = add_user(admin, "operator")
    login(page, stack, operator, USER_PASSWORD, role="operator")

    for visible in (f"trigger-{on['id']}", f"disable-{on['id']}", f"pause-{on['id']}", f"enable-{off['id']}"):
        expect(page.get_by_test_id(f"action-{visible}")).to_be_visible()
    expect(page.get_by_test_id("create-task")).to_have_count(0)
    assert action_ids(page) <= {"trigger", "enable", "disable", "pause", "resume", "history", "stats"}

    page.get_by_test_id(f"action-trigger-{on['id']}").click()
    expect(page.locator(".ant-message")).to_contain_text("任务已触发")
    page.get_by_test_id(f"action-enable-{off['id']}").click()
    expect(page.get_by_test_id(f"task-enabled-{off['id']}")).to_have_text("已启用")
    assert admin.ok("GET", f"/tasks/{off['id']}")["enabled"] is True


def test_edit_switches_cron_to_interval_and_saves_zero_retries(page: Page, stack: Stack, admin: Api) -> None:
    task = admin.create_task(
        name=unique("编辑"), config=QUICK_CONFIG, cron_expression="0 3 * * *", max_retries=3
    )
    login(page, stack, "admin", ADMIN_PASSWORD)

    page.get_by_test_id(f"action-edit-{task['id']}").click()
    expect(page.get_by_test_id("form-cron")).to_have_value("0 3 * * *")
    page.get_by_test_id("form-schedule-mode-interval").click()
    expect(page.get_by_test_id("form-cron")).to_have_count(0)
    page.get_by_test_id("form-interval").fill("120")
    retries = page.get_by_test_id("form-max-retries")
    expect(retries).to_have_value("3")
    retries.fill("0")
    page.get_by_test_id("form-submit").click()
    expect(page.get_by_test_id("task-form")).to_have_count(0)

    saved = admin.ok("GET", f"/tasks/{task['id']}")
    assert (saved["max_retries"], saved["cron_expression"], saved["interval_seconds"]) == (0, "", 120), saved
    row = page.get_by_test_id(f"task-row-{task['id']}")
    expect(row).to_contain_text("每120秒")

    # Reopening shows what was saved.
    page.get_by_test_id(f"action-edit-{task['id']}").click()
    expect(page.get_by_test_id("form-max-retries")).to_have_value("0")
    expect(page.get_by_test_id("form-interval")).to_have_value("120")


def test_auto_refresh_and_its_toggle(page: Page, stack: Stack, admin: Api) -> None:
    login(page, stack, "admin", ADMIN_PASSWORD)
    toggle = page.get_by_test_id("auto-refresh-toggle")
    expect(toggle).to_have_attribute("data-state", "on")
    # A background refresh shows no spinner (no flicker).
    page.evaluate(
        """() => {
            window.__zqSpinner = false;
            new MutationObserver(() => {
                if (document.querySelector('.ant-table-wrapper .ant-spin-spinning')) window.__zqSpinner = true;
            }).observe(document.body, { subtree: true, childList: true, attributes: true });
        }"""
    )

    appears = admin.create_task(name=unique("自动刷新"), config=QUICK_CONFIG)
    expect(page.get_by_test_id(f"task-name-{appears['id']}")).to_be_visible(timeout=6500)
    assert page.evaluate("window.__zqSpinner") is False, "the background refresh showed the spinner"

    toggle.click()
    expect(toggle).to_have_attribute("data-state", "off")
    list_calls: list[str] = []

    def on_request(request: Request) -> None:
        if re.search(r"/api/v1/scheduler/tasks(\?|$)", request.url):
            list_calls.append(request.url)

    page.on("request", on_request)
    hidden = admin.create_task(name=unique("不刷新"), config=QUICK_CONFIG)
    page.wait_for_timeout(6000)
    expect(page.get_by_test_id(f"task-name-{hidden['id']}")).to_have_count(0)
    assert not list_calls, f"the list was reloaded with auto-refresh off: {list_calls}"

    page.get_by_test_id("refresh").click()
    expect(page.get_by_test_id(f"task-name-{hidden['id']}")).to_be_visible()
    toggle.click()
    expect(toggle).to_have_attribute("data-state", "on")


def test_pages_past_the_first_page(page: Page, stack: Stack, admin: Api) -> None:
    prefix = unique("分页")
    ids = [admin.create_task(name=f"{prefix}-{i:02d}", config=QUICK_CONFIG)["id"] for i in range(12)]
    login(page, stack, "admin", ADMIN_PASSWORD)
    page.get_by_test_id("filter-name").fill(prefix)
    expect(page.locator(".ant-pagination-total-text")).to_have_text("共 12 条")

    page.locator(".ant-pagination-options .ant-select").click()
    page.locator(".ant-select-item-option", has_text="10 条/页").click()
    rows = page.locator('tr[data-testid^="task-row-"]')
    expect(rows).to_have_count(10)
    with page.expect_request(lambda r: "/api/v1/scheduler/tasks?" in r.url and "skip=10" in r.url):
        page.locator(".ant-pagination-item-2").click()
    expect(rows).to_have_count(2)
    # Newest first: page 2 holds the two oldest.
    for task_id in ids[:2]:
        expect(page.get_by_test_id(f"task-row-{task_id}")).to_be_visible()
    expect(page.locator(".ant-pagination-total-text")).to_have_text("共 12 条")


def test_a_401_that_cannot_be_refreshed_returns_to_login(page: Page, stack: Stack) -> None:
    login(page, stack, "admin", ADMIN_PASSWORD)
    page.evaluate(
        """() => {
            localStorage.setItem('zq.access_token', 'not.a.token');
            localStorage.setItem('zq.refresh_token', 'not-a-refresh-token');
        }"""
    )
    page.get_by_test_id("refresh").click()
    expect(page.get_by_test_id("session-expired")).to_contain_text("登录已过期")
    expect(page.get_by_test_id("login-username")).to_be_visible()
    assert page.evaluate("localStorage.getItem('zq.access_token')") is None


def test_terminate_a_running_run_and_read_its_result(page: Page, stack: Stack, admin: Api) -> None:
    task = admin.create_task(name=unique("终止"), config={"duration_seconds": 30, "steps": 30}, max_retries=0)
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger", json={})["execution_id"]
    login(page, stack, "admin", ADMIN_PASSWORD)
    page.get_by_test_id(f"action-history-{task['id']}").click()
    expect(page.get_by_test_id(f"exec-steps-{execution_id}")).to_contain_text(re.compile(r"步骤 [1-9]\d*/30"))

    page.get_by_test_id(f"exec-terminate-{execution_id}").click()
    page.get_by_test_id(f"confirm-terminate-{execution_id}").click()
    expect(page.get_by_test_id(f"exec-status-{execution_id}")).to_have_text("已终止")
    expect(page.get_by_test_id(f"exec-terminate-{execution_id}")).to_have_count(0)
    assert admin.ok("GET", f"/tasks/{task['id']}/executions/{execution_id}")["status"] == "terminated"

    page.get_by_test_id(f"exec-result-{execution_id}").click()
    expect(page.get_by_test_id("result-modal")).to_be_visible()
    expect(page.get_by_test_id("result-json")).to_contain_text('"total_steps": 30')

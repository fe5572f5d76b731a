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

from stack import Stack
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


def more_action(page: Page, kind: str, task_id: int) -> None:
    """Clicks an action of the row's 更多 menu."""
    page.get_by_test_id(f"action-more-{task_id}").click()
    page.get_by_test_id(f"action-{kind}-{task_id}").click()


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

    # The inline buttons and 更多 on one line, in Chinese and in English.
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

    expect(page.get_by_test_id(f"action-trigger-{on['id']}")).to_be_visible()
    expect(page.get_by_test_id("create-task")).to_have_count(0)
    assert action_ids(page) <= {"trigger", "history", "more"}
    page.get_by_test_id(f"action-more-{on['id']}").click()
    for visible in (f"disable-{on['id']}", f"pause-{on['id']}", f"stats-{on['id']}"):
        expect(page.get_by_test_id(f"action-{visible}")).to_be_visible()
    expect(page.get_by_test_id(f"action-edit-{on['id']}")).to_have_count(0)
    expect(page.get_by_test_id(f"action-delete-{on['id']}")).to_have_count(0)
    page.keyboard.press("Escape")

    page.get_by_test_id(f"action-trigger-{on['id']}").click()
    expect(page.locator(".ant-message")).to_contain_text("任务已触发")
    more_action(page, "enable", off["id"])
    expect(page.get_by_test_id(f"task-enabled-{off['id']}")).to_have_text("已启用")
    assert admin.ok("GET", f"/tasks/{off['id']}")["enabled"] is True


def test_edit_switches_cron_to_interval_and_saves_zero_retries(page: Page, stack: Stack, admin: Api) -> None:
    task = admin.create_task(
        name=unique("编辑"), config=QUICK_CONFIG, cron_expression="0 3 * * *", max_retries=3
    )
    login(page, stack, "admin", ADMIN_PASSWORD)

    more_action(page, "edit", task["id"])
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
    more_action(page, "edit", task["id"])
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
    expect(page.get_by_test_id("log-lines")).to_contain_text("任务已被终止")
    page.get_by_test_id("result-tab").click()
    expect(page.get_by_test_id("result-field-total_steps")).to_have_text("30")


#: Every column on screen: (left, right, width) of each header and cell of the table, the
#: viewport width, and the scroll widths that would betray a horizontal scroll bar. `lines` is how
#: many lines an element's text takes (the distinct tops of its text nodes' boxes), `clipped` how
#: much of it (or of a part of it) is cut off.
COLUMN_BOXES = """table => {
    const lines = e => {
        const tops = new Set();
        const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const range = document.createRange();
            range.selectNodeContents(node);
            for (const r of range.getClientRects()) if (r.width > 0) tops.add(Math.round(r.top));
        }
        return tops.size;
    };
    const clipped = e => Math.max(
        ...[e, ...e.querySelectorAll('*')].filter(x => x.clientWidth > 0).map(x => x.scrollWidth - x.clientWidth)
    );
    const boxes = els => [...els].map(e => {
        const r = e.getBoundingClientRect();
        return {
            text: e.textContent.trim(), left: r.left, right: r.right, width: r.width, height: r.height,
            lines: lines(e), clipped: clipped(e),
        };
    });
    const scrollers = [document.documentElement, ...table.querySelectorAll('.ant-table-content, .ant-table-body')];
    return {
        headers: boxes(table.querySelectorAll('thead th')),
        rows: [...table.querySelectorAll('tbody tr.ant-table-row')].map(tr => boxes(tr.children)),
        viewport: window.innerWidth,
        overflow: scrollers.map(e => e.scrollWidth - e.clientWidth),
    };
}"""


def assert_all_columns_visible(table: Any, titles: list[str]) -> None:
    layout = table.evaluate(COLUMN_BOXES)
    headers = layout["headers"]
    for title in titles:
        assert any(h["text"] == title for h in headers), f"no column {title}: {[h['text'] for h in headers]}"
    for box in headers + [cell for row in layout["rows"] for cell in row]:
        assert box["left"] >= 0 and box["right"] <= layout["viewport"], f"off screen: {box}"
        assert box["width"] >= 40, f"squeezed: {box}"
    assert max(layout["overflow"]) <= 0, f"horizontal scroll: {layout['overflow']}"
    heights = {round(row[0]["height"]) for row in layout["rows"]}
    assert len(heights) == 1, f"uneven row heights: {heights}"
    # A title is whole (not cut to `Execu…`) and breaks between words only (`任务类型` never as
    # `任务类 / 型`, nor `Enabled` as `Enabl / ed`).
    for header in headers:
        assert header["clipped"] <= 0, f"title cut short: {header}"
        assert header["lines"] <= len(header["text"].split()), f"title broken inside a word: {header}"


#: The page header: its width and the room its content needs, and how many lines the title takes.
HEADER_LAYOUT = """header => {
    const title = header.querySelector('.app-title');
    const range = document.createRange();
    range.selectNodeContents(title);
    const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
    return {overflow: header.scrollWidth - header.clientWidth, titleLines: tops.size};
}"""


def assert_header_fits(page: Page) -> None:
    """The title on one line, the status and every header button without overflowing."""
    layout = page.locator(".app-header").evaluate(HEADER_LAYOUT)
    assert layout == {"overflow": 0, "titleLines": 1}, layout


def test_every_column_of_the_list_and_history_fits_1280_px(page: Page, stack: Stack, admin: Api) -> None:
    task = admin.create_task(
        name=unique("一个名字相当长的每日数据同步与清洗任务"),
        config={"duration_seconds": 0.2, "steps": 2, "success_rate": 0.0},
        cron_expression="0 3 * * *",
        max_retries=0,
    )
    command = admin.create_task(name=unique("短"), task_type="manual_task", config={"command": "echo ok"})
    run = admin.ok("POST", f"/tasks/{task['id']}/trigger")
    plain = admin.ok("POST", f"/tasks/{command['id']}/trigger")
    admin.wait_execution(task["id"], run["execution_id"])
    admin.wait_execution(command["id"], plain["execution_id"])
    progress_run = run["execution_id"]
    login(page, stack, "admin", ADMIN_PASSWORD)
    assert page.viewport_size == {"width": 1280, "height": 800}

    for lang, list_titles, history_titles in COLUMN_TITLES:
        page.get_by_test_id("lang-switch").get_by_text(lang, exact=True).click()
        expect(page.get_by_test_id("create-task")).to_have_text(list_titles[0])
        assert_header_fits(page)
        expect(page.get_by_test_id(f"task-latest-{task['id']}")).to_be_visible()
        assert_all_columns_visible(page.locator(".task-table"), list_titles[1:])

        page.get_by_test_id("global-history").click()
        expect(page.get_by_test_id(f"exec-error-{run['execution_id']}")).to_be_visible()
        # A run with progress (bar, step, message) and one without are rows of one height.
        expect(page.get_by_test_id(f"exec-progress-{progress_run}")).to_be_visible()
        expect(page.get_by_test_id(f"exec-result-{plain['execution_id']}")).to_have_text("exit 0")
        # The drawer has finished sliding in.
        expect(page.locator("[class*='ant-drawer-panel-motion']")).to_have_count(0)
        assert_all_columns_visible(
            page.get_by_test_id("history-drawer").locator(".exec-table"), history_titles
        )
        page.keyboard.press("Escape")
        expect(page.get_by_test_id("history-drawer")).to_have_count(0)


#: The guide's columns of the task list and of the history, in Chinese and in English (after the
#: language switch's label and the 创建任务 button's text).
COLUMN_TITLES = [
    (
        "中文",
        [
            "创建任务",
            "ID",
            "任务名称",
            "任务类型",
            "调度方式",
            "开启状态",
            "下次运行",
            "运行状态",
            "最近执行",
            "最大重试",
            "创建时间",
            "操作",
        ],
        ["ID", "任务", "状态", "执行结果", "开始时间", "结束时间", "执行时长", "重试次数", "错误信息"],
    ),
    (
        "EN",
        [
            "Create task",
            "ID",
            "Name",
            "Type",
            "Schedule",
            "Enabled",
            "Next run",
            "Schedule status",
            "Latest run",
            "Retries",
            "Created",
            "Actions",
        ],
        ["ID", "Task", "Status", "Result", "Started", "Ended", "Duration", "Retry", "Error"],
    ),
]


def test_an_operator_created_on_the_users_page_can_trigger_but_not_delete(
    page: Page, stack: Stack, admin: Api
) -> None:
    task = admin.create_task(name=unique("用户页任务"), config=QUICK_CONFIG)
    login(page, stack, "admin", ADMIN_PASSWORD)
    page.get_by_test_id("users-open").click()
    expect(page.get_by_test_id("users-drawer")).to_be_visible()
    expect(page.get_by_test_id("user-row-admin")).to_be_visible()

    username = unique("operator")
    page.get_by_test_id("user-create").click()
    page.get_by_test_id("user-form-username").fill(username)
    page.get_by_test_id("user-form-password").fill(USER_PASSWORD)
    expect(page.get_by_test_id("user-form-role")).to_contain_text("操作员")
    page.get_by_test_id("user-form-submit").click()
    expect(page.get_by_test_id(f"user-row-{username}")).to_be_visible()
    expect(page.get_by_test_id(f"user-role-{username}")).to_contain_text("操作员")
    listed = {u["username"]: u for u in admin.ok("GET", "/api/v1/auth/users")["users"]}
    assert listed[username]["role"] == "operator" and listed[username]["disabled"] is False

    # Disable and enable again from the list.
    page.get_by_test_id(f"user-enabled-{username}").click()
    expect(page.get_by_test_id(f"user-row-{username}")).to_have_attribute("data-disabled", "true")
    page.get_by_test_id(f"user-enabled-{username}").click()
    expect(page.get_by_test_id(f"user-row-{username}")).to_have_attribute("data-disabled", "false")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("users-drawer")).to_have_count(0)

    page.get_by_test_id("logout").click()
    login(page, stack, username, USER_PASSWORD, role="operator")
    expect(page.get_by_test_id("users-open")).to_have_count(0)
    page.get_by_test_id(f"action-trigger-{task['id']}").click()
    expect(page.locator(".ant-message")).to_contain_text("任务已触发")
    page.get_by_test_id(f"action-more-{task['id']}").click()
    expect(page.get_by_test_id(f"action-stats-{task['id']}")).to_be_visible()
    expect(page.get_by_test_id(f"action-delete-{task['id']}")).to_have_count(0)
    page.keyboard.press("Escape")
    [run] = admin.executions(task["id"])

    # The audit page shows the operator's login and that trigger under their name; the history, who
    # triggered it.
    page.get_by_test_id("logout").click()
    login(page, stack, "admin", ADMIN_PASSWORD)
    page.get_by_test_id("audit-open").click()
    page.get_by_test_id("audit-filter-actor").fill(username)
    rows = page.locator('[data-testid^="audit-row-"]')
    expect(rows).to_have_count(2)
    expect(rows.locator('[data-action="user.login"]')).to_have_count(1)
    row = rows.filter(has=page.locator('[data-action="task.trigger"]'))
    expect(row).to_have_count(1)
    expect(row).to_contain_text(username)
    expect(row).to_contain_text("触发任务")
    expect(row).to_contain_text(task["name"])
    expect(row).to_contain_text(f"execution_id: {run['id']}")
    page.get_by_test_id("audit-drawer").locator(".ant-drawer-close").click()
    page.get_by_test_id("global-history").click()
    expect(page.get_by_test_id(f"exec-trigger-{run['id']}")).to_have_attribute("data-triggered-by", username)


def test_name_search_finds_sub_tasks_and_the_global_history_filters_by_task(
    page: Page, stack: Stack, admin: Api
) -> None:
    workflow, first, second = create_workflow(admin)
    runs = [admin.ok("POST", f"/tasks/{t['id']}/trigger")["execution_id"] for t in (first, second)]
    login(page, stack, "admin", ADMIN_PASSWORD)

    # A sub-task is no top-level row, but the name search finds it.
    expect(page.get_by_test_id(f"task-row-{first['id']}")).to_have_count(0)
    page.get_by_test_id("filter-name").fill(first["name"])
    expect(page.get_by_test_id(f"task-row-{first['id']}")).to_be_visible()
    expect(page.get_by_test_id(f"task-row-{workflow['id']}")).to_have_count(0)
    page.get_by_test_id("filter-name").fill("")

    page.get_by_test_id("global-history").click()
    expect(page.get_by_test_id(f"exec-row-{runs[1]}")).to_be_visible()
    picker = page.get_by_test_id("history-filter-task")
    picker.click()
    page.keyboard.type(first["name"])
    page.locator(".ant-select-dropdown:visible .ant-select-item-option", has_text=first["name"]).click()
    expect(page.get_by_test_id(f"exec-row-{runs[0]}")).to_be_visible()
    expect(page.get_by_test_id(f"exec-row-{runs[1]}")).to_have_count(0)


def test_the_form_offers_a_trading_calendar_and_the_calendars_drawer_shows_where_data_ends(
    page: Page, stack: Stack, admin: Api
) -> None:
    task = admin.create_task(name=unique("日历"), config=QUICK_CONFIG, cron_expression="0 18 * * *")
    admin.ok("GET", "/cron/preview", params={"cron_expression": "0 18 * * *", "calendar": "XSHG"})
    login(page, stack, "admin", ADMIN_PASSWORD)

    more_action(page, "edit", task["id"])
    page.get_by_test_id("form-calendar").click()
    page.keyboard.type("XSHG")
    page.locator(".ant-select-dropdown:visible .ant-select-item-option", has_text="XSHG (").click()
    expect(page.get_by_test_id("cron-calendar-end")).to_contain_text("2026-12-31")
    expect(page.get_by_test_id("cron-preview").locator("li")).to_have_count(5)
    page.get_by_test_id("form-submit").click()
    expect(page.get_by_test_id("task-form")).to_have_count(0)
    saved = admin.ok("GET", f"/tasks/{task['id']}")
    assert (saved["calendar"], saved["calendar_shift"], saved["calendar_holidays"]) == ("XSHG", 0, "silent")

    page.get_by_test_id("calendars-open").click()
    expect(page.get_by_test_id("calendars-drawer")).to_contain_text("周一至周五")
    expect(page.get_by_test_id("calendar-row-XSHG")).to_contain_text("2026-12-31")


def test_the_backfill_dialog_starts_a_backfill_shows_its_progress_and_cancels_it(
    page: Page, stack: Stack, admin: Api
) -> None:
    task = admin.create_task(
        name=unique("backfill"),
        cron_expression="0 18 * * 1-5",
        timezone="Asia/Shanghai",
        enabled=False,
        config={"duration_seconds": 30, "steps": 1},
    )
    login(page, stack, "admin", ADMIN_PASSWORD)
    more_action(page, "backfill", task["id"])
    range_inputs = page.get_by_test_id("backfill-form").locator(".ant-picker-range input")
    range_inputs.nth(0).fill("2024-01-01")
    range_inputs.nth(0).press("Enter")
    range_inputs.nth(1).fill("2024-01-05")
    range_inputs.nth(1).press("Enter")
    page.get_by_test_id("backfill-submit").click()
    expect(page.locator(".ant-message")).to_contain_text("已创建回填：5 次执行")

    backfill = admin.ok("GET", "/backfills", params={"task_id": task["id"]})["backfills"][0]
    assert (backfill["start"], backfill["end"], backfill["total"]) == ("2024-01-01", "2024-01-05", 5)
    page.get_by_test_id(f"backfill-cancel-{backfill['id']}").click()
    expect(page.get_by_test_id(f"backfill-cancel-{backfill['id']}")).to_have_count(0)
    expect(page.get_by_role("dialog")).to_contain_text("已取消")
    assert admin.ok("GET", f"/backfills/{backfill['id']}")["status"] == "cancelled"


def test_a_data_sync_task_is_made_from_its_form_fields_without_json(
    page: Page, stack: Stack, admin: Api
) -> None:
    login(page, stack, "admin", ADMIN_PASSWORD)
    name = unique("日线同步")
    page.get_by_test_id("create-task").click()
    page.get_by_test_id("form-name").fill(name)
    page.get_by_test_id("form-task-type").click()
    page.locator(
        ".ant-select-dropdown:visible .ant-select-item-option", has_text="数据同步：单只股票日线"
    ).click()
    expect(page.get_by_test_id("data-sync-fields")).to_be_visible()
    page.get_by_test_id("sync-symbol").fill("600000")
    page.get_by_test_id("sync-start-date").fill("2024-01-02")
    page.get_by_test_id("sync-end-date").fill("2024-01-15")
    page.get_by_test_id("sync-provider").click()
    page.locator(".ant-select-dropdown:visible .ant-select-item-option", has_text="recorded").click()
    page.get_by_test_id("form-submit").click()
    expect(page.get_by_test_id("task-form")).to_have_count(0)
    task = admin.ok("GET", f"/tasks/{task_id_of(page, name)}")
    assert (task["task_type"], task["config"]) == (
        "data_sync_daily_data",
        {"symbol": "600000", "start_date": "2024-01-02", "end_date": "2024-01-15", "provider": "recorded"},
    )
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]
    run = admin.wait_execution(task["id"], execution_id)
    assert (run["status"], run["result"]["count"], run["result"]["symbol"]) == ("success", 10, "600000.SH"), (
        run
    )

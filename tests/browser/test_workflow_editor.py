"""The visual workflow editor in real Chromium against the real stack: the guide's 混合执行示例
(two parallel tasks, then a third after both) built through the editor only, a cycle refused with
its nodes marked, the saved config equal to the JSON tab, and the same canvas watching the run."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import FloatRect, Locator, Page, expect

from stack import Stack
from tests.browser.test_admin_ui import task_id_of, unique
from tests.browser.ui import login
from tests.integration.api import Api
from tests.integration.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.browser

QUICK_CONFIG = {"duration_seconds": 0.5, "steps": 2}


def settled_box(page: Page, handle: Locator) -> FloatRect:
    """The handle's box once the canvas has stopped moving: auto-layout and fit-view land on later
    animation frames, so a box read right after the click can be where the handle no longer is."""
    box = handle.bounding_box()
    for _ in range(100):
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        again = handle.bounding_box()
        if again == box and again is not None:
            return again
        box = again
    raise AssertionError(f"{handle} kept moving")


def drag_edge(page: Page, source: Locator, target: Locator) -> None:
    """Draws an edge the way a user does: press on a node's bottom handle, move, release on the
    other node's top handle. The canvas is first scrolled to the middle of the window: the form is
    taller than the window, and where it is scrolled to depends on the earlier drags (a handle
    below the window's edge gets no mouse events)."""
    page.get_by_test_id("dag-view").evaluate("canvas => canvas.scrollIntoView({block: 'center'})")
    start = settled_box(page, source)
    end = settled_box(page, target)
    assert start == settled_box(page, source)
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=12)
    page.mouse.up()


def choose(page: Page, select: Locator, option: str) -> None:
    select.click()
    page.locator(f".ant-select-dropdown:visible .ant-select-item-option[title='{option}']").click()


def test_build_the_mixed_example_in_the_editor_and_watch_it_run(page: Page, stack: Stack, admin: Api) -> None:
    source_a = admin.create_task(name=unique("同步数据源A"), config=QUICK_CONFIG, enabled=True)
    source_b = admin.create_task(name=unique("同步数据源B"), config=QUICK_CONFIG, enabled=True)
    a, b = source_a["id"], source_b["id"]
    login(page, stack, "admin", ADMIN_PASSWORD)

    name = unique("混合执行示例")
    page.get_by_test_id("create-task").click()
    page.get_by_test_id("form-name").fill(name)
    choose(page, page.get_by_test_id("form-task-type"), "编排任务")
    expect(page.get_by_test_id("workflow-editor")).to_be_visible()
    canvas = page.get_by_test_id("dag-view")

    # Two existing tasks from the searchable palette, dragged onto the canvas.
    for task in (source_a, source_b):
        page.get_by_test_id("wf-palette-search").fill(task["name"])
        # The search has answered (the list is not re-rendered under the drag).
        expect(page.locator('[data-testid^="palette-task-"]')).to_have_count(1)
        item = page.get_by_test_id(f"palette-task-{task['id']}")
        item.drag_to(canvas, target_position={"x": 200 + 260 * (task["id"] - a), "y": 80})
        expect(page.get_by_test_id(f"dag-node-{task['id']}")).to_be_visible()

    # The third one created in place.
    sink_name = unique("汇总")
    page.get_by_test_id("wf-new-subtask").click()
    page.get_by_test_id("new-subtask-name").fill(sink_name)
    page.get_by_test_id("new-subtask-config").fill(json.dumps(QUICK_CONFIG))
    page.get_by_test_id("new-subtask-submit").click()
    sink = admin.ok("GET", "/tasks", params={"name": sink_name, "include_children": "true"})["tasks"][0]
    c = sink["id"]
    expect(page.get_by_test_id(f"dag-node-{c}")).to_be_visible()
    page.get_by_test_id("wf-auto-layout").click()

    # Edges: C after A and after B.
    drag_edge(page, page.get_by_test_id(f"dag-out-{a}"), page.get_by_test_id(f"dag-in-{c}"))
    expect(page.get_by_test_id(f"dag-edge-{a}-{c}")).to_have_count(1)
    drag_edge(page, page.get_by_test_id(f"dag-out-{b}"), page.get_by_test_id(f"dag-in-{c}"))
    expect(page.get_by_test_id(f"dag-edge-{b}-{c}")).to_have_count(1)
    expect(page.get_by_test_id("workflow-validation")).to_contain_text("配置有效")

    # A after C would close a cycle: refused, the cycle's nodes marked, no new edge.
    drag_edge(page, page.get_by_test_id(f"dag-out-{c}"), page.get_by_test_id(f"dag-in-{a}"))
    expect(page.get_by_test_id("wf-edge-refused")).to_contain_text("循环依赖")
    expect(page.get_by_test_id(f"dag-node-{a}")).to_have_attribute("data-invalid", "true")
    expect(page.get_by_test_id(f"dag-node-{c}")).to_have_attribute("data-invalid", "true")
    expect(page.get_by_test_id(f"dag-node-{b}")).to_have_attribute("data-invalid", "false")
    expect(page.locator('[data-testid^="dag-edge-"]')).to_have_count(2)

    # The JSON tab shows the config the editor wrote: the guide's mixed mode.
    page.get_by_test_id("config-tab-json").click()
    shown: dict[str, Any] = json.loads(page.get_by_test_id("form-config").input_value())
    assert shown == {
        "workflow_type": "parallel",
        "tasks": [
            {"task_id": a, "name": source_a["name"], "dependencies": []},
            {"task_id": b, "name": source_b["name"], "dependencies": []},
            {"task_id": c, "name": sink_name, "dependencies": [a, b]},
        ],
        "on_failure": "stop",
    }
    page.get_by_test_id("form-submit").click()
    expect(page.get_by_test_id("task-form")).to_have_count(0)
    workflow_id = task_id_of(page, name)
    assert admin.ok("GET", f"/tasks/{workflow_id}")["config"] == shown

    # Trigger, and watch the nodes turn green on the same canvas.
    page.get_by_test_id(f"action-trigger-{workflow_id}").click()
    expect(page.locator(".ant-message")).to_contain_text("任务已触发")
    page.get_by_test_id(f"action-history-{workflow_id}").click()
    row = page.locator('[data-testid^="exec-row-"]')
    expect(row).to_have_count(1)
    execution_id = int((row.get_attribute("data-testid") or "").removeprefix("exec-row-"))
    page.get_by_test_id(f"exec-dag-{execution_id}").click()
    expect(page.get_by_test_id("dag-modal")).to_be_visible()
    expect(page.get_by_test_id("dag-view")).to_have_attribute("data-mode", "run")
    for task_id in (a, b, c):
        expect(page.get_by_test_id(f"dag-node-{task_id}")).to_have_attribute(
            "data-status", "success", timeout=30_000
        )
    expect(page.get_by_test_id(f"dag-status-{execution_id}")).to_have_text(re.compile("成功"))

    # The run has ended: one node runs again alone from the same view, as a new child of the run.
    page.locator('[data-testid="dag-modal"] .ant-select').click()
    page.locator(".ant-select-item-option", has_text=f"(#{c})").click()
    page.get_by_test_id("dag-rerun-node").click()
    expect(page.locator(".ant-message")).to_contain_text("已重跑")
    again = [
        run
        for run in admin.ok("GET", "/executions", params={"parent_execution_id": execution_id})["executions"]
        if run["trigger"] == "manual"
    ]
    assert [(run["task_id"], run["triggered_by"]) for run in again] == [(c, "admin")]
    assert admin.wait_execution(c, again[0]["id"], 30)["status"] == "success"

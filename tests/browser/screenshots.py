"""Regenerates the README screenshots (docs/screenshot-*.png) from the real stack.

    python -m tests.browser.screenshots [--out docs]

Starts its own stack on SQLite in a temporary directory, fills demo data through the REST API, then
drives headless Chromium (1280×800) through every page of the admin UI, in Chinese and in English:
the list with a workflow expanded, the create form with the cron preview, the execution history with
a run in progress, a workflow run's DAG, the statistics, the workflow editor, the users page with the
header's system status, the audit log, the alerts page, the trading calendars and a command's run log.
Alert deliveries go to a webhook receiver in this process. Needs `web/dist` (cd web && npm run build)
and Debian's chromium and fonts-noto-cjk.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

from stack import Stack
from tests.browser.ui import VIEWPORT, launch, login
from tests.integration.api import Api
from tests.integration.conftest import ADMIN_PASSWORD, USER_PASSWORD, start_stack
from tests.receivers import HttpReceiver, http_receiver
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
LONG_RUN = {"duration_seconds": 60, "success_rate": 1.0, "message": "长时间任务执行完成", "steps": 30}
OPERATOR = "zhangsan"
#: A command with a log worth showing: framework lines, progress, ANSI colours, a warning.
SYNC_SCRIPT = """
import time
print("\\x1b[1m开始同步当日行情\\x1b[0m", flush=True)
for i, market in enumerate(["XSHG", "XSHE", "XHKG"] * 4):
    print(f"[{i + 1:02d}/12] 下载 {market} 日线 … \\x1b[32mok\\x1b[0m ({1200 + 37 * i} 行)", flush=True)
    time.sleep(0.05)
print("\\x1b[33mWARN\\x1b[0m 000001.XSHE 停牌，跳过", flush=True)
print("写入 14,876 行，耗时 0.6 s", flush=True)
"""


def quick(seconds: float, success_rate: float = 1.0, message: str = "任务完成") -> dict[str, Any]:
    return {"duration_seconds": seconds, "success_rate": success_rate, "message": message, "steps": 3}


class Demo:
    """The demo tasks, created and run through the REST API."""

    def __init__(self, api: Api, receiver: HttpReceiver) -> None:
        self.api = api
        self.receiver = receiver
        self.tasks: dict[str, dict[str, Any]] = {}
        self.log_run = 0

    def task(self, key: str, **fields: Any) -> dict[str, Any]:
        self.tasks[key] = self.api.create_task(**fields)
        return self.tasks[key]

    def run(self, key: str, wait: bool = True) -> int:
        task_id = self.tasks[key]["id"]
        execution_id: int = self.api.ok("POST", f"/tasks/{task_id}/trigger", json={})["execution_id"]
        if wait:
            self.api.wait_execution(task_id, execution_id, timeout=60)
        return execution_id

    def fill(self) -> None:
        # A trading calendar of one's own; an alert channel and a rule, delivered to our receiver.
        self.api.ok(
            "POST",
            "/calendars",
            json={
                "name": "COMPANY_XSHG",
                "base": "XSHG",
                "removed_dates": ["2026-12-24"],
                "added_dates": [],
                "data_end": "",
                "description": "上交所交易日，去掉公司年会",
            },
        )
        channel = self.api.ok(
            "POST",
            "/api/v1/alerts/channels",
            json={
                "name": "值班机器人",
                "type": "webhook",
                "config": {"url": self.receiver.url("/webhook/oncall"), "secret": "demo-secret"},
            },
        )
        self.api.ok(
            "POST",
            "/api/v1/alerts/rules",
            json={
                "name": "失败告警",
                "events": ["run_failed", "executor_lost"],
                "channel_ids": [channel["id"]],
            },
        )
        self.api.ok("POST", f"/api/v1/alerts/channels/{channel['id']}/test", json={})
        self.task(
            "report",
            name="每日收益报表",
            cron_expression="0 18 * * 1-5",
            calendar="XSHG",
            description="交易日收盘后生成收益报表",
            config=quick(0.6, message="报表生成完成"),
        )
        self.task("sync", name="行情数据同步", interval_seconds=300, config=quick(0.4, message="同步完成"))
        self.task("flaky", name="因子计算", config=quick(0.5, 0.5, "因子计算完成"), max_retries=0)
        self.task("long", name="长时间任务", config=LONG_RUN, max_retries=0)
        self.task("manual", name="手动数据修复", task_type="manual_task", config={"command": "echo 修复完成"})
        self.task(
            "archive", name="历史数据归档", cron_expression="30 2 * * *", enabled=False, config=quick(0.3)
        )
        self.task(
            "command",
            name="行情下载",
            task_type="common_task",
            config={"command": ["/usr/bin/python3", "-c", SYNC_SCRIPT]},
            max_retries=0,
        )
        self.task("clean", name="数据清洗A", config=quick(0.8, message="清洗完成"))
        self.task("clean_b", name="数据清洗B", config=quick(1.2, message="清洗完成"))
        self.task("transform", name="数据转换", config=quick(1.0, message="转换完成"))
        self.task("load", name="数据入库", config=quick(0.8, message="入库完成"))
        ids = {key: self.tasks[key]["id"] for key in ("clean", "clean_b", "transform", "load")}
        self.task(
            "workflow",
            name="每日数据流水线",
            task_type="workflow",
            cron_expression="0 1 * * *",
            max_retries=0,
            description="清洗 → 转换 → 入库",
            config={
                "workflow_type": "parallel",
                "tasks": [
                    {"task_id": ids["clean"], "name": "清洗A", "dependencies": []},
                    {"task_id": ids["clean_b"], "name": "清洗B", "dependencies": []},
                    {
                        "task_id": ids["transform"],
                        "name": "转换",
                        "dependencies": [ids["clean"], ids["clean_b"]],
                    },
                    {"task_id": ids["load"], "name": "入库", "dependencies": [ids["transform"]]},
                ],
                "on_failure": "stop",
            },
        )
        # Finished runs for the history and the statistics.
        for key in ("report", "sync", "flaky", "flaky", "report", "flaky", "sync", "manual", "flaky"):
            self.run(key)
        self.run("workflow")
        self.log_run = self.run("command")
        # The audit log: an operator's trigger, an admin's change of a field.
        self.api.ok(
            "POST",
            "/api/v1/auth/users",
            json={"username": OPERATOR, "password": USER_PASSWORD, "role": "operator"},
        )
        operator = Api.login(self.api.base_url, OPERATOR, USER_PASSWORD)
        operator.ok("POST", f"/tasks/{self.tasks['sync']['id']}/trigger", json={})
        self.api.ok("PUT", f"/tasks/{self.tasks['report']['id']}", json={"max_retries": 2})


def shoot(page: Page, path: Path) -> None:
    page.mouse.move(VIEWPORT["width"] - 1, VIEWPORT["height"] - 1)  # no hover highlight
    page.wait_for_timeout(400)  # let antd's open/close animations finish
    page.screenshot(path=str(path))
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


#: The page's languages and the suffix of their file names (Chinese, the default, has none).
LANGUAGES = {"zh": "", "en": "-en"}


def take_screenshots(stack: Stack, demo: Demo, out: Path, lang: str) -> None:
    tasks = demo.tasks
    suffix = LANGUAGES[lang]

    def png(name: str) -> Path:
        return out / f"screenshot-{name}{suffix}.png"

    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
        context.add_init_script(f"localStorage.setItem('zq.lang', '{lang}')")
        context.set_default_timeout(15_000)
        page = context.new_page()
        login(page, stack, "admin", ADMIN_PASSWORD)
        page.get_by_test_id("auto-refresh-toggle").click()  # a still page for the pictures

        # 1. The list with the workflow expanded.
        workflow_id = tasks["workflow"]["id"]
        page.get_by_test_id(f"expand-{workflow_id}").click()
        expect(page.locator("tr.child-task-row")).to_have_count(4)
        expect(page.get_by_test_id(f"task-latest-{workflow_id}")).to_be_visible()
        shoot(page, png("list"))
        page.get_by_test_id(f"expand-{workflow_id}").click()

        # 2. The create form: cron on the Shanghai calendar with its next run times, the guide's
        # 30-step config.
        page.get_by_test_id("create-task").click()
        page.get_by_test_id("form-name").fill("收盘后数据更新")
        page.get_by_test_id("form-schedule-mode-cron").click()
        page.get_by_test_id("form-cron").fill("0 16 * * 1-5")
        page.get_by_test_id("form-calendar").click()
        page.keyboard.type("XSHG")
        page.locator('.ant-select-dropdown:visible .ant-select-item-option[title^="XSHG ("]').click()
        expect(page.get_by_test_id("cron-calendar-end")).to_be_visible()
        page.get_by_test_id("form-description").fill("每个交易日 16:00 更新当日行情")
        page.get_by_test_id("config-examples").click()
        page.get_by_test_id("config-example-example-30").click()
        expect(page.get_by_test_id("cron-preview").locator("li")).to_have_count(5)
        page.get_by_test_id("task-form").evaluate("form => form.closest('.ant-modal-wrap').scrollTo(0, 0)")
        shoot(page, png("form"))
        page.get_by_test_id("form-cancel").click()
        expect(page.get_by_test_id("task-form")).to_have_count(0)

        # 3. The history with a run in progress (live over SSE).
        execution_id = demo.run("long", wait=False)
        page.get_by_test_id("global-history").click()
        steps = page.get_by_test_id(f"exec-steps-{execution_id}")
        wait_for(lambda: _step(steps.text_content() or "") >= 9, 40, "the long run to reach step 9")
        expect(page.get_by_test_id(f"exec-status-{execution_id}")).to_have_attribute("data-status", "running")
        shoot(page, png("history"))
        demo.api.ok("POST", f"/executions/{execution_id}/terminate", json={})
        page.locator(".ant-drawer-close").click()
        expect(page.get_by_test_id("history-drawer")).to_have_count(0)

        # 4. The DAG of the workflow run.
        page.get_by_test_id(f"action-history-{workflow_id}").click()
        dag_button = page.locator('[data-testid^="exec-dag-"]').first
        dag_button.click()
        expect(page.get_by_test_id("dag-view")).to_be_visible()
        expect(page.locator('[data-testid^="dag-node-"]')).to_have_count(4)
        expect(page.locator('[data-testid^="dag-edge-"]')).to_have_count(3)
        shoot(page, png("dag"))
        page.locator(".ant-modal-close").click()
        expect(page.get_by_test_id("dag-modal")).to_have_count(0)
        page.locator(".ant-drawer-close").click()
        expect(page.get_by_test_id("history-drawer")).to_have_count(0)

        # 5. Global statistics with the charts.
        page.get_by_test_id("global-stats").click()
        expect(page.get_by_test_id("stats-runs-chart")).to_be_visible()
        expect(page.get_by_test_id("stats-duration-chart")).to_be_visible()
        shoot(page, png("stats"))
        page.locator(".ant-drawer-close").click()
        expect(page.get_by_test_id("stats-drawer")).to_have_count(0)

        # 6. The workflow in the visual editor.
        page.get_by_test_id(f"action-more-{workflow_id}").click()
        page.get_by_test_id(f"action-edit-{workflow_id}").click()
        expect(page.get_by_test_id("workflow-editor")).to_be_visible()
        expect(page.locator('[data-testid^="dag-edge-"]')).to_have_count(3)
        page.get_by_test_id(f"dag-node-{tasks['transform']['id']}").click()
        expect(page.get_by_test_id("wf-node-settings")).to_be_visible()
        shoot(page, png("editor"))
        page.get_by_test_id("form-cancel").click()
        expect(page.get_by_test_id("task-form")).to_have_count(0)

        # 7. The users page (admin), the header's system status.
        page.get_by_test_id("users-open").click()
        expect(page.get_by_test_id("user-row-admin")).to_be_visible()
        expect(page.get_by_test_id("system-status")).to_have_attribute("data-state", "up")
        shoot(page, png("users"))
        page.keyboard.press("Escape")
        expect(page.get_by_test_id("users-drawer")).to_have_count(0)

        # 8. The audit log: the operator's trigger, the admin's change with its diff.
        page.get_by_test_id("audit-open").click()
        expect(
            page.get_by_test_id("audit-drawer").locator('[data-testid^="audit-row-"]').first
        ).to_be_visible()
        expect(page.get_by_test_id("audit-drawer")).to_contain_text(OPERATOR)
        shoot(page, png("audit"))
        page.keyboard.press("Escape")
        expect(page.get_by_test_id("audit-drawer")).to_have_count(0)

        # 9. Alerts: the deliveries of the rule (and of the channel's test), sent to the receiver.
        page.get_by_test_id("alerts-open").click()
        page.get_by_test_id("alerts-tab-deliveries").click()
        drawer = page.get_by_test_id("alerts-drawer")
        expect(drawer.locator('[data-state="sent"]').first).to_be_visible()
        expect(drawer).to_contain_text("值班机器人")
        shoot(page, png("alerts"))
        page.keyboard.press("Escape")
        expect(page.get_by_test_id("alerts-drawer")).to_have_count(0)

        # 10. Trading calendars: the library's and the custom one, where each one's data ends.
        page.get_by_test_id("calendars-open").click()
        expect(page.get_by_test_id("calendar-row-COMPANY_XSHG")).to_be_visible()
        expect(page.get_by_test_id("calendar-row-XSHG")).to_contain_text("-12-31")
        shoot(page, png("calendars"))
        page.keyboard.press("Escape")
        expect(page.get_by_test_id("calendars-drawer")).to_have_count(0)

        # 11. A command's run log, complete.
        page.get_by_test_id(f"action-history-{tasks['command']['id']}").click()
        page.get_by_test_id(f"exec-log-{demo.log_run}").click()
        expect(page.get_by_test_id("log-complete")).to_be_visible()
        expect(page.get_by_test_id("log-lines")).to_contain_text("WARN")
        shoot(page, png("log"))
        context.close()
        browser.close()


def _step(text: str) -> int:
    """The current step of `步骤 9/30` (or `Step 9/30`)."""
    match = re.search(r"(\d+)\s*/", text)
    return int(match.group(1)) if match else -1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="directory for the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zq-screens-") as tmp:
        stack = start_stack(Path(tmp), f"sqlite:///{tmp}/registry.db", executors=2)
        try:
            with http_receiver("demo-secret") as receiver:
                demo = Demo(Api.login(stack.http_url, "admin", ADMIN_PASSWORD), receiver)
                demo.fill()
                for lang in LANGUAGES:
                    take_screenshots(stack, demo, args.out.resolve(), lang)
        finally:
            stack.stop()
    print(f"done in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()

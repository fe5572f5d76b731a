"""Import and export on the admin page in real Chromium: export downloads the document with the
workflows' sub-tasks named; import previews a file with a dry run (nothing changes) and applies it;
a refused file shows which item is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from stack import Stack
from tests.browser.ui import login
from tests.integration.api import Api, unique
from tests.integration.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.browser


def test_export_downloads_every_task_as_a_document(page: Page, stack: Stack, admin: Api) -> None:
    name = unique("导出")
    admin.create_task(name=name, task_type="manual_task", config={"command": "true"})
    login(page, stack, "admin", ADMIN_PASSWORD)
    with page.expect_download() as download:
        page.get_by_test_id("export-tasks").click()
    document = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert document["version"] == 1
    assert any(item["name"] == name and "id" not in item for item in document["tasks"])


def test_import_previews_with_a_dry_run_then_applies(
    page: Page, stack: Stack, admin: Api, tmp_path: Path
) -> None:
    name = unique("导入")
    path = tmp_path / "doc.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "tasks": [{"name": name, "task_type": "manual_task", "config": {"command": "true"}}],
            }
        ),
        "utf-8",
    )
    login(page, stack, "admin", ADMIN_PASSWORD)
    page.get_by_test_id("import-tasks").click()
    page.get_by_test_id("import-file").set_input_files(str(path))
    page.get_by_test_id("import-preview").click()
    expect(page.get_by_test_id("import-summary")).to_contain_text("新建 1")
    assert admin.ok("GET", "/tasks", params={"name": name})["total"] == 0  # the preview changed nothing
    page.get_by_test_id("import-apply").click()
    expect(page.locator(".ant-message")).to_contain_text("导入完成：新建 1")
    assert admin.ok("GET", "/tasks", params={"name": name})["total"] == 1


def test_a_refused_file_shows_the_item_at_fault(page: Page, stack: Stack, tmp_path: Path) -> None:
    name = unique("坏")
    path = tmp_path / "doc.json"
    bad = {
        "name": name,
        "task_type": "common_task",
        "cron_expression": "every day",
        "config": {"command": "true"},
    }
    path.write_text(json.dumps({"version": 1, "tasks": [bad]}), "utf-8")
    login(page, stack, "admin", ADMIN_PASSWORD)
    page.get_by_test_id("import-tasks").click()
    page.get_by_test_id("import-file").set_input_files(str(path))
    page.get_by_test_id("import-preview").click()
    expect(page.get_by_test_id("import-problem")).to_contain_text(f"tasks[0] ({name})")
    expect(page.get_by_test_id("import-apply")).to_be_disabled()

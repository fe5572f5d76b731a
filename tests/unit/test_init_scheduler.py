"""scripts/init_scheduler.py: the guide's flags, idempotency, --force."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import func, select

from services.registry.db import Database
from services.registry.models import TaskRow

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "init_scheduler.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("init_scheduler", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    url = f"sqlite:///{tmp_path / 'init.db'}"
    monkeypatch.setenv("ZQ_DATABASE_URL", url)
    return Database(url)


def names(db: Database) -> dict[str, TaskRow]:
    with db.session() as session:
        return {row.name: row for row in session.scalars(select(TaskRow))}


def test_no_flag_creates_tables_examples_and_workflows_once(database: Database) -> None:
    script = load_script()
    assert script.main([]) == 0
    tasks = names(database)
    assert {"示例任务-快速测试", "示例任务-每日18点", "示例任务-命令执行", "编排任务-混合执行示例"} <= set(
        tasks
    )
    assert tasks["示例任务-已禁用"].enabled is False
    assert tasks["示例任务-每日18点"].cron_expression == "0 18 * * *"
    assert sum(t.task_type == "workflow" for t in tasks.values()) == 3
    assert script.main([]) == 0  # idempotent
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(TaskRow)) == len(tasks)


def test_each_flag_does_only_its_part(database: Database) -> None:
    script = load_script()
    assert script.main(["--tables-only"]) == 0
    assert names(database) == {}
    assert script.main(["--workflow-only"]) == 0
    assert sum(t.task_type == "workflow" for t in names(database).values()) == 3
    assert "示例任务-每分钟" not in names(database)
    assert script.main(["--examples-only"]) == 0
    assert "示例任务-每分钟" in names(database)


def test_force_recreates_the_examples_with_new_ids(database: Database) -> None:
    script = load_script()
    script.main([])
    before = {name: row.id for name, row in names(database).items()}
    assert script.main(["--force"]) == 0
    after = {name: row.id for name, row in names(database).items()}
    assert set(after) == set(before)
    assert min(after.values()) > max(before.values())  # ids are never reused

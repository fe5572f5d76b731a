"""scripts/init_scheduler.py: the guide's flags, idempotency, --force, and tasks created only through a
registry: a running one when it answers, else one the script starts for itself."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import func, select

from services.registry.db import Database
from services.registry.models import TaskRow
from services.registry.server import create_server
from services.registry.settings import RegistrySettings

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "init_scheduler.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("init_scheduler", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    url = f"sqlite:///{tmp_path / 'init.db'}"
    monkeypatch.setenv("ZQ_DATABASE_URL", url)
    monkeypatch.setenv("ZQ_DATA_DIR", str(tmp_path))
    # Nothing answers there: the script starts its own registry.
    monkeypatch.setenv("ZQ_REGISTRY_PORT", str(unused_port()))
    monkeypatch.delenv("ZQ_SERVICE_TOKEN", raising=False)
    return Database(url)


def names(db: Database) -> dict[str, TaskRow]:
    with db.session() as session:
        return {row.name: row for row in session.scalars(select(TaskRow))}


def test_no_flag_creates_tables_examples_and_workflows_once(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load_script()
    assert script.main([]) == 0
    assert "已在本进程启动一个" in capsys.readouterr().out
    tasks = names(database)
    assert {"示例任务-快速测试", "示例任务-每日18点", "示例任务-命令执行", "编排任务-混合执行示例"} <= set(
        tasks
    )
    assert tasks["示例任务-已禁用"].enabled is False
    assert tasks["示例任务-每日18点"].cron_expression == "0 18 * * *"
    assert sum(t.task_type == "workflow" for t in tasks.values()) == 3
    mixed = tasks["编排任务-混合执行示例"].config["tasks"]
    assert [node["task_id"] for node in mixed] == [
        tasks[name].id for name in ("示例任务-快速测试", "示例任务-步骤1", "示例任务-步骤2", "示例任务-步骤3")
    ]
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


class RunningRegistry:
    """A registry serving on its own event loop in a thread; records the task ids its feed publishes."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self.published: list[int | None] = []  # None: any task may have changed (never here)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),))

    async def _serve(self) -> None:
        registry = await create_server(self.settings)
        # Called on every task event the feed delivers, before the call that made it returns.
        registry.app.events.on_task_change.append(self.published.append)
        self._ready.set()
        await self._stop.wait()
        await registry.stop(0)

    def __enter__(self) -> RunningRegistry:
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._loop.close()


@pytest.fixture
def running(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRegistry]:
    monkeypatch.setenv("ZQ_SERVICE_TOKEN", "the-running-registrys-token")
    with RunningRegistry(RegistrySettings.from_env()) as registry:
        yield registry


def test_a_running_registry_creates_the_tasks_and_publishes_each_on_its_scheduler_feed(
    running: RunningRegistry, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load_script().main(["--examples-only"]) == 0
    assert f"通过运行中的注册中心创建任务 (127.0.0.1:{running.settings.port})" in capsys.readouterr().out
    created = names(database)
    assert "示例任务-每分钟" in created
    assert None not in running.published
    assert sorted(filter(None, running.published)) == sorted(row.id for row in created.values())


def test_a_running_registry_refuses_a_script_without_its_token(
    running: RunningRegistry,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ZQ_SERVICE_TOKEN", "not-its-token")
    assert load_script().main([]) == 1
    assert "ZQ_SERVICE_TOKEN" in capsys.readouterr().err
    assert names(database) == {}

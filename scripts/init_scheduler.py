"""Creates the schema and the user guide's example tasks and workflows.

    python scripts/init_scheduler.py                  # tables + examples + workflows
    python scripts/init_scheduler.py --tables-only
    python scripts/init_scheduler.py --examples-only
    python scripts/init_scheduler.py --workflow-only
    python scripts/init_scheduler.py --force          # delete and re-create the examples

Idempotent: existing tasks (by name) are left alone unless --force. Uses ZQ_DATABASE_URL, or the
embedded SQLite database in ZQ_DATA_DIR (default ./var).

The schema is migrated directly; tasks are created only through the registry's API (the registry is
the only writer of task rows, and tells the scheduler and its replicas of every change): the running
registry at ZQ_BIND_HOST:ZQ_REGISTRY_PORT with ZQ_SERVICE_TOKEN, or, when none answers there (as
before `make up` starts the stack), one started in this process for the run (`services/registry/
seeding.py`). The missing tasks go in as one import document (`ImportTasks`, the bulk path of
`POST /tasks:import`): all or nothing, workflows naming their steps, which the import resolves to
ids (steps in the same document or already there).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from pathlib import Path
from typing import Any

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "gen"),
]

import grpc  # noqa: E402

from services.registry.db import Database, migrate  # noqa: E402
from services.registry.seeding import TaskWriter, connect  # noqa: E402
from services.registry.settings import RegistrySettings  # noqa: E402

PREFIXES = ("示例任务-", "编排任务-")


def example(duration: float, success_rate: float, message: str, steps: int) -> dict[str, Any]:
    return {
        "task_action": "example_task",
        "duration_seconds": duration,
        "success_rate": success_rate,
        "message": message,
        "steps": steps,
    }


EXAMPLE_TASKS: list[dict[str, Any]] = [
    {
        "name": "示例任务-快速测试",
        "interval_seconds": 30,
        "config": example(3, 1.0, "快速测试任务执行完成", 5),
        "description": "这是一个示例任务，每30秒执行一次，用于快速测试定时任务功能",
    },
    {
        "name": "示例任务-每分钟",
        "interval_seconds": 60,
        "config": example(5, 0.9, "每分钟任务执行完成", 10),
        "max_retries": 2,
        "retry_interval": 30,
        "description": "示例任务，每分钟执行一次",
    },
    {
        "name": "示例任务-每日18点",
        "cron_expression": "0 18 * * *",
        "config": example(10, 1.0, "每日任务执行完成", 20),
        "retry_interval": 300,
        "description": "示例任务，每天18:00执行",
    },
    {
        "name": "示例任务-已禁用",
        "interval_seconds": 60,
        "config": example(2, 1.0, "已禁用任务执行完成", 3),
        "enabled": False,
        "description": "这是一个已禁用的示例任务，可以在Web界面中启用",
    },
    {
        "name": "示例任务-实时进度演示",
        "interval_seconds": 300,
        "config": example(30, 1.0, "实时进度演示任务执行完成", 30),
        "description": "这是一个用于演示实时进度查看功能的示例任务，执行时间较长，可以在执行历史中实时查看进度",
    },
    {
        "name": "示例任务-命令执行",
        "interval_seconds": 300,
        "config": {"command": "python3 scripts/example_job.py --steps 5 --delay 1", "timeout_seconds": 300},
        "description": "这是一个使用命令执行功能的示例任务，演示如何通过配置执行外部脚本",
    },
]

# Workflow steps have no schedule of their own: they run only inside the workflows.
WORKFLOW_STEPS = ["示例任务-步骤1", "示例任务-步骤2", "示例任务-步骤3"]


def workflow(kind: str, nodes: list[tuple[str, list[str]]], on_failure: str) -> dict[str, Any]:
    """A workflow config as an import document writes it: steps by name."""
    return {
        "workflow_type": kind,
        "tasks": [{"task": name, "name": name, "dependencies": deps} for name, deps in nodes],
        "on_failure": on_failure,
    }


def step(number: int, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "config": example(3, 1.0, f"{name}执行完成", 5),
        "description": f"编排任务步骤{number}",
    }


def workflows() -> list[dict[str, Any]]:
    quick = EXAMPLE_TASKS[0]["name"]
    s1, s2, s3 = WORKFLOW_STEPS
    examples = [
        (
            "编排任务-串行执行示例",
            workflow("serial", [(s1, []), (s2, [s1]), (s3, [s2])], "stop"),
            "串行执行示例：按顺序执行任务1→任务2→任务3",
        ),
        (
            "编排任务-并行执行示例",
            workflow("parallel", [(quick, []), (s1, []), (s2, [])], "continue"),
            "并行执行示例：同时执行多个独立任务",
        ),
        (
            "编排任务-混合执行示例",
            workflow("parallel", [(quick, []), (s1, []), (s2, [quick, s1]), (s3, [s2])], "stop"),
            "混合执行示例：先并行执行任务1和任务2，然后串行执行任务3",
        ),
    ]
    return [
        {
            "name": name,
            "task_type": "workflow",
            "interval_seconds": 600,
            "config": config,
            "description": description,
        }
        for name, config, description in examples
    ]


def document(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The tasks the flags ask for, as import items (steps before the workflows that name them)."""
    items: list[dict[str, Any]] = []
    if not args.workflow_only:
        items += EXAMPLE_TASKS
    if not args.examples_only:
        items += [EXAMPLE_TASKS[0], *(step(n, name) for n, name in enumerate(WORKFLOW_STEPS, 1))]
        items += workflows()
    unique = {item["name"]: item for item in items}  # the quick test is in both groups
    return [{"task_type": "common_task", **item} for item in unique.values()]


async def ensure(writer: TaskWriter, items: list[dict[str, Any]], found: dict[str, tuple[int, str]]) -> None:
    """Imports the items whose name is not taken yet; the others are left alone."""
    for item in items:
        if item["name"] in found:
            print(f"  ○ 任务已存在: {item['name']} (ID: {found[item['name']][0]})")
    missing = [item for item in items if item["name"] not in found]
    for name, _, task_id in await writer.import_tasks(missing):
        print(f"  ✓ 创建任务: {name} (ID: {task_id})")


async def existing(writer: TaskWriter) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for prefix in PREFIXES:
        found.update(await writer.names(prefix))
    return found


async def delete_examples(writer: TaskWriter, found: dict[str, tuple[int, str]]) -> None:
    print("删除已存在的示例任务 ...")
    # Workflows first: they reference the others.
    for name, (task_id, _) in sorted(found.items(), key=lambda item: item[1][1] != "workflow"):
        await writer.delete(task_id)
        print(f"  ✗ 删除任务: {name} (ID: {task_id})")


async def create_tasks(settings: RegistrySettings, args: argparse.Namespace) -> None:
    async with connect(settings) as writer:
        if writer.started_here:
            print(f"未发现运行中的注册中心，已在本进程启动一个 ({writer.address}) ...")
        else:
            print(f"通过运行中的注册中心创建任务 ({writer.address}) ...")
        found = await existing(writer)
        if args.force:
            await delete_examples(writer, found)
            found = {}
        print("创建示例任务和编排任务示例 ...")
        await ensure(writer, document(args), found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="初始化定时任务系统：数据库表、示例任务、编排任务示例")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--tables-only", action="store_true", help="只创建数据库表")
    only.add_argument("--examples-only", action="store_true", help="只创建示例任务")
    only.add_argument("--workflow-only", action="store_true", help="只创建编排任务示例")
    parser.add_argument("--force", action="store_true", help="强制重新创建（删除已存在的示例任务）")
    args = parser.parse_args(argv)

    # The shared secret is needed only to talk to a running registry; one started here makes its own.
    env = dict(os.environ)
    env.setdefault("ZQ_SERVICE_TOKEN", secrets.token_urlsafe(32))
    settings = RegistrySettings.from_env(env)
    db = Database(settings.database_url)
    try:
        print("创建数据库表 ...")
        migrate(db.engine)
        print("  ✓ 数据库表已就绪 (zq_task_scheduled_tasks, zq_task_task_executions, zq_task_users)")
    finally:
        db.dispose()
    if args.tables_only:
        return 0
    try:
        asyncio.run(create_tasks(settings, args))
    except grpc.aio.AioRpcError as exc:
        print(f"初始化失败: {exc.details()}", file=sys.stderr)
        if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            print("  (a registry is running: set ZQ_SERVICE_TOKEN to its service token)", file=sys.stderr)
        return 1
    print("完成。")
    return 0


if __name__ == "__main__":
    sys.exit(main())

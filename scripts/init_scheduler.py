"""Creates the schema and the user guide's example tasks and workflows.

    python scripts/init_scheduler.py                  # tables + examples + workflows
    python scripts/init_scheduler.py --tables-only
    python scripts/init_scheduler.py --examples-only
    python scripts/init_scheduler.py --workflow-only
    python scripts/init_scheduler.py --force          # delete and re-create the examples

Idempotent: existing tasks (by name) are left alone unless --force. Uses ZQ_DATABASE_URL, or the
embedded SQLite database in ZQ_DATA_DIR (default ./var). A running registry picks the changes up
within seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "gen"),
]

from sqlalchemy import or_, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from services.common.errors import DomainError  # noqa: E402
from services.registry.db import Database, migrate, utcnow  # noqa: E402
from services.registry.models import TaskRow  # noqa: E402
from services.registry.settings import RegistrySettings  # noqa: E402
from services.registry.store import tasks as task_store  # noqa: E402

ACTOR = "init_scheduler"


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


def workflow(
    kind: str, nodes: list[tuple[str, list[str]]], on_failure: str, ids: dict[str, int]
) -> dict[str, Any]:
    return {
        "workflow_type": kind,
        "tasks": [
            {"task_id": ids[name], "name": name, "dependencies": [ids[d] for d in deps]}
            for name, deps in nodes
        ],
        "on_failure": on_failure,
    }


def ensure(session: Session, fields: dict[str, Any], default_timezone: str) -> TaskRow:
    existing = session.scalar(select(TaskRow).where(TaskRow.name == fields["name"]))
    if existing is not None:
        print(f"  ○ 任务已存在: {existing.name} (ID: {existing.id})")
        return existing
    row = task_store.create_task(
        session, {"task_type": "common_task", **fields}, ACTOR, default_timezone, utcnow()
    )
    print(f"  ✓ 创建任务: {row.name} (ID: {row.id})")
    return row


def create_examples(db: Database, default_timezone: str) -> None:
    print("创建示例任务 ...")
    with db.session() as session:
        for fields in EXAMPLE_TASKS:
            ensure(session, fields, default_timezone)


def create_workflows(db: Database, default_timezone: str) -> None:
    print("创建编排任务示例 ...")
    with db.session() as session:
        ids: dict[str, int] = {}
        quick = ensure(session, EXAMPLE_TASKS[0], default_timezone)
        ids[quick.name] = quick.id
        for number, name in enumerate(WORKFLOW_STEPS, start=1):
            row = ensure(
                session,
                {
                    "name": name,
                    "config": example(3, 1.0, f"{name}执行完成", 5),
                    "description": f"编排任务步骤{number}",
                },
                default_timezone,
            )
            ids[name] = row.id
        s1, s2, s3 = WORKFLOW_STEPS
        examples = [
            (
                "编排任务-串行执行示例",
                workflow("serial", [(s1, []), (s2, [s1]), (s3, [s2])], "stop", ids),
                "串行执行示例：按顺序执行任务1→任务2→任务3",
            ),
            (
                "编排任务-并行执行示例",
                workflow("parallel", [(quick.name, []), (s1, []), (s2, [])], "continue", ids),
                "并行执行示例：同时执行多个独立任务",
            ),
            (
                "编排任务-混合执行示例",
                workflow(
                    "parallel", [(quick.name, []), (s1, []), (s2, [quick.name, s1]), (s3, [s2])], "stop", ids
                ),
                "混合执行示例：先并行执行任务1和任务2，然后串行执行任务3",
            ),
        ]
        for name, config, description in examples:
            ensure(
                session,
                {
                    "name": name,
                    "task_type": "workflow",
                    "interval_seconds": 600,
                    "config": config,
                    "description": description,
                },
                default_timezone,
            )


def delete_examples(db: Database) -> None:
    print("删除已存在的示例任务 ...")
    with db.session() as session:
        rows = list(
            session.scalars(
                select(TaskRow)
                .where(or_(TaskRow.name.like("示例任务-%"), TaskRow.name.like("编排任务-%")))
                .order_by(TaskRow.task_type != "workflow")  # workflows first: they reference the others
            )
        )
        for row in rows:
            task_store.delete_task(session, row.id, force=True)
            print(f"  ✗ 删除任务: {row.name} (ID: {row.id})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="初始化定时任务系统：数据库表、示例任务、编排任务示例")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--tables-only", action="store_true", help="只创建数据库表")
    only.add_argument("--examples-only", action="store_true", help="只创建示例任务")
    only.add_argument("--workflow-only", action="store_true", help="只创建编排任务示例")
    parser.add_argument("--force", action="store_true", help="强制重新创建（删除已存在的示例任务）")
    args = parser.parse_args(argv)

    # The script needs only the database settings, not the services' shared secret.
    settings = RegistrySettings.from_env({**os.environ, "ZQ_SERVICE_TOKEN": "not-used-by-this-script"})
    db = Database(settings.database_url)
    try:
        print("创建数据库表 ...")
        migrate(db.engine)
        print("  ✓ 数据库表已就绪 (zq_task_scheduled_tasks, zq_task_task_executions, zq_task_users)")
        if args.tables_only:
            return 0
        if args.force:
            delete_examples(db)
        if not args.workflow_only:
            create_examples(db, settings.default_timezone)
        if not args.examples_only:
            create_workflows(db, settings.default_timezone)
        print("完成。")
        return 0
    except DomainError as exc:
        print(f"初始化失败: {exc.message}", file=sys.stderr)
        return 1
    finally:
        db.dispose()


if __name__ == "__main__":
    sys.exit(main())

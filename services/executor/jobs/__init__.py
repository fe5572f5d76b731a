"""Job kinds and the routing from a task to its job."""

from __future__ import annotations

from typing import Any

from services.executor.jobs.command import run_command
from services.executor.jobs.context import JobContext, JobFailed
from services.executor.jobs.example import run_example
from services.executor.jobs.plugin import PluginRegistry, run_plugin

WORKFLOW_REFUSED = "编排任务由调度器执行，不能直接在执行器上运行"


async def run_job(ctx: JobContext, plugins: PluginRegistry) -> dict[str, Any]:
    """Runs the job the task describes; its result is merged over the progress. Fails with JobFailed."""
    task_type, config = ctx.spec.task_type, ctx.config
    if task_type == "example_task":
        return await run_example(ctx)
    if task_type == "workflow":
        raise JobFailed(WORKFLOW_REFUSED)
    if task_type not in ("common_task", "manual_task"):
        raise JobFailed(f"不支持的任务类型: {task_type}")
    # Routing of common/manual tasks, first match wins: command, then task_action.
    if config.get("command") is not None:
        return await run_command(ctx)
    action = config.get("task_action")
    if action is None or action == "":
        raise JobFailed("通用任务配置中必须包含 'command' 或 'task_action' 字段")
    if action == "example_task":
        return await run_example(ctx)
    plugin = plugins.get(action) if isinstance(action, str) else None
    if plugin is None:
        raise JobFailed(f"不支持的 task_action: {action}。支持的 action: {', '.join(plugins.actions())}")
    return await run_plugin(ctx, action, plugin)

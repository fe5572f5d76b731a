"""Job kinds and the routing from a task to its job."""

from __future__ import annotations

from typing import Any

from services.common.data_sync import data_sync_type
from services.common.job_config import ConfigInvalid
from services.common.vocabulary import TaskType
from services.executor.jobs.command import run_command
from services.executor.jobs.context import JobContext, JobFailed
from services.executor.jobs.data_sync import run_data_sync
from services.executor.jobs.example import run_example
from services.executor.jobs.plugin import PluginRegistry, run_plugin

WORKFLOW_REFUSED = "编排任务由调度器执行，不能直接在执行器上运行"


async def run_job(ctx: JobContext, plugins: PluginRegistry) -> dict[str, Any]:
    """Runs the job the task describes; its result is merged over the progress. Fails with JobFailed."""
    try:
        return await _route(ctx, plugins)
    except ConfigInvalid as exc:  # saved before the registry checked configs, or edited in the database
        raise JobFailed(exc.message) from None


async def _route(ctx: JobContext, plugins: PluginRegistry) -> dict[str, Any]:
    task_type, config = ctx.spec.task_type, ctx.config
    if task_type == TaskType.EXAMPLE:
        return await run_example(ctx)
    if task_type == TaskType.WORKFLOW:
        raise JobFailed(WORKFLOW_REFUSED)
    # A data-sync type, or a common/manual task naming one as its task_action.
    sync_type = data_sync_type(task_type, config)
    if sync_type is not None:
        return await run_data_sync(ctx, sync_type)
    if task_type not in (TaskType.COMMON, TaskType.MANUAL):
        raise JobFailed(f"不支持的任务类型: {task_type}")
    # Routing of common/manual tasks, first match wins: command, then task_action.
    if config.get("command") is not None:
        return await run_command(ctx)
    action = config.get("task_action")
    if action is None or action == "":
        raise JobFailed("通用任务配置中必须包含 'command' 或 'task_action' 字段")
    if action == TaskType.EXAMPLE:
        return await run_example(ctx)
    plugin = plugins.get(action) if isinstance(action, str) else None
    if plugin is None:
        raise JobFailed(f"不支持的 task_action: {action}。支持的 action: {', '.join(plugins.actions())}")
    return await run_plugin(ctx, action, plugin)

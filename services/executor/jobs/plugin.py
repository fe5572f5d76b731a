"""task_action plugins: Python callables registered under an entry-point group.

A plugin is `(config: dict, progress: Callable[[dict], None]) -> dict`, either `async def` (runs on
the event loop) or a plain function (runs in a worker thread). It fails by raising or by returning
`{"success": False, ...}`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from services.executor.jobs.context import JobContext, JobFailed

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "zquant_scheduler.task_actions"
# Handled by the executor itself; a plugin cannot take the name.
BUILTIN_ACTIONS = ("example_task",)

ProgressCallback = Callable[[dict[str, Any]], None]
Plugin = Callable[[dict[str, Any], ProgressCallback], dict[str, Any] | Awaitable[dict[str, Any]]]


class PluginRegistry:
    """task_action name -> plugin. Tests build one directly; the service loads the entry points."""

    def __init__(self, plugins: Mapping[str, Plugin] | None = None) -> None:
        self._plugins: dict[str, Plugin] = {}
        for name, plugin in (plugins or {}).items():
            self.register(name, plugin)

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> PluginRegistry:
        registry = cls()
        for entry_point in entry_points(group=group):
            # A broken plugin must not keep the executor from starting; its action reports "unsupported".
            try:
                registry.register(entry_point.name, entry_point.load())
            except Exception:
                log.exception("cannot load task_action plugin", extra={"plugin": entry_point.value})
        log.info("task_action plugins loaded", extra={"task_actions": registry.actions()})
        return registry

    def register(self, name: str, plugin: Plugin) -> None:
        if name in BUILTIN_ACTIONS:
            raise ValueError(f"task_action {name!r} is built in")
        if not callable(plugin):
            raise TypeError(f"task_action {name!r} is not callable")
        self._plugins[name] = plugin

    def get(self, name: str) -> Plugin | None:
        return self._plugins.get(name)

    def actions(self) -> tuple[str, ...]:
        """Every supported task_action, built-ins first."""
        return (*BUILTIN_ACTIONS, *sorted(self._plugins))


def _jsonable(value: Any) -> Any:
    """Plugin output reaches a protobuf Struct: only JSON types survive (others become strings)."""
    return json.loads(json.dumps(value, default=str))


async def run_plugin(ctx: JobContext, name: str, plugin: Plugin) -> dict[str, Any]:
    config = _jsonable(ctx.config)
    try:
        if inspect.iscoroutinefunction(plugin):
            result = await plugin(config, lambda update: ctx.progress(_jsonable(update)))
        else:
            loop = asyncio.get_running_loop()

            def progress(update: dict[str, Any]) -> None:
                # Called from the worker thread; progress belongs to the event loop.
                loop.call_soon_threadsafe(ctx.progress, _jsonable(update))

            # A thread cannot be stopped: on cancel the run ends at once, the function runs on.
            result = await asyncio.to_thread(plugin, config, progress)
    except Exception as exc:
        log.warning("task_action plugin failed", exc_info=True, extra={"plugin": name})
        raise JobFailed(f"插件 {name} 执行出错: {exc}") from exc
    if not isinstance(result, dict):
        raise JobFailed(f"插件 {name} 返回值必须是字典（dict），实际为 {type(result).__name__}")
    result = _jsonable(result)
    # The original recorded {"success": false} as a success.
    if result.get("success") is False:
        reason = result.get("error_message") or result.get("message") or "返回 success=false"
        raise JobFailed(f"插件 {name} 执行失败: {reason}", result)
    return dict(result)

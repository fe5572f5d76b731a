"""task_action plugins: Python callables registered under an entry-point group.

A plugin is `(config: dict, progress: Callable[[dict], None]) -> dict`, either `async def` (runs on
the event loop) or a plain function (runs in a worker thread). It fails by raising or by returning
`{"success": False, ...}`.

What a plugin logs (Python `logging`, any logger) and prints goes to its run's log, per run even
with several plugins running at once: the run's log is a context variable set around the plugin
call (a task's context on the loop, copied into the worker thread by `asyncio.to_thread`), read by
one logging handler on the root logger and by `sys.stdout`/`sys.stderr` wrappers that pass
everything else through. A failing plugin's full traceback goes to the log as well.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, TextIO

from services.common.log_lines import LogStream
from services.common.vocabulary import TaskType
from services.executor.jobs.context import JobContext, JobFailed
from services.executor.run_log import RunLog

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "zquant_scheduler.task_actions"
# Handled by the executor itself; a plugin cannot take the name.
BUILTIN_ACTIONS = (
    TaskType.EXAMPLE,
    TaskType.DATA_SYNC_STOCK_LIST,
    TaskType.DATA_SYNC_TRADING_CALENDAR,
    TaskType.DATA_SYNC_DAILY_DATA,
    TaskType.DATA_SYNC_ALL_DAILY_DATA,
)

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


_current_log: contextvars.ContextVar[RunLog | None] = contextvars.ContextVar("run_log", default=None)
_RECORD_FORMAT = logging.Formatter("%(levelname)s %(name)s: %(message)s")


class _RunLogHandler(logging.Handler):
    """Routes log records made inside a plugin call to that run's log."""

    def emit(self, record: logging.LogRecord) -> None:
        run_log = _current_log.get()
        if run_log is not None:
            run_log.write(LogStream.LOG, _RECORD_FORMAT.format(record))


class _RunOutput:
    """sys.stdout / sys.stderr: inside a plugin call, into the run's log; elsewhere, unchanged."""

    def __init__(self, original: TextIO, stream: LogStream) -> None:
        self._original = original
        self._stream = stream

    def write(self, text: str) -> int:
        run_log = _current_log.get()
        if run_log is None:
            return self._original.write(text)
        run_log.feed(self._stream, text.encode("utf-8", "replace"))
        return len(text)

    def flush(self) -> None:
        if _current_log.get() is None:
            self._original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


_capture_installed = False


def _install_capture() -> None:
    """Once per process: the handler and the output wrappers (both idle outside plugin calls)."""
    global _capture_installed
    if _capture_installed:
        return
    _capture_installed = True
    logging.getLogger().addHandler(_RunLogHandler())
    sys.stdout = _RunOutput(sys.stdout, LogStream.STDOUT)
    sys.stderr = _RunOutput(sys.stderr, LogStream.STDERR)


async def _call(ctx: JobContext, plugin: Plugin, config: dict[str, Any]) -> Any:
    """The plugin call, with its log records and prints going to the run's log."""
    token = _current_log.set(ctx.log)
    try:
        if inspect.iscoroutinefunction(plugin):
            return await plugin(config, lambda update: ctx.progress(_jsonable(update)))
        loop = asyncio.get_running_loop()

        def progress(update: dict[str, Any]) -> None:
            # Called from the worker thread; progress belongs to the event loop.
            loop.call_soon_threadsafe(ctx.progress, _jsonable(update))

        # A thread cannot be stopped: on cancel the run ends at once, the function runs on.
        return await asyncio.to_thread(plugin, config, progress)
    finally:
        _current_log.reset(token)
        ctx.log.end_stream(LogStream.STDOUT)
        ctx.log.end_stream(LogStream.STDERR)


def _jsonable(value: Any) -> Any:
    """Plugin output reaches a protobuf Struct: only JSON types survive (others become strings)."""
    return json.loads(json.dumps(value, default=str))


async def run_plugin(ctx: JobContext, name: str, plugin: Plugin) -> dict[str, Any]:
    config = _jsonable(ctx.config)
    _install_capture()
    try:
        result = await _call(ctx, plugin, config)
    except Exception as exc:
        ctx.log.write(LogStream.STDERR, traceback.format_exc())
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

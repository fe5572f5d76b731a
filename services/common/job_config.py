"""What a task's `config` must hold for its job to run: the executor's checks, which the registry
also runs when a task is saved, so a config that would fail every run is refused at once.

Pure functions over the config dict. The executor reads its settings through them (`example_settings`,
`command_argv`, `command_timeout`) and the registry calls `check_task_config`; a broken config raises
`ConfigInvalid` with the message both show. Only what can be known without running is checked here:
whether `work_dir` exists or a task_action plugin is installed is the executor's business.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common.vocabulary import TaskType

# Every progress snapshot of an example run carries the whole steps list, so the list stays small.
MAX_EXAMPLE_STEPS = 1000


class ConfigInvalid(ValueError):
    """The config cannot run; `message` is what the user sees (on save, or as the run's error)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def config_number(
    config: Mapping[str, Any], key: str, default: float, valid: Callable[[float], bool], requirement: str
) -> float:
    """A numeric config value, or ConfigInvalid("配置项 {key} 必须是{requirement}")."""
    value = config.get(key, default)
    # bool is an int subclass; `"steps": true` is a mistake, not 1.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not valid(float(value))
    ):
        raise ConfigInvalid(f"配置项 {key} 必须是{requirement}")
    return float(value)


@dataclass(frozen=True, slots=True)
class ExampleSettings:
    duration_seconds: float
    steps: int
    success_rate: float
    message: str


def example_settings(config: Mapping[str, Any], default_message: str) -> ExampleSettings:
    duration = config_number(config, "duration_seconds", 3, lambda v: v >= 0, "大于等于 0 的数字")
    steps = int(config_number(config, "steps", 5, lambda v: v >= 1 and v.is_integer(), "大于 0 的整数"))
    if steps > MAX_EXAMPLE_STEPS:
        raise ConfigInvalid(f"配置项 steps 不能超过 {MAX_EXAMPLE_STEPS}")
    success_rate = config_number(config, "success_rate", 1.0, lambda v: 0 <= v <= 1, "介于 0 到 1 之间的数字")
    message = config.get("message", default_message)
    if not isinstance(message, str):
        raise ConfigInvalid("配置项 message 必须是字符串")
    return ExampleSettings(duration, steps, success_rate, message)


def command_argv(config: Mapping[str, Any]) -> tuple[list[str], str]:
    """The program and its arguments (no shell), and how to show the command."""
    raw = config.get("command")
    if isinstance(raw, str):
        try:
            argv = shlex.split(raw)
        except ValueError as exc:
            raise ConfigInvalid(f"命令解析失败: {exc}") from None
        display = raw
    elif isinstance(raw, list) and all(isinstance(arg, str) for arg in raw):
        argv, display = list(raw), shlex.join(raw)
    else:
        raise ConfigInvalid("命令解析失败: command 必须是字符串或字符串列表")
    if not argv:
        raise ConfigInvalid("命令不能为空")
    return argv, display


def command_work_dir(config: Mapping[str, Any]) -> str:
    work_dir = config.get("work_dir", "")
    if not isinstance(work_dir, str):
        raise ConfigInvalid("配置项 work_dir 必须是字符串")
    return work_dir


def command_env(config: Mapping[str, Any]) -> dict[str, str]:
    extra = config.get("env", {})
    if not isinstance(extra, dict) or not all(isinstance(value, str) for value in extra.values()):
        raise ConfigInvalid("配置项 env 必须是字符串到字符串的对象")
    return dict(extra)


def command_timeout(config: Mapping[str, Any]) -> float:
    """The command's own time limit in seconds; 0 = none."""
    return config_number(config, "timeout_seconds", 0, lambda v: v >= 0, "大于等于 0 的数字")


MIN_LOG_MAX_BYTES = 4096
MAX_LOG_MAX_BYTES = 1024 * 1024 * 1024


def log_max_bytes(config: Mapping[str, Any], default: int) -> int:
    """The cap of a run's log in bytes (`log_max_bytes`, any task type); head and tail are kept."""
    return int(
        config_number(
            config,
            "log_max_bytes",
            default,
            lambda v: v.is_integer() and MIN_LOG_MAX_BYTES <= v <= MAX_LOG_MAX_BYTES,
            f"{MIN_LOG_MAX_BYTES} 到 {MAX_LOG_MAX_BYTES} 之间的整数（字节）",
        )
    )


def check_task_config(task_type: str, config: Mapping[str, Any]) -> None:
    """Every check the executor makes before running a task of `task_type` with `config`.

    Routing as the executor's: example tasks, data-sync tasks, and common/manual tasks by `command`
    first, then `task_action` ("example_task" runs the example job, a data-sync type its job; other
    actions are plugins, unknown here).
    Workflows are run by the scheduler and validated with their plan.
    """
    log_max_bytes(config, MIN_LOG_MAX_BYTES)
    if task_type == TaskType.EXAMPLE:
        example_settings(config, "")
        return
    # Imported here: data_sync builds on this module's ConfigInvalid and config_number.
    from services.common.data_sync import data_sync_settings, data_sync_type

    sync_type = data_sync_type(task_type, config)
    if sync_type is not None:
        data_sync_settings(sync_type, config)
        return
    if task_type not in (TaskType.COMMON, TaskType.MANUAL):
        return
    if config.get("command") is not None:
        command_argv(config)
        command_work_dir(config)
        command_env(config)
        command_timeout(config)
        return
    action = config.get("task_action")
    if action is None or action == "":
        raise ConfigInvalid("通用任务配置中必须包含 'command' 或 'task_action' 字段")
    if not isinstance(action, str):
        raise ConfigInvalid("配置项 task_action 必须是字符串")
    if action == TaskType.EXAMPLE:
        example_settings(config, "")

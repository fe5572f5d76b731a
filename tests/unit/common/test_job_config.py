"""The config rules the executor applies before a run and the registry on save
(services.common.job_config)."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.job_config import ConfigInvalid, check_task_config, command_argv, example_settings


@pytest.mark.parametrize(
    ("task_type", "config", "message"),
    [
        ("example_task", {"steps": 1e12}, "配置项 steps 不能超过 1000"),
        ("example_task", {"steps": 0}, "配置项 steps 必须是大于 0 的整数"),
        ("example_task", {"duration_seconds": "3"}, "配置项 duration_seconds 必须是大于等于 0 的数字"),
        ("example_task", {"message": 5}, "配置项 message 必须是字符串"),
        ("common_task", {"command": 42}, "命令解析失败: command 必须是字符串或字符串列表"),
        ("common_task", {"command": "echo 'open"}, "命令解析失败: No closing quotation"),
        ("common_task", {"command": []}, "命令不能为空"),
        ("manual_task", {"command": "true", "work_dir": 1}, "配置项 work_dir 必须是字符串"),
        ("manual_task", {"command": "true", "env": {"A": 1}}, "配置项 env 必须是字符串到字符串的对象"),
        (
            "common_task",
            {"command": "true", "timeout_seconds": -1},
            "配置项 timeout_seconds 必须是大于等于 0 的数字",
        ),
        ("common_task", {"task_action": 7}, "配置项 task_action 必须是字符串"),
        ("common_task", {"task_action": "example_task", "success_rate": 2}, "success_rate"),
        ("common_task", {}, "通用任务配置中必须包含 'command' 或 'task_action' 字段"),
    ],
)
def test_a_config_that_cannot_run_is_refused(task_type: str, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigInvalid) as refused:
        check_task_config(task_type, config)
    assert message in refused.value.message


@pytest.mark.parametrize(
    ("task_type", "config"),
    [
        ("example_task", {}),
        ("example_task", {"steps": 1000, "duration_seconds": 0, "success_rate": 0.5, "extra": [1]}),
        ("common_task", {"command": ["echo", "hi"], "env": {"A": "b"}, "work_dir": "sub"}),
        ("common_task", {"task_action": "some_plugin"}),  # plugins are the executor's to know
        ("workflow", {"anything": True}),  # validated with its plan, elsewhere
    ],
)
def test_a_config_that_can_run_passes(task_type: str, config: dict[str, Any]) -> None:
    check_task_config(task_type, config)


def test_the_executor_reads_its_settings_through_the_same_rules() -> None:
    settings = example_settings({"steps": 3.0}, "done")
    assert (settings.steps, settings.duration_seconds, settings.success_rate, settings.message) == (
        3,
        3,
        1.0,
        "done",
    )
    assert command_argv({"command": "echo 'a b'"}) == (["echo", "a b"], "echo 'a b'")

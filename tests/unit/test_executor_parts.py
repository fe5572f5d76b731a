"""The executor's pure parts: settings, the progress formula and line protocol, the plugin registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.common.structs import dict_to_struct, struct_to_dict
from services.executor.jobs.command import parse_progress_line
from services.executor.jobs.context import progress_percent
from services.executor.jobs.plugin import PluginRegistry
from services.executor.settings import ExecutorSettings


def test_progress_percent_is_the_guides_integer_formula() -> None:
    assert [progress_percent(i, 30) for i in (1, 2, 3, 15, 30)] == [3, 6, 10, 50, 100]


@pytest.mark.parametrize(
    ("line", "update"),
    [
        ("::progress:: 3/10 正在同步", {"current_step": 3, "total_steps": 10, "message": "正在同步"}),
        ("::progress:: 3 / 10", {"current_step": 3, "total_steps": 10}),
        ('::progress:: {"progress_percent": 45}', {"progress_percent": 45}),
        ("::progress:: 3/0", None),
        ("::progress:: [1, 2]", None),
        ("::progress:: {broken", None),
        ("progress 3/10", None),
    ],
)
def test_parse_progress_line(line: str, update: dict[str, Any] | None) -> None:
    assert parse_progress_line(line) == update


def test_struct_round_trip_keeps_integers_integers() -> None:
    data = {"steps": 5, "rate": 0.5, "nested": [1, {"n": 2}], "flag": True, "none": None, "text": "文本"}
    back = struct_to_dict(dict_to_struct(data))
    assert back == data
    assert isinstance(back["steps"], int) and isinstance(back["nested"][1]["n"], int)


def test_plugins_load_from_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "zq_fake_plugins.py").write_text("def sync_things(config, progress):\n    return {}\n")
    dist_info = tmp_path / "zq_fake_plugins-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: zq-fake-plugins\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[zquant_scheduler.task_actions]\n"
        "sync_things = zq_fake_plugins:sync_things\n"
        "broken = zq_fake_plugins:missing\n"
    )
    monkeypatch.syspath_prepend(tmp_path)

    registry = PluginRegistry.from_entry_points()
    assert registry.actions() == ("example_task", "sync_things")
    assert registry.get("broken") is None


def test_plugin_cannot_take_a_builtin_name() -> None:
    with pytest.raises(ValueError, match="built in"):
        PluginRegistry({"example_task": lambda config, progress: {}})


def test_settings_from_env() -> None:
    with pytest.raises(ValueError, match="ZQ_SERVICE_TOKEN"):
        ExecutorSettings.from_env({})
    defaults = ExecutorSettings.from_env({"ZQ_SERVICE_TOKEN": "t"})
    assert (defaults.host, defaults.port, defaults.max_concurrency) == ("127.0.0.1", 50061, 16)
    assert (defaults.heartbeat_seconds, defaults.drain_seconds, defaults.kill_grace_seconds) == (2, 30, 5)
    assert defaults.output_tail_bytes == 65536
    custom = ExecutorSettings.from_env(
        {
            "ZQ_SERVICE_TOKEN": "t",
            "ZQ_EXECUTOR_PORT": "0",
            "ZQ_EXECUTOR_MAX_CONCURRENCY": "2",
            "ZQ_EXECUTOR_HEARTBEAT_SECONDS": "0.5",
            "ZQ_EXECUTOR_WORKDIR": "/tmp",
        }
    )
    assert (custom.port, custom.max_concurrency, custom.heartbeat_seconds) == (0, 2, 0.5)
    assert custom.work_dir == Path("/tmp").resolve()
    with pytest.raises(ValueError, match="MAX_CONCURRENCY"):
        ExecutorSettings.from_env({"ZQ_SERVICE_TOKEN": "t", "ZQ_EXECUTOR_MAX_CONCURRENCY": "0"})

"""The plugin registry: actions from entry points, built-in names protected."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.executor.jobs.plugin import PluginRegistry


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
    assert registry.actions() == (
        "example_task",
        "data_sync_stock_list",
        "data_sync_trading_calendar",
        "data_sync_daily_data",
        "data_sync_all_daily_data",
        "sync_things",
    )
    assert registry.get("broken") is None


def test_plugin_cannot_take_a_builtin_name() -> None:
    with pytest.raises(ValueError, match="built in"):
        PluginRegistry({"example_task": lambda config, progress: {}})

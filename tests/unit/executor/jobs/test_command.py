"""The command job's progress line protocol: `::progress:: 3/10 message` or a JSON object."""

from __future__ import annotations

from typing import Any

import pytest

from services.executor.jobs.command import parse_progress_line


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

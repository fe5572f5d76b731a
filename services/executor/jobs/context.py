"""What every job gets: its run, its settings, a progress channel; and how it fails."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.executor.models import RunSpec


class JobFailed(Exception):
    """The job ran into a known failure; `message` becomes the execution's error_message."""

    def __init__(self, message: str, result: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Merged over the progress into the final result.
        self.result = dict(result or {})


@dataclass(slots=True)
class JobContext:
    spec: RunSpec
    work_dir: Path
    output_tail_bytes: int
    # Mutable: Cancel may name its own grace period after the job started.
    kill_grace_seconds: float
    rng: random.Random
    # Receives every progress snapshot.
    emit: Callable[[dict[str, Any]], None]
    # The progress so far; the final result is merged over it.
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        return self.spec.config

    def progress(self, update: Mapping[str, Any]) -> None:
        """Merges `update` into the progress and emits a snapshot of it.

        Snapshots always carry a status (default "running"); an update that moves
        current_step/total_steps without a progress_percent gets one computed.
        """
        self.result.update(update)
        self.result.setdefault("status", "running")
        current, total = self.result.get("current_step"), self.result.get("total_steps")
        steps_moved = "current_step" in update or "total_steps" in update
        if (
            steps_moved
            and "progress_percent" not in update
            and isinstance(current, int)
            and isinstance(total, int)
            and total > 0
        ):
            self.result["progress_percent"] = progress_percent(current, total)
        # A deep copy: the snapshot waits in the stream's queue while the job goes on.
        self.emit(copy.deepcopy(self.result))


def progress_percent(current: int, total: int) -> int:
    """The guide's integer percentage: 1/30 -> 3, 2/30 -> 6, 3/30 -> 10."""
    return max(0, min(100, int(current * 100 / total)))


def config_number(
    config: Mapping[str, Any], key: str, default: float, valid: Callable[[float], bool], requirement: str
) -> float:
    """Reads a numeric config value; JobFailed("配置项 {key} 必须是{requirement}") when it is not valid."""
    value = config.get(key, default)
    # bool is an int subclass; `"steps": true` is a mistake, not 1.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not valid(float(value))
    ):
        raise JobFailed(f"配置项 {key} 必须是{requirement}")
    return float(value)

"""What every job gets: its run, its settings, a progress channel; and how it fails."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from services.common.run_params import RunDates
from services.common.vocabulary import ExecutionStatus
from services.executor.jobs.job_user import JobUser
from services.executor.models import RunSpec
from services.executor.run_log import RunLog
from services.executor.settings import DataSyncDefaults


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
    # The run's log: command output, plugin records, the executor's own lines.
    log: RunLog
    work_dir: Path
    output_tail_bytes: int
    # Mutable: Cancel may name its own grace period after the job started.
    kill_grace_seconds: float
    rng: random.Random
    # Commands run as this user (None: the executor's own, which is then not root).
    job_user: JobUser | None
    # Receives every progress snapshot.
    emit: Callable[[dict[str, Any]], None]
    # The progress so far; the final result is merged over it.
    result: dict[str, Any] = field(default_factory=dict)
    # Data-sync jobs: the target database and provider when the task names none.
    data_sync: DataSyncDefaults = field(default_factory=DataSyncDefaults)

    @property
    def config(self) -> dict[str, Any]:
        """The run's config: params merged, templates filled in."""
        return self.spec.config

    @property
    def logical_date(self) -> date:
        """The date this run is for (a scheduled run's planned date in the task's zone)."""
        return self.spec.logical_date

    @property
    def prev_trading_day(self) -> date:
        """The trading day before the logical date by the task's calendar (no calendar: the
        previous weekday)."""
        return RunDates.of(self.spec.logical_date, self.spec.prev_trading_day).prev_trading_day

    def progress(self, update: Mapping[str, Any]) -> None:
        """Merges `update` into the progress and emits a snapshot of it.

        Snapshots always carry a status (default "running"); an update that moves
        current_step/total_steps without a progress_percent gets one computed.
        """
        self.result.update(update)
        self.result.setdefault("status", ExecutionStatus.RUNNING)
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

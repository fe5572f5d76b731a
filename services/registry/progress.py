"""Live progress of running executions.

Every report reaches watchers at once from memory; the database is written at most once per
`flush_seconds` per run (batched), and the final state is always written by FinishExecution. Reads
of a running execution overlay the newest in-memory result, so REST shows live progress too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.common.errors import FailedPrecondition
from services.registry.convert import to_struct
from services.registry.db import Database
from services.registry.events import EventHub
from services.registry.store.executions import write_progress
from zquant.scheduler.v1 import task_pb2

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LiveRun:
    snapshot: task_pb2.Execution
    attempt: int
    result: dict[str, Any] = field(default_factory=dict)
    dirty: bool = False
    last_write: float = 0.0
    # Any report, heartbeats included, renews the lease.
    last_seen: float = 0.0
    terminate_requested: bool = False


class ProgressBuffer:
    def __init__(
        self,
        db: Database,
        events: EventHub,
        flush_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._events = events
        self._flush_seconds = flush_seconds
        self._clock = clock
        self._runs: dict[int, LiveRun] = {}
        self.writes = 0

    def track(self, snapshot: task_pb2.Execution, attempt: int) -> None:
        """Called when a run starts (claim): its writes are counted from now."""
        now = self._clock()
        self._runs[snapshot.id] = LiveRun(snapshot=snapshot, attempt=attempt, last_write=now, last_seen=now)

    def get(self, execution_id: int) -> LiveRun | None:
        return self._runs.get(execution_id)

    def live_result(self, execution_id: int) -> dict[str, Any] | None:
        run = self._runs.get(execution_id)
        return run.result if run is not None and run.result else None

    def forget(self, execution_id: int) -> LiveRun | None:
        return self._runs.pop(execution_id, None)

    def report(self, execution_id: int, attempt: int, result: dict[str, Any] | None) -> LiveRun:
        run = self._runs.get(execution_id)
        if run is None:
            raise FailedPrecondition(f"执行记录 {execution_id} 不在运行中")
        if attempt != run.attempt:
            raise FailedPrecondition(
                f"执行记录 {execution_id} 的第 {attempt} 次尝试已失效（当前第 {run.attempt} 次）"
            )
        run.last_seen = self._clock()
        if result:
            run.result = result
            run.dirty = True
            run.snapshot.result.CopyFrom(to_struct(result))
            self._events.publish_progress(run.snapshot)
        return run

    def silent_runs(self, lease_seconds: float) -> list[LiveRun]:
        now = self._clock()
        return [run for run in self._runs.values() if now - run.last_seen > lease_seconds]

    def flush_due(self, force: bool = False) -> int:
        now = self._clock()
        due = {
            execution_id: run
            for execution_id, run in self._runs.items()
            if run.dirty and (force or now - run.last_write >= self._flush_seconds)
        }
        if not due:
            return 0
        with self._db.session() as session:
            write_progress(session, {eid: (run.attempt, run.result) for eid, run in due.items()})
        self.writes += 1
        for run in due.values():
            run.dirty = False
            run.last_write = now
        return len(due)

    async def run_flusher(self) -> None:
        interval = min(1.0, self._flush_seconds)
        while True:
            await asyncio.sleep(interval)
            try:
                self.flush_due()
            except Exception:
                log.exception("progress flush failed; will retry")

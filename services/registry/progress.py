"""Live progress of running executions.

Every report reaches watchers at once from memory; the database is written at most once per
`flush_seconds` per run (batched), and the final state is always written by FinishExecution. Reads
of a running execution overlay the newest in-memory result, so REST shows live progress too.

With several registry replicas (PostgreSQL), the cluster bus feeds what other replicas hear into
`observe_*`: every replica then knows every running run, its newest result and when it last
reported, so any replica may serve its watchers and reap it. Only the replica a report arrived at
writes it to the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from services.common.errors import FailedPrecondition
from services.common.structs import dict_to_struct, struct_to_dict
from services.registry.convert import execution_to_proto
from services.registry.db import Database
from services.registry.events import EventHub
from services.registry.models import ExecutionRow
from services.registry.store.executions import task_names, write_progress
from zquant.scheduler.v1 import task_pb2

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LiveRun:
    snapshot: task_pb2.Execution
    attempt: int
    result: dict[str, Any] = field(default_factory=dict)
    dirty: bool = False
    last_write: float = 0.0
    # Any report, heartbeats included, renews the lease (here or, via the bus, on another replica).
    last_seen: float = 0.0
    # When this replica last told the others about a report of the run.
    last_relayed: float = 0.0
    terminate_requested: bool = False


class ProgressBuffer:
    def __init__(
        self,
        db: Database,
        events: EventHub,
        flush_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        heartbeat_relay_seconds: float = 1.0,
    ) -> None:
        self._db = db
        self._events = events
        self._flush_seconds = flush_seconds
        self._clock = clock
        # Bare heartbeats go to the other replicas at most this often per run (progress always does).
        self._heartbeat_relay_seconds = heartbeat_relay_seconds
        self._runs: dict[int, LiveRun] = {}
        self.writes = 0

    def track(self, snapshot: task_pb2.Execution, attempt: int, terminate_requested: bool = False) -> None:
        """Called when a run starts (claim): its writes and its lease are counted from now."""
        now = self._clock()
        self._runs[snapshot.id] = LiveRun(
            snapshot=snapshot,
            attempt=attempt,
            result=struct_to_dict(snapshot.result),
            last_write=now,
            last_seen=now,
            last_relayed=now,
            terminate_requested=terminate_requested,
        )

    def sync_running(self) -> None:
        """Makes the running rows of the database the tracked runs, each with a full lease from now:
        on start (runs left by a previous registry get time to report again) and whenever the
        cluster bus may have missed events."""
        with self._db.session() as session:
            rows = list(session.scalars(select(ExecutionRow).where(ExecutionRow.status == "running")))
            names = task_names(session, {row.task_id for row in rows})
        running = {row.id: row for row in rows}
        for execution_id in [eid for eid in self._runs if eid not in running]:
            del self._runs[execution_id]
        now = self._clock()
        for row in rows:
            run = self._runs.get(row.id)
            if run is None or run.attempt != row.attempt:
                self.track(execution_to_proto(row, names.get(row.task_id, "")), row.attempt)
                run = self._runs[row.id]
            run.last_seen = now
            run.terminate_requested = run.terminate_requested or row.terminate_requested

    def get(self, execution_id: int) -> LiveRun | None:
        return self._runs.get(execution_id)

    def live_result(self, execution_id: int) -> dict[str, Any] | None:
        run = self._runs.get(execution_id)
        return run.result if run is not None and run.result else None

    def forget(self, execution_id: int) -> LiveRun | None:
        return self._runs.pop(execution_id, None)

    def _adopt(self, execution_id: int, attempt: int) -> LiveRun:
        """A report for a run this replica does not track (the scheduler moved here from another
        replica, or this one restarted): tracked from now when the database agrees it runs."""
        with self._db.session() as session:
            row = session.get(ExecutionRow, execution_id)
            if row is None or row.status != "running":
                raise FailedPrecondition(f"执行记录 {execution_id} 不在运行中")
            names = task_names(session, {row.task_id})
        if row.attempt != attempt:
            raise FailedPrecondition(
                f"执行记录 {execution_id} 的第 {attempt} 次尝试已失效（当前第 {row.attempt} 次）"
            )
        self.track(execution_to_proto(row, names.get(row.task_id, "")), row.attempt, row.terminate_requested)
        return self._runs[execution_id]

    def report(self, execution_id: int, attempt: int, result: dict[str, Any] | None) -> LiveRun:
        run = self._runs.get(execution_id)
        if run is None or attempt > run.attempt:
            run = self._adopt(execution_id, attempt)
        if attempt != run.attempt:
            raise FailedPrecondition(
                f"执行记录 {execution_id} 的第 {attempt} 次尝试已失效（当前第 {run.attempt} 次）"
            )
        now = self._clock()
        run.last_seen = now
        if result:
            run.result = result
            run.dirty = True
            run.snapshot.result.CopyFrom(dict_to_struct(result))
            run.last_relayed = now
            self._events.publish_progress(run.snapshot, run.attempt)
        elif now - run.last_relayed >= self._heartbeat_relay_seconds:
            run.last_relayed = now
            self._events.publish_heartbeat(execution_id, run.attempt)
        return run

    # ---- what other replicas heard (cluster bus) --------------------------------------------

    def observe_state(self, snapshot: task_pb2.Execution, attempt: int) -> None:
        """A state change made on another replica: a started run is tracked, an ended one dropped."""
        run = self._runs.get(snapshot.id)
        if snapshot.status == "running":
            if run is None or run.attempt < attempt:
                self.track(snapshot, attempt)
        elif run is not None and run.attempt <= attempt:
            del self._runs[snapshot.id]

    def observe_report(
        self, execution_id: int, attempt: int, snapshot: task_pb2.Execution | None
    ) -> LiveRun | None:
        """A report that arrived at another replica: renews the lease and takes its result. A run
        not tracked here is tracked from its snapshot; a heartbeat alone cannot start tracking (it
        names no task), nor can a report of an older attempt. Returns the run when it changed."""
        run = self._runs.get(execution_id)
        if run is None or run.attempt < attempt:
            if snapshot is None:
                return None
            self.track(snapshot, attempt)
            return self._runs[execution_id]
        if run.attempt > attempt:
            return None
        run.last_seen = self._clock()
        if snapshot is not None:
            run.snapshot = snapshot
            run.result = struct_to_dict(snapshot.result)
            # Newer than anything this replica holds: the replica that got it writes it.
            run.dirty = False
        return run

    def request_termination(self, execution_id: int) -> None:
        """A terminate request made on another replica: answered on this one's next report."""
        run = self._runs.get(execution_id)
        if run is not None:
            run.terminate_requested = True

    # ---- leases and writes ------------------------------------------------------------------

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

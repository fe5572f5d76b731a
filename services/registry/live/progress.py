"""Live progress of running executions.

Every report reaches watchers at once from memory; the database is written at most once per
`flush_seconds` per run (batched), and the final state is always written when the run ends. Reads
of a running execution overlay the newest in-memory result, so REST shows live progress too.

A reported result stays the `Struct` it arrived as: it is the run's snapshot that watchers and the
cluster bus get. Only the coalesced flush turns it into the dict the database stores.

With several registry replicas (PostgreSQL), the cluster bus feeds what other replicas hear into
`observe_*`: every replica then knows every running run, its newest result and when it last
reported, so any replica may serve its watchers and reap it. Only the replica a report arrived at
writes it to the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2
from sqlalchemy import select

from services.common.errors import FailedPrecondition, Reason
from services.common.structs import struct_to_dict
from services.registry.convert import execution_to_proto
from services.registry.db import Database
from services.registry.live.events import EventHub
from services.registry.models import ExecutionRow
from services.registry.store.executions import write_progress
from services.registry.store.run_history import task_names
from zquant.scheduler.v1 import task_pb2

log = logging.getLogger(__name__)


# The running rows of the database and their tasks' names.
RunningRows = tuple[list[ExecutionRow], dict[int, str]]
# The newest progress of tracked runs, by execution id.
LiveResults = Mapping[int, struct_pb2.Struct]


@dataclass(slots=True)
class LiveRun:
    snapshot: task_pb2.Execution
    attempt: int
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
            last_write=now,
            last_seen=now,
            last_relayed=now,
            terminate_requested=terminate_requested,
        )

    def sync_running(self) -> None:
        """Makes the running rows of the database the tracked runs, each with a full lease from now:
        on start (runs left by a previous registry get time to report again) and whenever the
        cluster bus may have missed events (there: `read_running` in a worker thread, then
        `apply_running` on the event loop)."""
        self.apply_running(self.read_running())

    def read_running(self) -> RunningRows:
        """The running rows and their tasks' names (blocking; grows with the running runs)."""
        with self._db.session() as session:
            rows = list(session.scalars(select(ExecutionRow).where(ExecutionRow.status == "running")))
            return rows, task_names(session, {row.task_id for row in rows})

    def apply_running(self, running_rows: RunningRows) -> None:
        rows, names = running_rows
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

    def live_results(self, execution_ids: Iterable[int] | None = None) -> LiveResults:
        """The newest progress of the given runs (all tracked runs when None). Take it before reading
        rows: a run that ends meanwhile is forgotten only after its end commits, so a row read after
        still says running only if this was taken while the run was tracked."""
        runs = (
            self._runs
            if execution_ids is None
            else {i: self._runs[i] for i in execution_ids if i in self._runs}
        )
        return {i: run.snapshot.result for i, run in runs.items() if run.snapshot.result.fields}

    def forget(self, execution_id: int) -> LiveRun | None:
        return self._runs.pop(execution_id, None)

    def _adopt(self, execution_id: int, attempt: int) -> LiveRun:
        """A report for a run this replica does not track (the scheduler moved here from another
        replica, or this one restarted): tracked from now when the database agrees it runs."""
        with self._db.session() as session:
            row = session.get(ExecutionRow, execution_id)
            if row is None or row.status != "running":
                raise FailedPrecondition(f"执行记录 {execution_id} 不在运行中", reason=Reason.RUN_NOT_RUNNING)
            names = task_names(session, {row.task_id})
        if row.attempt != attempt:
            raise FailedPrecondition(
                f"执行记录 {execution_id} 的第 {attempt} 次尝试已失效（当前第 {row.attempt} 次）",
                reason=Reason.ATTEMPT_STALE,
            )
        self.track(execution_to_proto(row, names.get(row.task_id, "")), row.attempt, row.terminate_requested)
        return self._runs[execution_id]

    def report(self, execution_id: int, attempt: int, result: struct_pb2.Struct | None) -> LiveRun:
        """A report of a running attempt: `result` (the newest progress) or None for a heartbeat."""
        run = self._runs.get(execution_id)
        if run is None or attempt > run.attempt:
            run = self._adopt(execution_id, attempt)
        if attempt != run.attempt:
            raise FailedPrecondition(
                f"执行记录 {execution_id} 的第 {attempt} 次尝试已失效（当前第 {run.attempt} 次）",
                reason=Reason.ATTEMPT_STALE,
            )
        now = self._clock()
        run.last_seen = now
        if result is not None and result.fields:
            run.dirty = True
            run.snapshot.result.CopyFrom(result)
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

    def silent_for(self, run: LiveRun) -> float:
        """Seconds since the last report of `run` (heartbeats included), here or on another replica."""
        return self._clock() - run.last_seen

    def seconds_until_silence(self, lease_seconds: float) -> float:
        """How long until the first tracked run could turn silent: a whole lease when none is
        tracked, since a run tracked meanwhile starts with a full lease. The reaper sleeps that long."""
        if not self._runs:
            return lease_seconds
        last_seen = min(run.last_seen for run in self._runs.values())
        return max(0.0, last_seen + lease_seconds - self._clock())

    def flush_due(self, force: bool = False) -> int:
        """Writes the due results now (blocking: on stop); returns how many runs it wrote."""
        due = self._take_due(force)
        if due:
            try:
                self._write(due)
            except Exception:
                self._dirty_again(due)
                raise
        return len(due)

    def _take_due(self, force: bool) -> dict[int, tuple[int, dict[str, Any]]]:
        """The results to write, {execution_id: (attempt, result)}, converted for the database here,
        on the event loop, where the snapshots change; their runs count as written from now."""
        now = self._clock()
        due = {}
        for execution_id, run in self._runs.items():
            if run.dirty and (force or now - run.last_write >= self._flush_seconds):
                due[execution_id] = (run.attempt, struct_to_dict(run.snapshot.result))
                run.dirty = False
                run.last_write = now
        return due

    def _write(self, due: dict[int, tuple[int, dict[str, Any]]]) -> None:
        with self._db.session() as session:
            write_progress(session, due)
        self.writes += 1

    def _dirty_again(self, due: dict[int, tuple[int, dict[str, Any]]]) -> None:
        """A write failed: its runs (still that attempt) are written on the next flush."""
        for execution_id, (attempt, _) in due.items():
            run = self._runs.get(execution_id)
            if run is not None and run.attempt == attempt:
                run.dirty = True

    async def run_flusher(self) -> None:
        """Writes due results every second at most, in a worker thread: one statement per run.
        With no run tracked it sleeps a whole flush period: a run tracked meanwhile counts its
        writes from then (`track`), so none of its results can fall due before the flusher wakes,
        and an idle registry is not woken every second."""
        busy_interval = min(1.0, self._flush_seconds)
        while True:
            await asyncio.sleep(busy_interval if self._runs else self._flush_seconds)
            due = self._take_due(force=False)
            if not due:
                continue
            try:
                await asyncio.to_thread(self._write, due)
            except Exception:
                self._dirty_again(due)
                log.exception("progress flush failed; will retry")

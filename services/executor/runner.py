"""Active runs: admission (concurrency, duplicates, draining), timeouts, cancellation, event streams.

A finished run's outcome is kept until a scheduler acknowledges it (`KeptOutcome`); with an
`OutcomeStore` (services/executor/outcomes.py) it is written to disk before the finished event goes
out, and read back by `restore` when the executor starts again, so a scheduler that re-attaches
after an executor restart still collects the run's real outcome.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from services.common.errors import (
    EXECUTOR_UP_SINCE,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Reason,
    ResourceExhausted,
    Unavailable,
)
from services.common.job_config import ConfigInvalid, log_max_bytes
from services.common.log_lines import LogStream
from services.common.vocabulary import DRAIN_INTERRUPTED_MESSAGE, TERMINATED_MESSAGE, ExecutionStatus
from services.executor.jobs import run_job
from services.executor.jobs.context import JobContext, JobFailed
from services.executor.jobs.job_user import JobUser
from services.executor.jobs.plugin import PluginRegistry
from services.executor.models import ACCEPTED, HEARTBEAT, RunEvent, RunEventKind, RunSpec
from services.executor.outcomes import OutcomeStore, StoredOutcome
from services.executor.run_log import DEFAULT_LOG_MAX_BYTES, RunLog
from services.executor.settings import ExecutorSettings

log = logging.getLogger(__name__)

# A drained run did not fail on its own and nobody terminated it: it ends failed with this message,
# and the registry hands it back (a retry at once that does not count against max_retries).
STOPPING_MESSAGE = DRAIN_INTERRUPTED_MESSAGE
# An outcome nobody acknowledged (its scheduler and the next one both gone) is forgotten after this.
OUTCOME_KEEP_SECONDS = 3600.0


class RunListener:
    """One stream's view of a run: the events waiting to be sent to that caller."""

    def __init__(self, first: list[RunEvent]) -> None:
        self.pending: deque[RunEvent] = deque(first)
        self.wakeup = asyncio.Event()
        if first:
            self.wakeup.set()

    def push(self, event: RunEvent) -> None:
        # Progress events are whole snapshots: while the caller lags, only the newest one waits; and
        # none waits behind the outcome, whose result is the final snapshot (a quick job's stream is
        # accepted + finished, not a message and a registry report per step). Log events are never
        # merged or dropped (the run's log cap bounds them).
        if event.kind in (RunEventKind.PROGRESS, RunEventKind.FINISHED):
            while self.pending and self.pending[-1].kind is RunEventKind.PROGRESS:
                self.pending.pop()
        self.pending.append(event)
        self.wakeup.set()


class ActiveRun:
    """One run: its job task, its newest progress, its outcome once finished, and the streams
    attached to it (the one that started it; after a scheduler change, the one that re-attached)."""

    def __init__(self, spec: RunSpec, ctx: JobContext, heartbeat_seconds: float) -> None:
        self.spec = spec
        # The attempt the run belongs to: a scheduler that takes the run over re-attaches with a new one.
        self.attempt = spec.attempt
        self.ctx = ctx
        self._heartbeat_seconds = heartbeat_seconds
        self._listeners: list[RunListener] = []
        self._latest: RunEvent | None = None
        self.outcome: RunEvent | None = None
        # The job ended and its outcome is being stored: its last progress reports are ignored.
        self.ended = False
        # Set once a cancel was requested; the reason reported when the job ends cancelled.
        self.cancel_message = ""
        self.cancel_status = ExecutionStatus.TERMINATED
        self.task: asyncio.Task[tuple[ExecutionStatus, str]] | None = None

    def push(self, event: RunEvent) -> None:
        if self.outcome is not None or (self.ended and event.kind is RunEventKind.PROGRESS):
            # A sync plugin's thread may still report after the run ended.
            return
        if event.kind is RunEventKind.FINISHED:
            self.outcome = event
        elif event.kind is RunEventKind.PROGRESS:
            self._latest = event
        for listener in self._listeners:
            listener.push(event)

    def cancel(
        self,
        message: str,
        grace_seconds: float | None = None,
        status: ExecutionStatus = ExecutionStatus.TERMINATED,
    ) -> bool:
        """Asks the job to stop; False when it is not running any more."""
        if self.task is None or self.task.done():
            return False
        if not self.cancel_message:
            self.cancel_message = message
            self.cancel_status = status
            if grace_seconds is not None:
                self.ctx.kill_grace_seconds = grace_seconds
            self.task.cancel()
        return True

    async def event_batches(self, attach: bool = False) -> AsyncIterator[list[RunEvent]]:
        """accepted, progress..., finished, in batches of the events that were ready together (a
        caller that waits for its last batch to be sent gets the next one whole); a heartbeat every
        heartbeat_seconds in between. A stream that re-attaches gets accepted, the newest progress,
        then the rest (the outcome at once if the job ended). When the caller goes away the job goes
        on: only Cancel or a timeout stop it."""
        first = [ACCEPTED]
        if attach:
            first += [event for event in (self._latest, self.outcome) if event is not None]
        listener = RunListener(first)
        self._listeners.append(listener)
        try:
            async for batch in self._drain(listener):
                yield batch
        finally:
            self._listeners.remove(listener)

    async def _drain(self, listener: RunListener) -> AsyncIterator[list[RunEvent]]:
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time() + self._heartbeat_seconds
        while True:
            if listener.pending:
                batch = list(listener.pending)
                listener.pending.clear()
                yield batch
                if batch[-1].kind is RunEventKind.FINISHED:  # nothing follows the outcome
                    return
                continue
            listener.wakeup.clear()
            try:
                async with asyncio.timeout_at(next_heartbeat):
                    await listener.wakeup.wait()
            except TimeoutError:
                next_heartbeat = loop.time() + self._heartbeat_seconds
                yield [HEARTBEAT]


@dataclass(slots=True)
class KeptOutcome:
    """A finished run's outcome that no scheduler acknowledged yet; a re-attach gets it at once."""

    stored: StoredOutcome
    # The attempt that owns the outcome now (a re-attach by a new scheduler changes it).
    attempt: int

    @property
    def event(self) -> RunEvent:
        return RunEvent(
            RunEventKind.FINISHED, self.stored.result, self.stored.status, self.stored.error_message
        )

    async def event_batches(self, attach: bool = False) -> AsyncIterator[list[RunEvent]]:
        """accepted, then the outcome (its result is the run's final progress snapshot)."""
        yield [ACCEPTED, self.event]


class Runner:
    def __init__(
        self,
        settings: ExecutorSettings,
        plugins: PluginRegistry | None = None,
        rng: random.Random | None = None,
        job_user: JobUser | None = None,
    ) -> None:
        self._settings = settings
        self._job_user = job_user
        self._plugins = plugins if plugins is not None else PluginRegistry()
        self._rng = rng if rng is not None else random.Random()
        self._active: dict[int, ActiveRun] = {}
        # Finished runs whose outcome no scheduler acknowledged yet, by execution_id, oldest first.
        self._kept: dict[int, KeptOutcome] = {}
        # None: outcomes are kept in memory only (lost when the executor stops).
        self._store = OutcomeStore(settings.outcomes_dir) if settings.outcomes_dir is not None else None
        # Outcomes being stored and published, and file removals under way.
        self._pending: set[asyncio.Task[Any]] = set()
        self._draining = False
        # Every run this process accepted is in _active or _kept until acknowledged; one assigned to
        # it before this moment that it does not know never reached it (`attach`).
        self._up_since = datetime.now(UTC)

    async def restore(self) -> int:
        """Before serving: the outcomes a previous run of this executor stored and nobody
        acknowledged, ready for a re-attach. Returns how many."""
        if self._store is None:
            return 0
        for stored in await self._store.load(OUTCOME_KEEP_SECONDS):
            self._kept[stored.execution_id] = KeptOutcome(stored, stored.attempt)
        if self._kept:
            log.info("restored unacknowledged outcomes", extra={"outcomes": len(self._kept)})
        return len(self._kept)

    @property
    def active_count(self) -> int:
        return len(self._active)

    @property
    def capacity(self) -> int:
        return self._settings.max_concurrency

    @property
    def draining(self) -> bool:
        return self._draining

    def start(self, spec: RunSpec) -> ActiveRun:
        """Admits and starts a run, or raises the reason it cannot run here."""
        if spec.execution_id <= 0:
            raise InvalidArgument("execution_id 必须大于 0")
        if self._draining:
            raise Unavailable("执行器正在停止")
        self._forget_old_outcomes()
        if spec.execution_id in self._active:
            raise FailedPrecondition(
                f"执行记录 {spec.execution_id} 已在运行", reason=Reason.RUN_ALREADY_ACTIVE
            )
        kept = self._kept.get(spec.execution_id)
        if kept is not None and kept.attempt == spec.attempt and kept.stored.task_id == spec.task_id:
            # This attempt ran here already: its outcome waits to be collected, never a second run.
            # (Another task's run under that id is not this one: a stored outcome that outlived
            # its database, e.g. a development database made anew. It is superseded below.)
            raise FailedPrecondition(
                f"执行记录 {spec.execution_id} 已在此执行器上执行完毕", reason=Reason.RUN_ALREADY_ACTIVE
            )
        # A new attempt (a retry) supersedes what an earlier one left.
        if self._kept.pop(spec.execution_id, None) is not None:
            self._remove_stored([spec.execution_id])
        if len(self._active) >= self._settings.max_concurrency:
            raise ResourceExhausted(f"执行器繁忙：已有 {len(self._active)} 个任务在运行")
        loop = asyncio.get_running_loop()
        try:
            max_bytes = log_max_bytes(spec.config, DEFAULT_LOG_MAX_BYTES)
        except ConfigInvalid:  # the job fails on it with the reason; its log keeps the default cap
            max_bytes = DEFAULT_LOG_MAX_BYTES
        run_log = RunLog(max_bytes, lambda chunk: run.push(RunEvent(RunEventKind.LOG, log=chunk)), loop)
        ctx = JobContext(
            spec=spec,
            log=run_log,
            work_dir=self._settings.work_dir,
            output_tail_bytes=self._settings.output_tail_bytes,
            kill_grace_seconds=self._settings.kill_grace_seconds,
            rng=self._rng,
            job_user=self._job_user,
            emit=lambda snapshot: run.push(RunEvent(RunEventKind.PROGRESS, snapshot)),
            data_sync=self._settings.data_sync,
        )
        run = ActiveRun(spec, ctx, self._settings.heartbeat_seconds)
        run_log.write(
            LogStream.SYSTEM,
            f"执行器 {self._settings.name} ({self._settings.host}:{self._settings.port}) 开始执行，"
            f"第 {spec.attempt} 次尝试 (executor {self._settings.name}, attempt {spec.attempt})",
        )
        run.task = asyncio.create_task(self._execute(run), name=f"execution-{spec.execution_id}")
        # A callback rather than code at the end of _execute: a task cancelled before its first
        # step never runs any of its code, and it must still report and free its slot.
        run.task.add_done_callback(lambda task: self._finish(run, task))
        self._active[spec.execution_id] = run
        log.debug("run started", extra=_log_fields(spec))
        return run

    def attach(self, execution_id: int, attempt: int) -> ActiveRun | KeptOutcome:
        """The run of `execution_id` this executor has (running, or finished and kept, also from
        before a restart), now owned by `attempt`; NotFound when it has none (it never ran here, or
        its outcome was acknowledged or forgotten), saying since when this process is up."""
        run = self._active.get(execution_id)
        if run is not None:
            run.attempt = attempt
            log.info("run re-attached", extra={**_log_fields(run.spec), "attempt": attempt})
            return run
        kept = self._kept.get(execution_id)
        if kept is None:
            raise NotFound(
                f"执行器上没有执行记录 {execution_id}",
                reason=Reason.EXECUTION_NOT_FOUND,
                metadata={EXECUTOR_UP_SINCE: self._up_since.isoformat()},
            )
        if kept.attempt != attempt:
            kept.attempt = attempt
            if self._store is not None:  # its acknowledgement will name this attempt, also after a restart
                self._spawn(self._store.save(replace(kept.stored, attempt=attempt)))
        log.info("outcome collected", extra={"execution_id": execution_id, "attempt": attempt})
        return kept

    def acknowledge(self, runs: Iterable[tuple[int, int]]) -> int:
        """The registry stored the outcomes of these (execution_id, attempt)s: forget them. Returns
        how many were kept here."""
        forgotten: list[int] = []
        for execution_id, attempt in runs:
            kept = self._kept.get(execution_id)
            if kept is not None and kept.attempt == attempt:
                del self._kept[execution_id]
                forgotten.append(execution_id)
        self._remove_stored(forgotten)
        return len(forgotten)

    async def settle(self) -> None:
        """Waits until the outcomes of ended jobs are stored and published, and removals done."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _forget_old_outcomes(self) -> None:
        # Outcomes are kept in the order they were reached: the oldest are first.
        horizon = time.time() - OUTCOME_KEEP_SECONDS
        forgotten: list[int] = []
        while self._kept:
            execution_id, oldest = next(iter(self._kept.items()))
            if oldest.stored.finished_at >= horizon:
                break
            del self._kept[execution_id]
            forgotten.append(execution_id)
        self._remove_stored(forgotten)

    def _remove_stored(self, execution_ids: list[int]) -> None:
        if self._store is not None and execution_ids:
            self._spawn(self._store.remove(execution_ids))

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("storing outcomes failed", exc_info=exc)

    def cancel(self, execution_id: int, grace_seconds: float | None = None, attempt: int = 0) -> bool:
        run = self._active.get(execution_id)
        if run is None or (attempt and run.attempt != attempt):
            return False
        return run.cancel(TERMINATED_MESSAGE, grace_seconds)

    async def drain(self, seconds: float) -> None:
        """Refuses new runs, lets active ones finish for up to `seconds`, then terminates the rest."""
        self._draining = True
        tasks = [run.task for run in self._active.values() if run.task is not None]
        if not tasks:
            return
        log.info("draining", extra={"active": len(tasks), "drain_seconds": seconds})
        _, pending = await asyncio.wait(tasks, timeout=seconds)
        if pending:
            for run in list(self._active.values()):
                run.cancel(STOPPING_MESSAGE, status=ExecutionStatus.FAILED)
            await asyncio.wait(pending)
        await self.settle()  # the outcomes are stored and sent before the server stops

    async def _execute(self, run: ActiveRun) -> tuple[ExecutionStatus, str]:
        """Runs the job under the task's timeout; returns (status, error_message)."""
        limit = run.spec.timeout_seconds
        try:
            async with asyncio.timeout(limit if limit > 0 else None) as deadline:
                run.ctx.result.update(await run_job(run.ctx, self._plugins))
        except TimeoutError:
            if not deadline.expired():
                raise
            run.ctx.log.write(LogStream.SYSTEM, f"执行超时（超过 {limit} 秒）(timed out after {limit} s)")
            return ExecutionStatus.FAILED, f"执行超时（超过 {limit} 秒）"
        except JobFailed as exc:
            run.ctx.result.update(exc.result)
            return ExecutionStatus.FAILED, exc.message
        return ExecutionStatus.SUCCESS, ""

    def _finish(self, run: ActiveRun, task: asyncio.Task[tuple[ExecutionStatus, str]]) -> None:
        run_log = run.ctx.log
        if task.cancelled():
            status, error = run.cancel_status, run.cancel_message or TERMINATED_MESSAGE
        elif (exc := task.exception()) is not None:
            log.error("job crashed", exc_info=exc, extra=_log_fields(run.spec))
            status, error = ExecutionStatus.FAILED, f"执行器内部错误: {exc}"
            run_log.write(LogStream.SYSTEM, "".join(traceback.format_exception(exc)))
        else:
            status, error = task.result()
        run.ended = True
        run_log.write(LogStream.SYSTEM, f"执行结束: {status}" + (f" — {error}" if error else ""))
        # The whole log goes out before the finished event, which ends the stream.
        run_log.finish()
        result = copy.deepcopy(run.ctx.result)
        # The progress fields describe the run to the end: its final status, not "running".
        result["status"] = status
        result["success"] = status == ExecutionStatus.SUCCESS
        if error:
            result["message"] = error.split("\n", 1)[0]
        spec = run.spec
        stored = StoredOutcome(
            execution_id=spec.execution_id,
            attempt=run.attempt,
            task_id=spec.task_id,
            task_type=spec.task_type,
            status=status,
            error_message=error,
            result=result,
            finished_at=time.time(),
        )
        self._spawn(self._publish(run, stored))
        log.info("run finished", extra={**_log_fields(spec), "status": status, "error_message": error})

    async def _publish(self, run: ActiveRun, stored: StoredOutcome) -> None:
        """Stores the outcome (if this executor keeps them on disk), then tells the streams: a
        scheduler never hears of an outcome that a crash of this executor could still lose. The
        run's slot stays taken until then."""
        if self._store is not None:
            await self._store.save(stored)
        # A scheduler may have re-attached while the outcome was being written.
        if run.attempt != stored.attempt and self._store is not None:
            stored = replace(stored, attempt=run.attempt)
            await self._store.save(stored)
        kept = KeptOutcome(stored, run.attempt)
        run.push(kept.event)
        self._active.pop(stored.execution_id, None)
        self._kept[stored.execution_id] = kept


def _log_fields(spec: RunSpec) -> dict[str, object]:
    return {
        "execution_id": spec.execution_id,
        "attempt": spec.attempt,
        "task_id": spec.task_id,
        "task_type": spec.task_type,
    }

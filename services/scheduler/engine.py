"""The scheduler engine.

APScheduler decides WHEN (one job per schedulable task, with our triggers); the registry is the source
of truth, followed through its change feed. A fire becomes an execution row keyed by task + planned
time (so duplicates are impossible), then a run relayed from an executor's stream to the registry.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from services.common.metrics import ACTIVE_RUNS, FIRE_LATENESS, FIRES, PENDING_RUNS
from services.scheduler.clients import ExecutorHandle, ExecutorPool, RegistryClient
from services.scheduler.ledger import RunLedger
from services.scheduler.settings import SchedulerSettings
from services.scheduler.triggers import Schedule, dedup_key
from services.scheduler.workflows import WorkflowRun
from zquant.scheduler.v1 import execution_service_pb2, executor_service_pb2, task_pb2, task_service_pb2
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

log = logging.getLogger(__name__)

RETRYABLE_START = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
GONE = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)
TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED)
FINISH_ATTEMPTS = 12
# A live fire up to this late is on time (event-loop and dispatch latency); the task's misfire grace,
# which may be 0, only decides about fires later than this.
ON_TIME_SECONDS = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def _active_since(task: task_pb2.Task, schedule: Schedule) -> datetime:
    """When the task's current schedule took effect: its anchor, or a later resume / edit."""
    return max(schedule.anchor, task.updated_at.ToDatetime(tzinfo=UTC))


def _job_marker(task_id: int) -> None:
    """APScheduler needs a job function; FireExecutor hands the run times to the engine instead."""


class FireExecutor(BaseExecutor):  # type: ignore[misc]  # APScheduler ships no type hints
    """Receives every due run time of a job (APScheduler's misfire grace is bypassed: the engine
    applies each task's own grace and records what it skips)."""

    def __init__(self, on_fire: Callable[[int, datetime], None]) -> None:
        super().__init__()
        self._on_fire = on_fire

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        for run_time in run_times:
            self._on_fire(job.args[0], run_time)
        self._run_job_success(job.id, [])


@dataclass
class TaskState:
    task: task_pb2.Task
    schedule: Schedule | None


@dataclass
class RunHandle:
    execution_id: int
    task_id: int
    # The workflow run this is a node of (0 = none): woken when this run ends.
    parent_id: int = 0
    handle: ExecutorHandle | None = None
    attempt: int = 0
    cancel_requested: bool = False
    # Set while this run is a workflow driven by the scheduler itself.
    workflow: WorkflowRun | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """A run claimed for an executor: what its Run call needs."""

    handle: ExecutorHandle
    attempt: int
    task: task_pb2.Task


class ProgressRelay:
    """Relays a run's progress to the registry without holding up the executor's stream: one
    report under way at a time; meanwhile only the newest event waits (a progress event is a whole
    snapshot; a heartbeat only renews the lease, so it never replaces a waiting snapshot)."""

    def __init__(self, report: Callable[[executor_service_pb2.RunResponse], Awaitable[bool]]) -> None:
        self._report = report
        self._waiting: executor_service_pb2.RunResponse | None = None
        self._sending: asyncio.Task[None] | None = None
        # Set when the registry refused a report: the attempt is over.
        self.gone = False

    def send(self, event: executor_service_pb2.RunResponse) -> None:
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(self._send_from(event))
        elif self._waiting is None or event.event_type == "progress":
            self._waiting = event

    async def _send_from(self, event: executor_service_pb2.RunResponse | None) -> None:
        while event is not None and not self.gone:
            self.gone = not await self._report(event)
            event, self._waiting = self._waiting, None

    async def settle(self) -> None:
        """Waits until what was sent has reached the registry."""
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)


class Engine:
    def __init__(
        self,
        settings: SchedulerSettings,
        registry: RegistryClient,
        executors: ExecutorPool,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._executors = executors
        self._ledger = RunLedger(registry)
        self._clock = clock
        self._tasks: dict[int, TaskState] = {}
        self._runs: dict[int, RunHandle] = {}
        self._active_by_task: defaultdict[int, set[int]] = defaultdict(set)
        # One fire per task at a time, so the overlap policy sees the run the previous fire started.
        self._fire_locks: dict[int, asyncio.Lock] = {}
        self._catch_up_slots = asyncio.Semaphore(16)
        self._background: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            executors={"default": FireExecutor(self._on_fire)},
            job_defaults={"coalesce": False, "misfire_grace_time": None, "max_instances": 1_000_000},
        )
        self.ready = asyncio.Event()
        ACTIVE_RUNS.set_function(lambda: sum(1 for r in self._runs.values() if r.handle or r.workflow))
        PENDING_RUNS.set_function(lambda: sum(1 for r in self._runs.values() if not (r.handle or r.workflow)))
        # Fire lateness in seconds (planned -> seen by the engine), for metrics and benchmarks.
        self.lateness: deque[float] = deque(maxlen=100_000)

    # ---- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Follows the registry's change feed forever, re-subscribing after any error."""
        self._aps.start()
        backoff = 0.2
        while True:
            try:
                call = self._registry.internal.WatchSchedulerEvents(
                    internal_pb2.WatchSchedulerEventsRequest(), metadata=self._registry.metadata
                )
                snapshot: set[int] = set()
                in_snapshot = True
                async for event in call:
                    backoff = 0.2
                    if event.event_type == "task_upsert":
                        self._upsert(event, live=not in_snapshot)
                        if in_snapshot:
                            snapshot.add(event.task.id)
                            # Concurrently (bounded): one task's missed runs must not hold up the feed.
                            self._spawn(self._catch_up_bounded(event))
                    elif event.event_type == "snapshot_done":
                        in_snapshot = False
                        for task_id in set(self._tasks) - snapshot:
                            self._remove(task_id)
                        await self._adopt_pending_runs()
                        self.ready.set()
                    elif event.event_type == "task_delete":
                        self._remove(event.task_id)
                    elif event.event_type == "execution_ready":
                        self._launch(event.execution)
                    elif event.event_type == "terminate_requested":
                        self._spawn(self._cancel_run(event.execution.id))
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                log.warning("change feed lost, reconnecting", extra={"code": exc.code().name})
            except Exception:
                log.exception("change feed handler failed, reconnecting")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def stop(self) -> None:
        self._stopping = True
        self._aps.shutdown(wait=False)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._ledger.close()

    def _spawn(self, coro: Any) -> None:
        if self._stopping:  # e.g. a fire APScheduler had queued before its shutdown
            coro.close()
            return
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- schedule -----------------------------------------------------------------------------

    def _upsert(self, event: internal_pb2.WatchSchedulerEventsResponse, *, live: bool) -> None:
        """(Re)schedules a task. A live change fires from the moment it was made, so a fire time
        between the commit and its arrival here is due (or recorded as missed), never dropped; a
        snapshot's task fires from now on, `_catch_up` covers its past."""
        task = event.task
        anchor = event.schedule_anchor.ToDatetime(tzinfo=UTC)
        schedule = Schedule.of(task, anchor)
        previous = self._tasks.get(task.id)
        self._tasks[task.id] = TaskState(task=task, schedule=schedule)
        if previous is not None and previous.schedule == schedule:
            return
        job_id = str(task.id)
        if self._aps.get_job(job_id) is not None:
            self._aps.remove_job(job_id)
        if schedule is None:
            return
        trigger = schedule.trigger()
        if not live:
            self._aps.add_job(_job_marker, trigger, args=[task.id], id=job_id)
            return
        # Strictly after the change, like the catch-up window (since, now].
        first = trigger.get_next_fire_time(None, _active_since(task, schedule) + timedelta(microseconds=1))
        if first is not None:  # (None would add a paused job)
            self._aps.add_job(_job_marker, trigger, args=[task.id], id=job_id, next_run_time=first)

    def _remove(self, task_id: int) -> None:
        self._tasks.pop(task_id, None)
        self._fire_locks.pop(task_id, None)
        if self._aps.get_job(str(task_id)) is not None:
            self._aps.remove_job(str(task_id))

    async def _catch_up_bounded(self, event: internal_pb2.WatchSchedulerEventsResponse) -> None:
        async with self._catch_up_slots:
            try:
                await self._catch_up(event)
            except grpc.aio.AioRpcError as exc:
                log.warning("catch-up failed", extra={"task_id": event.task.id, "code": exc.code().name})

    async def _catch_up(self, event: internal_pb2.WatchSchedulerEventsResponse) -> None:
        """Applies the misfire policy to planned times that passed while no scheduler ran."""
        state = self._tasks[event.task.id]
        if state.schedule is None:
            return
        task = event.task
        since = _active_since(task, state.schedule)
        if event.HasField("last_scheduled_time"):
            since = max(since, event.last_scheduled_time.ToDatetime(tzinfo=UTC))
        now = self._clock()
        missed, left_out = state.schedule.planned_between(since, now, self._settings.max_missed_records)
        if not missed:
            return
        catch_up = missed[-1] if task.misfire_policy == "run_once" else None
        if catch_up is not None and (now - catch_up).total_seconds() > task.misfire_grace_seconds:
            catch_up = None
        for index, planned in enumerate(missed):
            if planned == catch_up:
                await self._create_and_launch(task, planned)
                continue
            reason = "调度器未运行，错过计划执行时间"
            if index == 0 and left_out:
                reason += f"（另有 {left_out} 次更早的错过执行未逐条记录）"
            await self._record_skipped(task.id, planned, reason)
        log.info("caught up missed runs", extra={"task_id": task.id, "missed": len(missed) + left_out})

    # ---- firing -------------------------------------------------------------------------------

    def _on_fire(self, task_id: int, planned: datetime) -> None:
        now = self._clock()
        late = (now - planned).total_seconds()
        self.lateness.append(late)
        FIRE_LATENESS.observe(late)
        self._spawn(self._fire(task_id, planned, now))

    async def _fire(self, task_id: int, planned: datetime, now: datetime) -> None:
        async with self._fire_locks.setdefault(task_id, asyncio.Lock()):
            await self._fire_in_order(task_id, planned, now)

    async def _fire_in_order(self, task_id: int, planned: datetime, now: datetime) -> None:
        state = self._tasks.get(task_id)
        if state is None or state.schedule is None:
            return
        task = state.task
        late = (now - planned).total_seconds()
        if late > max(task.misfire_grace_seconds, ON_TIME_SECONDS):
            await self._record_skipped(
                task_id,
                planned,
                f"错过执行宽限期（延迟 {late:.1f} 秒，宽限 {task.misfire_grace_seconds} 秒）",
            )
            FIRES.labels("skipped_late").inc()
            return
        active = self._active_by_task.get(task_id)
        if active:
            if task.concurrency_policy == "forbid":
                await self._record_skipped(
                    task_id, planned, "上一次执行仍在运行，本次跳过（并发策略: forbid）"
                )
                FIRES.labels("skipped_overlap").inc()
                return
            if task.concurrency_policy == "replace":
                for execution_id in list(active):
                    await self._terminate(execution_id)
        await self._create_and_launch(task, planned)
        FIRES.labels("run").inc()

    async def _create(
        self, request: internal_pb2.CreateExecutionRequest
    ) -> internal_pb2.CreateExecutionResponse | None:
        try:
            return await self._ledger.create(request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:  # deleted meanwhile
                return None
            log.error("cannot record run", extra={"task_id": request.task_id, "code": exc.code().name})
            raise

    async def _create_and_launch(self, task: task_pb2.Task, planned: datetime) -> None:
        request = internal_pb2.CreateExecutionRequest(
            task_id=task.id, trigger="schedule", dedup_key=dedup_key(task.id, planned)
        )
        request.scheduled_time.FromDatetime(planned)
        # Created already claimed for an executor: one registry update instead of two.
        handle = self._executors.pick() if task.task_type != "workflow" else None
        if handle is not None:
            request.start_executor = handle.address
        response = await self._create(request)
        if response is None or not response.created:
            return
        claim = Claim(handle, response.attempt, task) if handle is not None and response.attempt else None
        self._launch(response.execution, claim)

    async def _record_skipped(self, task_id: int, planned: datetime, reason: str) -> None:
        request = internal_pb2.CreateExecutionRequest(
            task_id=task_id,
            trigger="schedule",
            status="skipped",
            error_message=reason,
            dedup_key=dedup_key(task_id, planned),
        )
        request.scheduled_time.FromDatetime(planned)
        await self._create(request)

    async def _adopt_pending_runs(self) -> None:
        """Pending runs in the database (manual triggers, retries, runs a previous scheduler left)."""
        response = await self._registry.internal.ListActiveExecutions(
            internal_pb2.ListActiveExecutionsRequest(), metadata=self._registry.metadata, timeout=30
        )
        for execution in response.executions:
            # A running workflow run lost its driver with the previous scheduler: resume it.
            if execution.status == "pending" or self._is_workflow(execution.task_id):
                self._launch(execution)

    def _is_workflow(self, task_id: int) -> bool:
        state = self._tasks.get(task_id)
        return state is not None and state.task.task_type == "workflow"

    async def _task_type(self, task_id: int) -> str:
        """From the feed; asks the registry when a run arrives before its task's change event."""
        state = self._tasks.get(task_id)
        if state is not None:
            return state.task.task_type
        try:
            task = await self._registry.tasks.GetTask(
                task_service_pb2.GetTaskRequest(task_id=task_id), metadata=self._registry.metadata, timeout=30
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in GONE:
                return ""
            raise
        return str(task.task_type)

    # ---- running ------------------------------------------------------------------------------

    def _launch(self, execution: task_pb2.Execution, claim: Claim | None = None) -> None:
        if execution.id in self._runs or execution.status not in ("pending", "running"):
            return
        run = RunHandle(
            execution_id=execution.id, task_id=execution.task_id, parent_id=execution.parent_execution_id
        )
        self._runs[execution.id] = run
        self._active_by_task[execution.task_id].add(execution.id)
        self._spawn(self._run(run, execution, claim))

    async def _run(self, run: RunHandle, execution: task_pb2.Execution, claim: Claim | None) -> None:
        """Drives a run to its end; `claim` when it was created already claimed for an executor."""
        try:
            if execution.HasField("scheduled_time"):
                delay = (execution.scheduled_time.ToDatetime(tzinfo=UTC) - self._clock()).total_seconds()
                if delay > 0:  # a retry waits for its retry interval
                    await asyncio.sleep(delay)
            if claim is None:
                if await self._task_type(run.task_id) == "workflow":
                    run.workflow = WorkflowRun(self._registry, self._launch, execution, asyncio.Event())
                    await run.workflow.run()
                    return
                if execution.status != "pending":
                    return
            backoff = 0.1
            while not run.cancel_requested:
                handle = claim.handle if claim is not None else self._executors.pick()
                if handle is None:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                outcome = await self._dispatch(run, handle, claim)
                claim = None  # a requeued run is claimed again
                if outcome != "requeue":
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("run failed in the scheduler", extra={"execution_id": run.execution_id})
        finally:
            self._runs.pop(run.execution_id, None)
            self._wake_parent(run)
            active = self._active_by_task.get(run.task_id)
            if active is not None:
                active.discard(run.execution_id)
                if not active:
                    del self._active_by_task[run.task_id]

    async def _dispatch(self, run: RunHandle, handle: ExecutorHandle, claim: Claim | None = None) -> str:
        """Claims the run (unless it was created claimed), streams it from one executor;
        'requeue' when that executor had no room."""
        if claim is None:
            try:
                started: internal_pb2.StartExecutionResponse = await self._registry.internal.StartExecution(
                    internal_pb2.StartExecutionRequest(
                        execution_id=run.execution_id, executor=handle.address
                    ),
                    metadata=self._registry.metadata,
                    timeout=30,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() in GONE:  # terminated, deleted, or claimed by another scheduler
                    return "gone"
                raise
            claim = Claim(handle, started.attempt, started.task)
        run.handle, run.attempt = handle, claim.attempt
        call = handle.stub.Run(
            executor_service_pb2.RunRequest(
                execution_id=run.execution_id, attempt=claim.attempt, task=claim.task
            ),
            metadata=self._executors.metadata,
        )
        accepted = False
        relay = ProgressRelay(functools.partial(self._report, run))

        async def finish(status: str, result: Any, error_message: str) -> str:
            await relay.settle()  # the last report lands before the end
            await self._finish(run, status, result, error_message)
            return "done"

        try:
            while True:
                async with asyncio.timeout(self._settings.lost_executor_seconds):
                    event = await call.read()
                if event is grpc.aio.EOF:  # type: ignore[attr-defined]  # missing from grpc-stubs
                    return await finish("failed", None, "执行器失联：执行流意外结束")
                if relay.gone:  # the registry no longer accepts this attempt (reaped, ended elsewhere)
                    call.cancel()
                    return "done"
                if event.event_type == "accepted":
                    accepted = True
                elif event.event_type in ("progress", "heartbeat"):
                    relay.send(event)
                elif event.event_type == "finished":
                    return await finish(event.status, event.result, event.error_message)
        except TimeoutError:
            call.cancel()
            return await finish(
                "failed", None, f"执行器失联（{self._settings.lost_executor_seconds:.0f} 秒未收到心跳）"
            )
        except grpc.aio.AioRpcError as exc:
            if not accepted and exc.code() in RETRYABLE_START:
                self._executors.cool_down(
                    handle, 1.0 if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else 5.0
                )
                await self._requeue(run)
                return "requeue"
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                self._executors.cool_down(handle, 5.0)
            return await finish("failed", None, f"执行器失联：{exc.details() or exc.code().name}")

    async def _report(self, run: RunHandle, event: executor_service_pb2.RunResponse) -> bool:
        """Relays progress; False when the registry no longer accepts this attempt."""
        request = internal_pb2.ReportProgressRequest(execution_id=run.execution_id, attempt=run.attempt)
        if event.event_type == "progress":
            request.result.CopyFrom(event.result)
        try:
            response = await self._ledger.progress(request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in GONE:  # reaped as lost, or finished by someone else
                return False
            # A registry hiccup costs this one report, not the run: the next report or the final
            # state follows (and never lands in the executor stream's error handling).
            log.warning(
                "progress report failed", extra={"execution_id": run.execution_id, "code": exc.code().name}
            )
            return True
        if response.terminate_requested and not run.cancel_requested:
            self._spawn(self._cancel_run(run.execution_id))
        return True

    async def _finish(self, run: RunHandle, status: str, result: Any, error_message: str) -> None:
        request = internal_pb2.FinishExecutionRequest(
            execution_id=run.execution_id, attempt=run.attempt, status=status, error_message=error_message
        )
        if result is not None:
            request.result.CopyFrom(result)
        # The outcome must not be lost to a registry hiccup (a cut database connection, a restart):
        # retried for up to about a lease; the attempt number makes a repeat harmless.
        delay = 0.1
        for _ in range(FINISH_ATTEMPTS):
            try:
                await self._ledger.finish(request)
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() in GONE:
                    return
                if exc.code() not in TRANSIENT:
                    raise
                log.warning("finishing a run failed; retrying", extra={"execution_id": run.execution_id})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        log.error(
            "could not record the end of a run; the lease reaper will",
            extra={"execution_id": run.execution_id},
        )

    async def _requeue(self, run: RunHandle) -> None:
        await self._registry.internal.RequeueExecution(
            internal_pb2.RequeueExecutionRequest(execution_id=run.execution_id, attempt=run.attempt),
            metadata=self._registry.metadata,
            timeout=30,
        )

    def _wake_parent(self, run: RunHandle) -> None:
        parent = self._runs.get(run.parent_id)
        if parent is not None and parent.workflow is not None:
            parent.workflow.wake()

    async def _cancel_run(self, execution_id: int) -> None:
        run = self._runs.get(execution_id)
        if run is None:
            return
        run.cancel_requested = True
        if run.workflow is not None:
            run.workflow.stop()
            return
        if run.handle is not None:
            try:
                await run.handle.stub.Cancel(
                    executor_service_pb2.CancelRequest(execution_id=execution_id),
                    metadata=self._executors.metadata,
                    timeout=10,
                )
            except grpc.aio.AioRpcError as exc:
                log.warning("cancel failed", extra={"execution_id": execution_id, "code": exc.code().name})

    async def _terminate(self, execution_id: int) -> None:
        """Through the registry, so the record says who stopped it and the feed tells everyone."""
        try:
            await self._registry.executions.TerminateExecution(
                execution_service_pb2.TerminateExecutionRequest(execution_id=execution_id),
                metadata=self._registry.metadata,
                timeout=30,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in GONE:
                raise

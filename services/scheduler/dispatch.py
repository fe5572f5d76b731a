"""Dispatch: drives each run the engine launches to its end on an executor.

A run is claimed in the registry for one executor (or created already claimed, see `Claim`), then
streamed from that executor's `Run` call: its progress is relayed to the registry without holding up
the stream (`ProgressRelay`), its end is recorded through the ledger with retries. An executor that
declines before accepting (busy, draining, unreachable) is passed over for a while and the run goes
back to pending for the next one; an executor that goes silent for `lost_executor_seconds`, or
whose stream breaks, fails the run as lost. Workflow runs have no executor: `WorkflowRun` drives
them here, through the same ledger.

The registry stays the source of truth: a run the registry no longer gives to this attempt (reaped,
terminated, ended elsewhere) is dropped without a word, whatever call found out (`reasons.py`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import grpc
from google.protobuf import struct_pb2

from services.common import tracing
from services.common.calendars import TradingCalendar, previous_session
from services.common.metrics import (
    ACTIVE_RUNS,
    LOST_EXECUTOR_RUNS,
    PENDING_RUNS,
    RUN_DURATION,
    RUN_START_DELAY,
)
from services.common.vocabulary import LIVE_STATUSES, TERMINATED_MESSAGE, TaskType
from services.common.vocabulary import ExecutionStatus as Status
from services.scheduler.acknowledgements import Acknowledgements
from services.scheduler.background import Background
from services.scheduler.clients import ExecutorHandle, ExecutorPool, RegistryClient
from services.scheduler.ledger import RunLedger
from services.scheduler.log_relay import LogRelay
from services.scheduler.reasons import (
    cool_down_seconds,
    describe,
    method_missing,
    network_failure,
    run_is_gone,
    task_is_gone,
    try_another_executor,
)
from services.scheduler.settings import SchedulerSettings
from services.scheduler.workflow_runs import WorkflowRun
from zquant.scheduler.v1 import execution_service_pb2, executor_service_pb2, task_pb2, task_service_pb2
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

log = logging.getLogger(__name__)

REGISTRY_TIMEOUT_SECONDS = 30
CANCEL_TIMEOUT_SECONDS = 10
# How long to wait between tries when no executor has room.
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Claim:
    """A run claimed for an executor: what its Run call needs."""

    handle: ExecutorHandle
    attempt: int
    task: task_pb2.Task
    # The run already runs on that executor (adopted from a previous leader): re-attach, never start.
    attach: bool = False


@dataclass
class RunHandle:
    execution_id: int
    task_id: int
    # The workflow run this is a node of (0 = none): woken when this run ends.
    parent_id: int = 0
    handle: ExecutorHandle | None = None
    attempt: int = 0
    # Terminated by someone: set once; the run's executor is told until it says it stopped the job
    # (`cancel_delivered`). A Cancel can overtake its Run on the wire and find nothing to stop, so
    # the executor's acceptance and every report that still says "terminate" send it again.
    cancel_requested: bool = False
    cancel_delivered: bool = False
    cancel_sending: bool = False
    # Set while this run is a workflow driven by the scheduler itself.
    workflow: WorkflowRun | None = None
    # When the run was due (planned fire time, retry due time, creation of a manual run): the start
    # delay metric measures from here.
    due: datetime | None = None
    # What the job is told about its run (services/common/run_params.py).
    logical_date: str = ""
    params: struct_pb2.Struct = field(default_factory=struct_pb2.Struct)

    @property
    def under_way(self) -> bool:
        return self.handle is not None or self.workflow is not None


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
        elif self._waiting is None or event.type == executor_service_pb2.RunResponse.EVENT_TYPE_PROGRESS:
            self._waiting = event

    async def _send_from(self, event: executor_service_pb2.RunResponse | None) -> None:
        while event is not None and not self.gone:
            self.gone = not await self._report(event)
            event, self._waiting = self._waiting, None

    async def settle(self) -> None:
        """Waits until what was sent has reached the registry."""
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)


class Dispatcher:
    def __init__(
        self,
        settings: SchedulerSettings,
        registry: RegistryClient,
        executors: ExecutorPool,
        ledger: RunLedger,
        background: Background,
        known_task: Callable[[int], task_pb2.Task | None],
        clock: Callable[[], datetime],
        known_calendar: Callable[[int], TradingCalendar | None] = lambda task_id: None,
    ) -> None:
        self._settings = settings
        self._known_calendar = known_calendar
        self._registry = registry
        self._executors = executors
        self._ledger = ledger
        self._background = background
        self._known_task = known_task
        self._clock = clock
        self._runs: dict[int, RunHandle] = {}
        self._acknowledgements = Acknowledgements(executors)
        self._active_by_task: defaultdict[int, set[int]] = defaultdict(set)
        ACTIVE_RUNS.set_function(lambda: sum(1 for r in self._runs.values() if r.under_way))
        PENDING_RUNS.set_function(lambda: sum(1 for r in self._runs.values() if not r.under_way))

    async def close(self) -> None:
        """After the runs stopped: the outcomes stored so far are acknowledged."""
        await self._acknowledgements.close()

    def active(self, task_id: int) -> set[int]:
        """The task's runs this scheduler drives now (pending ones included)."""
        return set(self._active_by_task.get(task_id, ()))

    async def start(self, task: task_pb2.Task, planned: datetime, note: str = "") -> None:
        """The run of a fire (with its `note`, Execution.note): created already claimed for an
        executor when one has room (one registry update instead of two), then driven to its end. A
        fire recorded before (the same planned time) starts nothing."""
        # A workflow runs in the scheduler itself.
        handle = self._executors.pick() if task.task_type != TaskType.WORKFLOW else None
        response = await self._ledger.record_fire(
            task, planned, start_executor=handle.address if handle is not None else "", note=note
        )
        if response is None or not response.created:
            return
        claim = Claim(handle, response.attempt, task) if handle is not None and response.attempt else None
        self.launch(response.execution, claim)

    def launch(self, execution: task_pb2.Execution, claim: Claim | None = None) -> None:
        """Drives `execution` in the background, in its trace (Execution.traceparent) when it has one."""
        if execution.id in self._runs or execution.status not in LIVE_STATUSES:
            return
        run = RunHandle(
            execution_id=execution.id,
            task_id=execution.task_id,
            parent_id=execution.parent_execution_id,
            due=_due(execution),
            logical_date=execution.logical_date,
            params=execution.params,
        )
        self._runs[execution.id] = run
        self._active_by_task[execution.task_id].add(execution.id)
        self._background.spawn(self._run(run, execution, claim))

    async def adopt_active_runs(self) -> None:
        """Pending runs in the database (manual triggers, retries, runs a previous scheduler left),
        running workflows, which lost their driver with the previous scheduler, and runs still going
        on an executor (their scheduler stepped down or lost its registry): resumed here. A running
        job is never failed for its scheduler's sake: this leader re-attaches to it."""
        response = await self._registry.internal.ListActiveExecutions(
            internal_pb2.ListActiveExecutionsRequest(),
            metadata=self._registry.metadata,
            timeout=REGISTRY_TIMEOUT_SECONDS,
        )
        for execution in response.executions:
            task = self._known_task(execution.task_id)
            if execution.status == Status.PENDING or (
                task is not None and task.task_type == TaskType.WORKFLOW
            ):
                self.launch(execution)
            elif execution.status == Status.RUNNING and execution.id not in self._runs:
                handle = self._executors.handle_for(execution.executor)
                if handle is not None:
                    self._background.spawn(self._adopt(execution, handle))

    async def _adopt(self, execution: task_pb2.Execution, handle: ExecutorHandle) -> None:
        """Takes a running run over in the registry (a new attempt: the old one's late reports are
        refused), then re-attaches to it on its executor."""
        if execution.id in self._runs:
            return
        try:
            # In the run's trace: the takeover shows between the two schedulers' spans of the run.
            with tracing.span("adopt run", execution.traceparent, execution_id=execution.id):
                started: internal_pb2.StartExecutionResponse = await self._registry.internal.StartExecution(
                    internal_pb2.StartExecutionRequest(
                        execution_id=execution.id, executor=handle.address, adopt=True
                    ),
                    metadata=self._registry.metadata,
                    timeout=REGISTRY_TIMEOUT_SECONDS,
                )
        except grpc.aio.AioRpcError as exc:
            if not run_is_gone(exc):
                log.warning(
                    "could not adopt a run", extra={"execution_id": execution.id, "reason": describe(exc)}
                )
            return
        log.info("adopting a running run", extra={"execution_id": execution.id, "executor": handle.address})
        self.launch(execution, Claim(handle, started.attempt, started.task, attach=True))

    def request_cancel(self, execution_id: int) -> None:
        """The registry says the run is to be terminated: tell whoever runs it."""
        self._background.spawn(self._cancel(execution_id))

    async def terminate(self, execution_id: int) -> None:
        """Through the registry, so the record says who stopped it and the feed tells everyone."""
        try:
            await self._registry.executions.TerminateExecution(
                execution_service_pb2.TerminateExecutionRequest(execution_id=execution_id),
                metadata=self._registry.metadata,
                timeout=REGISTRY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            if not run_is_gone(exc):
                raise

    # ---- one run --------------------------------------------------------------------------------

    async def _run(self, run: RunHandle, execution: task_pb2.Execution, claim: Claim | None) -> None:
        """Drives a run to its end; `claim` when it was created already claimed for an executor.
        With tracing on, under one span continuing the trace stored on the run (Execution.traceparent:
        its trigger's, whichever scheduler launches it, after a failover too; a new trace when it has
        none): its calls to the registry and the executor carry it."""
        traceparent = execution.traceparent
        with tracing.span("run execution", traceparent, execution_id=run.execution_id, task_id=run.task_id):
            await self._drive(run, execution, claim)

    async def _drive(self, run: RunHandle, execution: task_pb2.Execution, claim: Claim | None) -> None:
        try:
            if execution.HasField("scheduled_time"):
                delay = (execution.scheduled_time.ToDatetime(tzinfo=UTC) - self._clock()).total_seconds()
                if delay > 0:  # a retry waits for its retry interval
                    await asyncio.sleep(delay)
            if claim is None:
                if await self._task_type(run.task_id) == TaskType.WORKFLOW:
                    run.workflow = WorkflowRun(self._registry, self._ledger, self.launch, execution)
                    await run.workflow.run()
                    return
                if execution.status != Status.PENDING:
                    return
            await self._run_on_executors(run, claim)
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

    async def _run_on_executors(self, run: RunHandle, claim: Claim | None) -> None:
        """Tries executors until one takes the run (or the run is gone or cancelled)."""
        backoff = FIRST_BACKOFF_SECONDS
        while True:
            if claim is None and not run.cancel_requested:
                handle = self._executors.pick()
                if handle is not None:
                    claim = await self._claim(run, handle)
                    if claim is None:
                        return
            # A pending run's termination ended it in the registry already; a re-attached one is
            # stopped where it runs (its acceptance sends the Cancel).
            if run.cancel_requested and (claim is None or not claim.attach):
                if claim is not None:  # claimed (so it shows running) but no executor has it yet
                    run.attempt = claim.attempt
                    await self._finish(run, Status.TERMINATED, None, TERMINATED_MESSAGE)
                return
            if claim is not None:
                if not await self._stream(run, claim):
                    return
                claim = None  # declined: back to pending, claimed anew for the next executor
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _task_type(self, task_id: int) -> str:
        """From the feed; asks the registry when a run arrives before its task's change event."""
        task = self._known_task(task_id)
        if task is not None:
            return task.task_type
        try:
            task = await self._registry.tasks.GetTask(
                task_service_pb2.GetTaskRequest(task_id=task_id),
                metadata=self._registry.metadata,
                timeout=REGISTRY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            if task_is_gone(exc):
                return ""
            raise
        return str(task.task_type)

    async def _claim(self, run: RunHandle, handle: ExecutorHandle) -> Claim | None:
        """Claims a pending run for `handle`; None when it is no longer pending here (terminated,
        deleted, or claimed by another scheduler)."""
        try:
            started: internal_pb2.StartExecutionResponse = await self._registry.internal.StartExecution(
                internal_pb2.StartExecutionRequest(execution_id=run.execution_id, executor=handle.address),
                metadata=self._registry.metadata,
                timeout=REGISTRY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            if run_is_gone(exc):
                return None
            raise
        return Claim(handle, started.attempt, started.task)

    def _prev_trading_day(self, run: RunHandle) -> str:
        """`{{ prev_trading_day }}` of the run, by its task's calendar as loaded here ("" when the
        run has no logical date: the executor then uses its own today's previous weekday)."""
        if not run.logical_date:
            return ""
        day = date.fromisoformat(run.logical_date)
        return previous_session(self._known_calendar(run.task_id), day).isoformat()

    async def _stream(self, run: RunHandle, claim: Claim) -> bool:
        """Runs the claimed attempt on its executor until it ends; True when the executor declined
        it and the run is pending again."""
        run.handle, run.attempt = claim.handle, claim.attempt
        log.info(
            "run sent to an executor",
            extra={
                "execution_id": run.execution_id,
                "executor": claim.handle.address,
                "attempt": claim.attempt,
            },
        )
        if claim.attach:
            await self._wait_until_reachable(claim.handle)
        call = claim.handle.stub.Run(
            executor_service_pb2.RunRequest(
                execution_id=run.execution_id,
                attempt=claim.attempt,
                task=claim.task,
                attach=claim.attach,
                logical_date=run.logical_date,
                params=run.params,
                prev_trading_day=self._prev_trading_day(run),
            ),
            metadata=self._executors.metadata,
        )
        accepted = False
        accepted_at = 0.0
        task_type = claim.task.task_type
        relay = ProgressRelay(functools.partial(self._report, run))
        run_log = LogRelay(functools.partial(self._append_log, run))
        verb = "重新接管" if claim.attach else "交给"
        run_log.system(
            f"调度器{verb}执行器 {claim.handle.address}，第 {claim.attempt} 次尝试 "
            f"({'re-attached to' if claim.attach else 'claimed for'} executor {claim.handle.address}, "
            f"attempt {claim.attempt})"
        )

        async def finish(status: str, result: Any, error_message: str, reported: bool = False) -> bool:
            if accepted and not claim.attach:  # an adopted run started under another scheduler
                RUN_DURATION.labels(task_type, status).observe(time.monotonic() - accepted_at)
            if not reported:  # the scheduler decided this end (lost executor): the log says why
                run_log.system(f"执行结束: {status} — {error_message}")
            await run_log.settle()  # the whole log is stored before the run ends
            await relay.settle()  # the last report lands before the end
            stored = await self._finish(run, status, result, error_message)
            if reported and stored:  # the executor may forget the outcome now
                self._acknowledgements.add(claim.handle, run.execution_id, run.attempt)
            return False

        try:
            while True:
                async with asyncio.timeout(self._settings.lost_executor_seconds):
                    event = await call.read()
                if event is grpc.aio.EOF:  # type: ignore[attr-defined]  # missing from grpc-stubs
                    LOST_EXECUTOR_RUNS.labels("stream_ended").inc()
                    return await finish(Status.FAILED, None, "执行器失联：执行流意外结束")
                if relay.gone:  # the registry no longer accepts this attempt (reaped, ended elsewhere)
                    call.cancel()
                    self._stop_abandoned(claim.handle, run)
                    return False
                if event.type == executor_service_pb2.RunResponse.EVENT_TYPE_LOG:
                    run_log.send(event.log)
                elif event.type == executor_service_pb2.RunResponse.EVENT_TYPE_ACCEPTED:
                    accepted, accepted_at = True, time.monotonic()
                    if run.cancel_requested:  # terminated while the Run was on its way
                        self.request_cancel(run.execution_id)
                    if run.due is not None and not claim.attach:
                        delay = (self._clock() - run.due).total_seconds()
                        RUN_START_DELAY.labels(task_type).observe(max(delay, 0.0))
                elif event.type in (
                    executor_service_pb2.RunResponse.EVENT_TYPE_PROGRESS,
                    executor_service_pb2.RunResponse.EVENT_TYPE_HEARTBEAT,
                ):
                    relay.send(event)
                elif event.type == executor_service_pb2.RunResponse.EVENT_TYPE_FINISHED:
                    return await finish(event.status, event.result, event.error_message, reported=True)
        except TimeoutError:
            LOST_EXECUTOR_RUNS.labels("silent").inc()
            call.cancel()
            self._stop_abandoned(claim.handle, run)
            return await finish(
                Status.FAILED, None, f"执行器失联（{self._settings.lost_executor_seconds:.0f} 秒未收到心跳）"
            )
        except grpc.aio.AioRpcError as exc:
            if not accepted and not claim.attach and try_another_executor(exc):
                self._executors.cool_down(claim.handle, cool_down_seconds(exc))
                return await self._requeue(run)
            if network_failure(exc):
                self._executors.cool_down(claim.handle, cool_down_seconds(exc))
            LOST_EXECUTOR_RUNS.labels("unreachable").inc()
            self._stop_abandoned(claim.handle, run)
            return await finish(Status.FAILED, None, f"执行器失联：{exc.details() or exc.code().name}")

    async def _wait_until_reachable(self, handle: ExecutorHandle) -> None:
        """A run is re-attached where it ran. An executor restarting right now still has the
        outcomes of its finished runs (kept on disk until acknowledged, services/executor/
        outcomes.py): it is waited for, as long as a silent stream would be, before the re-attach
        fails and the run counts as lost."""
        try:
            await handle.stub.GetLoad(
                executor_service_pb2.GetLoadRequest(),
                metadata=self._executors.metadata,
                timeout=self._settings.lost_executor_seconds,
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as exc:  # the Run call that follows meets the same: lost
            log.info(
                "executor unreachable for a re-attach",
                extra={"executor": handle.address, "reason": describe(exc)},
            )

    async def _report(self, run: RunHandle, event: executor_service_pb2.RunResponse) -> bool:
        """Relays progress; False when the registry no longer accepts this attempt."""
        request = internal_pb2.ReportProgressRequest(execution_id=run.execution_id, attempt=run.attempt)
        if event.type == executor_service_pb2.RunResponse.EVENT_TYPE_PROGRESS:
            request.result.CopyFrom(event.result)
        response = await self._ledger.report(request)
        if response is None:
            return False
        if response.terminate_requested and not run.cancel_delivered:
            self.request_cancel(run.execution_id)
        return True

    async def _append_log(self, run: RunHandle, data: bytes) -> bool:
        """Appends to the run's log; False when the run is gone."""
        try:
            await self._ledger.append_log(
                internal_pb2.AppendExecutionLogRequest(execution_id=run.execution_id, data=data)
            )
        except grpc.aio.AioRpcError as exc:
            if run_is_gone(exc) or method_missing(exc):  # an older registry keeps no logs
                return False
            raise
        return True

    async def _finish(self, run: RunHandle, status: str, result: Any, error_message: str) -> bool:
        """True when the registry has the end (stored now, or the run had ended already)."""
        request = internal_pb2.FinishExecutionRequest(
            execution_id=run.execution_id, attempt=run.attempt, status=status, error_message=error_message
        )
        if result is not None:
            request.result.CopyFrom(result)
        return await self._ledger.end(request)

    def _stop_abandoned(self, handle: ExecutorHandle, run: RunHandle) -> None:
        """A job outlives its stream, so a run this scheduler gives up on (lost, reaped) is stopped
        explicitly where it may still be running, before its retry runs elsewhere. Only this
        attempt: a run another scheduler re-attached to is left alone."""
        self._background.spawn(self._send_cancel(handle, run.execution_id, run.attempt))

    async def _send_cancel(self, handle: ExecutorHandle, execution_id: int, attempt: int) -> None:
        try:
            await handle.stub.Cancel(
                executor_service_pb2.CancelRequest(execution_id=execution_id, attempt=attempt),
                metadata=self._executors.metadata,
                timeout=CANCEL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            log.info(
                "could not stop an abandoned run",
                extra={"execution_id": execution_id, "reason": describe(exc)},
            )

    async def _requeue(self, run: RunHandle) -> bool:
        """Back to pending after an executor declined; False when the run is gone meanwhile."""
        try:
            await self._registry.internal.RequeueExecution(
                internal_pb2.RequeueExecutionRequest(execution_id=run.execution_id, attempt=run.attempt),
                metadata=self._registry.metadata,
                timeout=REGISTRY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            if run_is_gone(exc):
                return False
            raise
        return True

    def _wake_parent(self, run: RunHandle) -> None:
        parent = self._runs.get(run.parent_id)
        if parent is not None and parent.workflow is not None:
            parent.workflow.wake()

    async def _cancel(self, execution_id: int) -> None:
        run = self._runs.get(execution_id)
        if run is None:
            return
        run.cancel_requested = True
        if run.workflow is not None:
            run.workflow.stop()
            return
        if run.handle is None or run.cancel_delivered or run.cancel_sending:
            return  # not sent yet (acceptance sends it), stopped already, or under way
        run.cancel_sending = True
        try:
            response = await run.handle.stub.Cancel(
                executor_service_pb2.CancelRequest(execution_id=execution_id, attempt=run.attempt),
                metadata=self._executors.metadata,
                timeout=CANCEL_TIMEOUT_SECONDS,
            )
            run.cancel_delivered = response.cancelled
        except grpc.aio.AioRpcError as exc:
            log.warning("cancel failed", extra={"execution_id": execution_id, "reason": describe(exc)})
        finally:
            run.cancel_sending = False


def _due(execution: task_pb2.Execution) -> datetime | None:
    """When the run was due: its planned (or retry due) time, else its creation (a manual run)."""
    if execution.HasField("scheduled_time"):
        return execution.scheduled_time.ToDatetime(tzinfo=UTC)
    if execution.HasField("created_at"):
        return execution.created_at.ToDatetime(tzinfo=UTC)
    return None

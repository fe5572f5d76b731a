"""Dispatch: drives each run the engine launches to its end, on an executor or, for a workflow, in
the scheduler itself. The Dispatcher coordinates; each job it hands out lives in its own module.

A run is claimed in the registry for one executor (`claims.py`: claim, requeue, adopt), or created
already claimed (a fire's; a manual run whose trigger offer named an executor, `take_offer`), then
streamed from that executor's `Run` call until its end is recorded through the ledger
(`executor_stream.py`, with `progress_relay.py` and `log_relay.py`). An executor that declines
before accepting (busy, draining, unreachable) is passed over for a while and the run goes back to
pending for the next one. A termination reaches the run wherever it is on its way (`cancels.py`): a
pending run ends in the registry, a run claimed but not yet streaming ends terminated here, a run on
an executor is sent a Cancel until the executor confirms it. Workflow runs have no executor:
`WorkflowRun` drives them here, through the same ledger.

The registry stays the source of truth: a run the registry no longer gives to this attempt (reaped,
terminated, ended elsewhere) is dropped without a word, whatever call found out (`reasons.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import grpc

from services.common import tracing
from services.common.calendars import TradingCalendar
from services.common.metrics import ACTIVE_RUNS, PENDING_RUNS
from services.common.vocabulary import LIVE_STATUSES, TERMINATED_MESSAGE, TaskType
from services.common.vocabulary import ExecutionStatus as Status
from services.scheduler.acknowledgements import Acknowledgements
from services.scheduler.background import Background
from services.scheduler.cancels import Cancels
from services.scheduler.claims import Claims
from services.scheduler.clients import REGISTRY_TIMEOUT_SECONDS, ExecutorHandle, ExecutorPool, RegistryClient
from services.scheduler.executor_stream import ExecutorStream
from services.scheduler.ledger import RunLedger
from services.scheduler.reasons import describe, task_is_gone
from services.scheduler.run_handle import Claim, RunHandle
from services.scheduler.settings import SchedulerSettings
from services.scheduler.workflow_runs import WorkflowRun
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2, task_service_pb2

log = logging.getLogger(__name__)

# Live runs read per call when a new leader resumes them.
ACTIVE_PAGE = 1000
# How long to wait before trying again after an executor declined a run.
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0


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
        self._registry = registry
        self._executors = executors
        self._ledger = ledger
        self._background = background
        self._known_task = known_task
        self._clock = clock
        self._runs: dict[int, RunHandle] = {}
        self._acknowledgements = Acknowledgements(executors)
        self._claims = Claims(registry, ledger)
        self._cancels = Cancels(registry, executors, background)
        self._streams = ExecutorStream(
            settings,
            executors,
            ledger,
            self._acknowledgements,
            self._cancels,
            self.request_cancel,
            self.give_back_room,
            clock,
            known_calendar,
        )
        self._active_by_task: defaultdict[int, set[int]] = defaultdict(set)
        ACTIVE_RUNS.set_function(lambda: sum(1 for r in self._runs.values() if r.under_way))
        PENDING_RUNS.set_function(lambda: sum(1 for r in self._runs.values() if not r.under_way))

    async def close(self) -> None:
        """After the runs stopped: the outcomes stored so far are acknowledged, and the executors'
        room counts no run of this dispatcher any more (one cancelled before it began released
        nothing)."""
        self._executors.release_all()
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
        claim: Claim | None = None
        try:
            response = await self._ledger.record_fire(
                task, planned, start_executor=handle.address if handle is not None else "", note=note
            )
            if response is None or not response.created:
                return
            if handle is not None and response.attempt:
                claim = Claim(handle, response.attempt, task)
            self.launch(response.execution, claim)
        finally:
            if handle is not None and claim is None:  # the run was not claimed for it
                self._executors.release(handle)

    def take_offer(self, offer: internal_pb2.TriggerOffer) -> None:
        """A user is triggering the task: an executor with room is named for its run, which the
        registry then creates running there and hands back to be driven (one registry update
        instead of two, as a fire's); a workflow's run, or one no executor has room for, is
        declined and arrives pending."""
        self._background.spawn(self._answer_offer(offer))

    async def _answer_offer(self, offer: internal_pb2.TriggerOffer) -> None:
        task = self._known_task(offer.task_id)
        # Declined: a task not known yet (its change is on the way), a workflow (it runs here).
        declined = task is None or task.task_type == TaskType.WORKFLOW
        handle = None if declined else self._executors.pick()
        claim: Claim | None = None
        try:
            started = await self._ledger.answer_offer(
                offer.offer_id, handle.address if handle is not None else ""
            )
            if started is not None and handle is not None:
                claim = Claim(handle, started.attempt, started.task)
                self.launch(started.execution, claim)
        except grpc.aio.AioRpcError as exc:
            # The trigger no longer waited (its run arrives pending), or failed (its caller was told).
            log.debug("trigger offer not taken", extra={"task_id": offer.task_id, "reason": describe(exc)})
        finally:
            if handle is not None and claim is None:  # the run was not created on it
                self._executors.release(handle)

    def launch(self, execution: task_pb2.Execution, claim: Claim | None = None) -> None:
        """Drives `execution` in the background, in its trace (Execution.traceparent) when it has one."""
        if execution.id in self._runs or execution.status not in LIVE_STATUSES:
            if claim is not None:
                self._executors.release(claim.handle)
            return
        run = RunHandle(
            execution_id=execution.id,
            task_id=execution.task_id,
            parent_id=execution.parent_execution_id,
            room=claim.handle if claim is not None else None,
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
        on an executor (their scheduler stepped down or lost its registry): resumed here, every one
        of them, page by page. A running job is never failed for its scheduler's sake: this leader
        re-attaches to it."""
        after_id = 0
        while True:
            response = await self._registry.internal.ListActiveExecutions(
                internal_pb2.ListActiveExecutionsRequest(limit=ACTIVE_PAGE, after_id=after_id),
                metadata=self._registry.metadata,
                timeout=REGISTRY_TIMEOUT_SECONDS,
            )
            for execution in response.executions:
                self._resume(execution)
            if len(response.executions) < ACTIVE_PAGE:
                return
            after_id = response.executions[-1].id

    def _resume(self, execution: task_pb2.Execution) -> None:
        task = self._known_task(execution.task_id)
        if execution.status == Status.PENDING or (task is not None and task.task_type == TaskType.WORKFLOW):
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
        # In the run's trace: the takeover shows between the two schedulers' spans of the run.
        with tracing.span("adopt run", execution.traceparent, execution_id=execution.id):
            claim = await self._claims.adopt(execution, handle)
        if claim is not None:
            self._executors.reserve(handle)  # it runs there: it takes room (launch hands it the run)
            self.launch(execution, claim)

    def request_cancel(self, execution_id: int) -> None:
        """The registry says the run is to be terminated: tell whoever runs it."""
        self._background.spawn(self._cancel(execution_id))

    async def terminate(self, execution_id: int) -> None:
        """Through the registry, so the record says who stopped it and the feed tells everyone."""
        await self._cancels.terminate(execution_id)

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
            self.give_back_room(run)  # whatever ended the run (also a cancelled wait)
            self._runs.pop(run.execution_id, None)
            self._wake_parent(run)
            active = self._active_by_task.get(run.task_id)
            if active is not None:
                active.discard(run.execution_id)
                if not active:
                    del self._active_by_task[run.task_id]

    async def _run_on_executors(self, run: RunHandle, claim: Claim | None) -> None:
        """Waits for an executor with room (the longest-waiting run first), claims the run for it and
        follows it there; again when that executor declines it, until one takes the run (or the run
        is gone or cancelled)."""
        backoff = FIRST_BACKOFF_SECONDS
        while True:
            if claim is None and not run.cancel_requested:
                run.room = await self._executors.wait_for_room(run.execution_id)
                if run.room is not None:
                    claim = await self._claims.claim(run, run.room)
                    if claim is None:
                        return
            # A pending run's termination ended it in the registry already; a re-attached one is
            # stopped where it runs (its acceptance sends the Cancel).
            if run.cancel_requested and (claim is None or not claim.attach):
                if claim is not None:  # claimed (so it shows running) but no executor has it yet
                    self.give_back_room(run)
                    run.attempt = claim.attempt
                    await self._ledger.end(run.end_request(Status.TERMINATED, None, TERMINATED_MESSAGE))
                return
            if claim is None:
                continue
            declined = await self._streams.follow(run, claim)
            self.give_back_room(run)  # if the stream did not already
            if not declined or not await self._claims.requeue(run):
                return
            claim = None  # back to pending, claimed anew for the next executor
            await asyncio.sleep(backoff)  # the declining executor cools down meanwhile
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def give_back_room(self, run: RunHandle) -> None:
        """The run no longer needs its executor's room (the job ended there, or the run went back to
        pending or ended): it goes to the run waiting longest. Once; later calls do nothing."""
        if run.room is not None:
            room, run.room = run.room, None
            self._executors.release(room)

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

    def _wake_parent(self, run: RunHandle) -> None:
        parent = self._runs.get(run.parent_id)
        if parent is not None and parent.workflow is not None:
            parent.workflow.wake()

    async def _cancel(self, execution_id: int) -> None:
        """What `request_cancel` runs: the run as it is now (it may have ended meanwhile)."""
        run = self._runs.get(execution_id)
        if run is not None:
            await self._cancels.cancel(run)
            self._executors.stop_waiting(execution_id)  # a run waiting for room waits no more


def _due(execution: task_pb2.Execution) -> datetime | None:
    """When the run was due: its planned (or retry due) time, else its creation (a manual run)."""
    if execution.HasField("scheduled_time"):
        return execution.scheduled_time.ToDatetime(tzinfo=UTC)
    if execution.HasField("created_at"):
        return execution.created_at.ToDatetime(tzinfo=UTC)
    return None

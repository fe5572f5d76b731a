"""The stream of one attempt on its executor: from the `Run` call to the attempt's end.

The executor answers a `Run` with a stream of events: accepted, log lines, progress snapshots,
heartbeats, and finally the outcome; the events that were ready together come in one message
(`RunRequest.batch_events`), so a quick job's stream is two or three messages, not four or five.
Log lines go to the registry through a `LogRelay`, progress and heartbeats through a
`ProgressRelay`, neither holding up the stream; the outcome is recorded
through the ledger after both have landed, and then acknowledged to the executor (which may forget
it). The scheduler ends the attempt itself, failed as lost, when the executor goes silent for
`lost_executor_seconds`, its stream ends without an outcome, or the call breaks; a job that may
still run there is then stopped (`Cancels.stop_abandoned`). An executor that declines before
accepting (busy, draining) is cooled down and the attempt returns as declined, for the dispatcher to
put the run back to pending; so does a run adopted from a previous leader that never reached the
executor it was claimed for (the executor does not know it and was up since before the claim:
`reasons.never_reached_executor`), where the lost executor's story would be untrue. A report the
registry refuses means the attempt is no longer this scheduler's: the stream is dropped without a
word.

A termination requested while the Run was on its way is sent again when the executor accepts, and
whenever a report comes back saying "terminate" (see `cancels.py`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import grpc

from services.common.calendars import TradingCalendar, previous_session
from services.common.metrics import LOST_EXECUTOR_RUNS, RUN_DURATION, RUN_START_DELAY
from services.common.vocabulary import ExecutionStatus as Status
from services.scheduler.acknowledgements import Acknowledgements
from services.scheduler.cancels import Cancels
from services.scheduler.clients import ExecutorHandle, ExecutorPool
from services.scheduler.ledger import RunLedger
from services.scheduler.log_relay import LogRelay
from services.scheduler.progress_relay import ProgressRelay
from services.scheduler.reasons import (
    cool_down_seconds,
    describe,
    method_missing,
    network_failure,
    never_reached_executor,
    run_is_gone,
    try_another_executor,
)
from services.scheduler.run_handle import Claim, RunHandle
from services.scheduler.settings import SchedulerSettings
from zquant.scheduler.v1 import executor_service_pb2
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

log = logging.getLogger(__name__)


class ExecutorStream:
    def __init__(
        self,
        settings: SchedulerSettings,
        executors: ExecutorPool,
        ledger: RunLedger,
        acknowledgements: Acknowledgements,
        cancels: Cancels,
        request_cancel: Callable[[int], None],
        give_back_room: Callable[[RunHandle], None],
        clock: Callable[[], datetime],
        known_calendar: Callable[[int], TradingCalendar | None],
    ) -> None:
        self._settings = settings
        self._executors = executors
        self._ledger = ledger
        self._acknowledgements = acknowledgements
        self._cancels = cancels
        self._request_cancel = request_cancel
        self._give_back_room = give_back_room
        self._clock = clock
        self._known_calendar = known_calendar

    async def follow(self, run: RunHandle, claim: Claim) -> bool:
        """Runs the claimed attempt on its executor until it ends; True when the executor declined
        it before accepting, or a run re-attached to never reached it (the run is to go back to
        pending)."""
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
                batch_events=True,
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
            stored = await self._ledger.end(run.end_request(status, result, error_message))
            if reported and stored:  # the executor may forget the outcome now
                self._acknowledgements.add(claim.handle, run.execution_id, run.attempt)
            return False

        try:
            while True:
                async with asyncio.timeout(self._settings.lost_executor_seconds):
                    message = await call.read()
                if message is grpc.aio.EOF:  # type: ignore[attr-defined]  # missing from grpc-stubs
                    LOST_EXECUTOR_RUNS.labels("stream_ended").inc()
                    return await finish(Status.FAILED, None, "执行器失联：执行流意外结束")
                if relay.gone:  # the registry no longer accepts this attempt (reaped, ended elsewhere)
                    call.cancel()
                    self._cancels.stop_abandoned(claim.handle, run)
                    return False
                for event in (message, *message.then):  # the events that were ready together
                    if event.type == executor_service_pb2.RunResponse.EVENT_TYPE_LOG:
                        run_log.send(event.log)
                    elif event.type == executor_service_pb2.RunResponse.EVENT_TYPE_ACCEPTED:
                        accepted, accepted_at = True, time.monotonic()
                        if run.cancel_requested:  # terminated while the Run was on its way
                            self._request_cancel(run.execution_id)
                        if run.due is not None and not claim.attach:
                            delay = (self._clock() - run.due).total_seconds()
                            RUN_START_DELAY.labels(task_type).observe(max(delay, 0.0))
                    elif event.type in (
                        executor_service_pb2.RunResponse.EVENT_TYPE_PROGRESS,
                        executor_service_pb2.RunResponse.EVENT_TYPE_HEARTBEAT,
                    ):
                        relay.send(event)
                    elif event.type == executor_service_pb2.RunResponse.EVENT_TYPE_FINISHED:
                        # The executor freed the job's slot before saying so: the next run may have
                        # it while this end is being stored.
                        self._give_back_room(run)
                        return await finish(event.status, event.result, event.error_message, reported=True)
        except TimeoutError:
            LOST_EXECUTOR_RUNS.labels("silent").inc()
            call.cancel()
            self._cancels.stop_abandoned(claim.handle, run)
            return await finish(
                Status.FAILED, None, f"执行器失联（{self._settings.lost_executor_seconds:.0f} 秒未收到心跳）"
            )
        except grpc.aio.AioRpcError as exc:
            if not accepted and not claim.attach and try_another_executor(exc):
                self._executors.cool_down(claim.handle, cool_down_seconds(exc))
                return True
            if claim.attach and never_reached_executor(exc, claim.assigned_at):
                log.info(
                    "adopted run never reached its executor: back to pending",
                    extra={"execution_id": run.execution_id},
                )
                run_log.system(
                    f"执行器 {claim.handle.address} 从未收到此运行（上一调度器认领后未送达），重新排队 "
                    "(the run never reached its executor: back to pending)"
                )
                await run_log.settle()
                return True
            if network_failure(exc):
                self._executors.cool_down(claim.handle, cool_down_seconds(exc))
            LOST_EXECUTOR_RUNS.labels("unreachable").inc()
            self._cancels.stop_abandoned(claim.handle, run)
            return await finish(Status.FAILED, None, f"执行器失联：{exc.details() or exc.code().name}")

    def _prev_trading_day(self, run: RunHandle) -> str:
        """`{{ prev_trading_day }}` of the run, by its task's calendar as loaded here ("" when the
        run has no logical date: the executor then uses its own today's previous weekday)."""
        if not run.logical_date:
            return ""
        day = date.fromisoformat(run.logical_date)
        return previous_session(self._known_calendar(run.task_id), day).isoformat()

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
            self._request_cancel(run.execution_id)
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

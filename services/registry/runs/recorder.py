"""RunRecorder: creates, starts, reports and ends of runs (the design is in the package docstring)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf import struct_pb2

from services.common.errors import DomainError, InvalidArgument, Reason
from services.common.structs import struct_to_dict
from services.registry.app import RegistryApp
from services.registry.convert import execution_to_proto, from_timestamp, task_event
from services.registry.runs.model import (
    Appended,
    Created,
    End,
    Ended,
    LogAppend,
    NewRun,
    Outcome,
    Report,
    Reported,
    Start,
    Started,
    Update,
)
from services.registry.runs.shielded import to_the_end
from services.registry.runs.transaction import AfterCommit, KnownEnd, Poisoned, RunTransaction, Stored
from services.registry.store import calendars, run_ends, run_history
from services.registry.store import executions as store
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

log = logging.getLogger(__name__)

MAX_RECORD_UPDATES = 1000
T = TypeVar("T")


def _run_all(after: AfterCommit) -> None:
    for action in after:
        action()


def _as_domain_error(exc: Exception) -> DomainError:
    if isinstance(exc, DomainError):
        return exc
    log.error("a run update failed", exc_info=exc)
    return DomainError("内部错误", reason=Reason.INTERNAL)


class RunRecorder:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app
        # Calendar re-sends under way: held here so they are not garbage collected.
        self._storing: set[asyncio.Future[Any]] = set()
        self._transaction = RunTransaction(app, self._calendars_synced)

    # ---- batches and single calls -----------------------------------------------------------

    async def record(self, updates: Sequence[Update | None]) -> list[Outcome]:
        """The scheduler's batch: one outcome per update, in order (None: an empty update)."""
        if len(updates) > MAX_RECORD_UPDATES:
            raise InvalidArgument(
                f"一次最多记录 {MAX_RECORD_UPDATES} 条更新", reason=Reason.RUN_UPDATE_INVALID
            )
        empty = InvalidArgument("更新内容为空", reason=Reason.RUN_UPDATE_INVALID)
        outcomes: list[Outcome] = [empty] * len(updates)
        for index, update in enumerate(updates):
            if isinstance(update, Report):
                try:
                    outcomes[index] = self.report(update)
                except DomainError as exc:
                    outcomes[index] = exc
        stored: list[Stored] = [
            (index, self._known(update) if isinstance(update, End) else update)
            for index, update in enumerate(updates)
            if isinstance(update, NewRun | Start | End | LogAppend)
        ]
        for index, outcome in (await self._store(stored)).items():
            outcomes[index] = outcome
        return outcomes

    async def create(self, new: NewRun) -> Created:
        return await self._alone(new, Created)

    async def end(self, end: End) -> Ended:
        """Ends a run in a transaction of its own: the run, and its retry if one was created."""
        return await self._alone(self._known(end), Ended)

    async def append_log(self, append: LogAppend) -> Appended:
        """Lines for a run's log in a transaction of their own (NOT_FOUND when the run is gone)."""
        return await self._alone(append, Appended)

    async def start(self, start: Start) -> Started:
        """pending -> running on an executor (or, with `adopt`, a running run taken over)."""
        return await self._alone(start, Started)

    async def _alone(self, item: NewRun | Start | KnownEnd | LogAppend, answer: type[T]) -> T:
        """One update in a transaction of its own: its outcome, or its error raised."""
        outcome = (await self._store([(0, item)]))[0]
        if isinstance(outcome, DomainError):
            raise outcome
        assert isinstance(outcome, answer)
        return outcome

    async def end_many(self, ends: Sequence[End]) -> list[Outcome]:
        """Ends runs together (the reaper): one outcome per end."""
        outcomes = await self._store([(index, self._known(end)) for index, end in enumerate(ends)])
        return [outcomes[index] for index in range(len(ends))]

    def report(self, report: Report) -> Reported:
        """Progress or a heartbeat: memory only (the ProgressBuffer writes it later, batched)."""
        run = self._app.progress.report(report.execution_id, report.attempt, report.result)
        return Reported(terminate_requested=run.terminate_requested)

    async def requeue(self, execution_id: int, attempt: int) -> None:
        """running -> pending: the executor had no room."""
        await to_the_end(self._requeue_and_forget(execution_id, attempt))

    async def _requeue_and_forget(self, execution_id: int, attempt: int) -> None:
        execution, attempt_now = await asyncio.to_thread(self._requeue, execution_id, attempt)
        self._app.progress.forget(execution_id)
        self._app.events.publish_execution(execution, attempt_now)

    def _requeue(self, execution_id: int, attempt: int) -> tuple[task_pb2.Execution, int]:
        with self._app.db.session() as session:
            row = store.requeue_execution(session, execution_id, attempt)
            name = self._app.task_names.get(session, row.task_id)
        return execution_to_proto(row, name), row.attempt

    async def active(self, limit: int, after_id: int = 0) -> list[task_pb2.Execution]:
        """A page of the live runs, oldest first (after `after_id`)."""
        return await asyncio.to_thread(self._active, limit, after_id)

    def _active(self, limit: int, after_id: int) -> list[task_pb2.Execution]:
        with self._app.db.session() as session:
            rows = run_history.active_executions(session, limit, after_id)
            return [execution_to_proto(row) for row in rows]

    def _known(self, end: End) -> KnownEnd:
        """The end with the live run's start time (this attempt's, when tracked here), its task's
        name, and its result merged over the live progress: the one conversion to a dict."""
        live = self._app.progress.get(end.execution_id)
        result = struct_pb2.Struct()
        started: datetime | None = None
        if live is not None:
            result.CopyFrom(live.snapshot.result)
            if live.attempt == end.attempt and live.snapshot.HasField("start_time"):
                started = from_timestamp(live.snapshot.start_time)
        for key, value in end.result.fields.items():
            result.fields[key].CopyFrom(value)
        run_end = run_ends.RunEnd(
            end.execution_id, end.attempt, end.status, struct_to_dict(result), end.error_message, started
        )
        return KnownEnd(run_end, live.snapshot.task_name if live is not None else None)

    # ---- storing: shared transaction, fallback, hand-off ------------------------------------

    async def _store(self, stored: list[Stored]) -> dict[int, Outcome]:
        if not stored:
            return {}
        # Shielded: a caller that goes away (a scheduler stepping down, a cancelled RecordRuns) cannot
        # stop a commit already under way in the thread, so it must not stop what follows it either.
        # Without the after-commit work a run created claimed would be stored `running` but never
        # tracked, and the lease reaper (which reaps tracked runs) would never end it.
        return await to_the_end(self._store_and_publish(stored))

    async def _store_and_publish(self, stored: list[Stored]) -> dict[int, Outcome]:
        outcomes, after = await asyncio.to_thread(self._store_batch, stored)
        _run_all(after)
        return outcomes

    def _store_batch(self, stored: list[Stored]) -> tuple[dict[int, Outcome], AfterCommit]:
        """Together, or each alone when anything failed. In a worker thread: what to do after the
        commit is returned, not run."""
        try:
            return self._transaction.store(stored)
        except Poisoned:
            outcomes: dict[int, Outcome] = {}
            after: AfterCommit = []
            for item in stored:
                try:
                    alone, done = self._transaction.store([item])
                except Poisoned as exc:
                    outcomes[item[0]] = _as_domain_error(exc.error)
                    continue
                outcomes.update(alone)
                after += done
            return outcomes, after

    def _calendars_synced(self, names: list[str]) -> None:
        """After a sync's end committed (on the event loop): its calendars are read again and the
        tasks using them re-sent to the scheduler, in a worker thread, like an admin's change."""
        task = asyncio.get_running_loop().create_task(self._resend_calendar_tasks(names))
        self._storing.add(task)
        task.add_done_callback(self._storing.discard)

    async def _resend_calendar_tasks(self, names: list[str]) -> None:
        def read() -> list[internal_pb2.WatchSchedulerEventsResponse]:
            now = self._app.clock()
            with self._app.db.session() as session:
                calendars.DEFINITIONS.reload(session)
                return [task_event(row, now) for row in calendars.tasks_using(session, names)]

        try:
            events = await asyncio.to_thread(read)
        except Exception:  # the data is stored: the next snapshot or change sends it
            log.exception("could not re-send the tasks of synced calendars", extra={"calendars": names})
            return
        log.info("trading calendar data synced", extra={"calendars": names, "tasks": len(events)})
        for event in events:
            self._app.events.publish_scheduler(event)

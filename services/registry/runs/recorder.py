"""RunRecorder: creates, starts, reports and ends of runs (the design is in the package docstring)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from google.protobuf import struct_pb2
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from services.common.errors import DomainError, InvalidArgument, Reason
from services.common.log_lines import LogStream, log_lines
from services.common.metrics import RETRIES, RUNS_FINISHED
from services.common.structs import struct_to_dict
from services.common.vocabulary import DRAIN_INTERRUPTED_MESSAGE, ExecutionStatus
from services.registry.app import RegistryApp
from services.registry.convert import execution_to_proto, from_timestamp, scheduling_task_to_proto, task_event
from services.registry.models import ExecutionRow, TaskRow
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
from services.registry.store import alerts, calendars, logs, run_history
from services.registry.store import executions as store
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

log = logging.getLogger(__name__)

MAX_RECORD_UPDATES = 1000
# What a state change does once its transaction committed (watchers, feeds, live tracking).
AfterCommit = list[Callable[[], None]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _KnownEnd:
    """An end with what the live run knows about it, read on the event loop before storing."""

    end: store.RunEnd
    task_name: str | None


# A create, a claim, an end or log lines on their way to the database, with their index in the
# caller's batch.
_Stored = tuple[int, NewRun | Start | _KnownEnd | LogAppend]


class _Poisoned(Exception):
    """A statement failed inside the shared transaction: it is rolled back, each update goes alone."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


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
        # Stores under way whose caller may have gone: held here so they are not garbage collected.
        self._storing: set[asyncio.Future[Any]] = set()

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
        stored: list[_Stored] = [
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

    async def _alone(self, item: NewRun | Start | _KnownEnd | LogAppend, answer: type[T]) -> T:
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
        await self._to_the_end(self._requeue_and_forget(execution_id, attempt))

    async def _requeue_and_forget(self, execution_id: int, attempt: int) -> None:
        execution, attempt_now = await asyncio.to_thread(self._requeue, execution_id, attempt)
        self._app.progress.forget(execution_id)
        self._app.events.publish_execution(execution, attempt_now)

    def _requeue(self, execution_id: int, attempt: int) -> tuple[task_pb2.Execution, int]:
        with self._app.db.session() as session:
            row = store.requeue_execution(session, execution_id, attempt)
            name = self._app.task_names.get(session, row.task_id)
        return execution_to_proto(row, name), row.attempt

    async def active(self, limit: int) -> list[task_pb2.Execution]:
        return await asyncio.to_thread(self._active, limit)

    def _active(self, limit: int) -> list[task_pb2.Execution]:
        with self._app.db.session() as session:
            return [execution_to_proto(row) for row in run_history.active_executions(session, limit)]

    def _known(self, end: End) -> _KnownEnd:
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
        run_end = store.RunEnd(
            end.execution_id, end.attempt, end.status, struct_to_dict(result), end.error_message, started
        )
        return _KnownEnd(run_end, live.snapshot.task_name if live is not None else None)

    # ---- storing: shared transaction, fallback, hand-off ------------------------------------

    async def _store(self, stored: list[_Stored]) -> dict[int, Outcome]:
        if not stored:
            return {}
        # Shielded: a caller that goes away (a scheduler stepping down, a cancelled RecordRuns) cannot
        # stop a commit already under way in the thread, so it must not stop what follows it either.
        # Without the after-commit work a run created claimed would be stored `running` but never
        # tracked, and the lease reaper (which reaps tracked runs) would never end it.
        return await self._to_the_end(self._store_and_publish(stored))

    async def _to_the_end(self, work: Coroutine[Any, Any, T]) -> T:
        """Runs `work` to its end even when the caller is cancelled meanwhile."""
        task = asyncio.ensure_future(work)
        self._storing.add(task)
        task.add_done_callback(self._storing.discard)
        return await asyncio.shield(task)

    async def _store_and_publish(self, stored: list[_Stored]) -> dict[int, Outcome]:
        outcomes, after = await asyncio.to_thread(self._store_batch, stored)
        _run_all(after)
        return outcomes

    def _store_batch(self, stored: list[_Stored]) -> tuple[dict[int, Outcome], AfterCommit]:
        """Together, or each alone when anything failed. In a worker thread: what to do after the
        commit is returned, not run."""
        try:
            return self._store_together(stored)
        except _Poisoned:
            outcomes: dict[int, Outcome] = {}
            after: AfterCommit = []
            for item in stored:
                try:
                    alone, done = self._store_together([item])
                except _Poisoned as exc:
                    outcomes[item[0]] = _as_domain_error(exc.error)
                    continue
                outcomes.update(alone)
                after += done
            return outcomes, after

    def _store_together(self, stored: list[_Stored]) -> tuple[dict[int, Outcome], AfterCommit]:
        after: AfterCommit = []
        outcomes: dict[int, Outcome] = {}
        creates: list[tuple[int, NewRun, dict[str, Any]]] = []
        known_starts: list[tuple[int, _KnownEnd]] = []
        claims = [(index, item) for index, item in stored if isinstance(item, Start)]
        appends = [(index, item) for index, item in stored if isinstance(item, LogAppend)]
        # Appends pick their offset from the log's end: on SQLite the transaction takes the write lock
        # before that read (PostgreSQL locks the run's row; see store.logs).
        with self._app.db.session(serialized=bool(appends)) as session:
            now = self._app.clock()
            # Logs first: an end committed with them never shows a run ended with its last lines missing.
            if appends:
                outcomes.update(self._append(session, appends, after))
            for index, item in stored:
                if isinstance(item, LogAppend | Start):
                    continue
                if isinstance(item, _KnownEnd):
                    if item.end.started is not None:
                        known_starts.append((index, item))
                    else:
                        ended = _guarded(functools.partial(self._end, session, [item], now, after))
                        outcomes[index] = ended if isinstance(ended, DomainError) else ended[0]
                    continue
                try:
                    values = self._new_row(item, now)
                except DomainError as exc:
                    outcomes[index] = exc
                    continue
                creates.append((index, item, values))
            keyed = [create for create in creates if create[2]["dedup_key"] is not None]
            batched = len(keyed) > 1
            if batched:  # one statement for all
                outcomes.update(self._create_many(session, keyed, after))
            for index, item, values in creates:
                if not (batched and values["dedup_key"] is not None):
                    # One statement each: a single create's missing task is its own NotFound.
                    outcomes[index] = _guarded(functools.partial(self._create, session, item, values, after))
            if claims:
                outcomes.update(self._claim(session, claims, now, after))
            if known_starts:
                # One statement for all; if one of them ended elsewhere, every update goes alone.
                together = _guarded(
                    functools.partial(self._end, session, [item for _, item in known_starts], now, after)
                )
                if isinstance(together, DomainError):
                    raise _Poisoned(together)
                outcomes.update((index, run) for (index, _), run in zip(known_starts, together, strict=True))
        return outcomes, after

    def _append(
        self, session: Session, appends: list[tuple[int, LogAppend]], after: AfterCommit
    ) -> dict[int, Outcome]:
        """Every append of the batch, together (see store.logs.append_logs)."""
        try:
            ends = logs.append_logs(session, [(append.execution_id, append.data) for _, append in appends])
        except DBAPIError as exc:
            raise _Poisoned(exc) from exc
        outcomes: dict[int, Outcome] = {}
        for (index, _), end in zip(appends, ends, strict=True):
            outcomes[index] = end if isinstance(end, DomainError) else Appended(end)
        grown = {append.execution_id for index, append in appends if isinstance(outcomes[index], Appended)}
        for execution_id in grown:
            after.append(functools.partial(self._app.events.log_appended, execution_id))
        return outcomes

    def _claim(
        self, session: Session, claims: list[tuple[int, Start]], now: datetime, after: AfterCommit
    ) -> dict[int, Outcome]:
        """Claims made together: one statement per executor (a burst's runs start in a few commits),
        then their tasks as they are now, read in one."""
        groups: defaultdict[tuple[str, float, bool], list[tuple[int, Start]]] = defaultdict(list)
        for index, start in claims:
            groups[(start.executor, start.lease_seconds, start.adopt)].append((index, start))
        answers: dict[int, ExecutionRow | DomainError] = {}
        for (executor, lease_seconds, adopt), group in groups.items():
            lease = timedelta(seconds=lease_seconds or self._app.settings.lease_seconds)
            claim = store.Claim(executor, now + lease)
            try:
                rows = store.claim_executions(
                    session, [start.execution_id for _, start in group], claim, now, adopt
                )
            except DBAPIError as exc:
                raise _Poisoned(exc) from exc
            answers.update(zip((index for index, _ in group), rows, strict=True))
        task_ids = {row.task_id for row in answers.values() if isinstance(row, ExecutionRow)}
        tasks = {
            row.id: scheduling_task_to_proto(row)
            for row in session.scalars(select(TaskRow).where(TaskRow.id.in_(task_ids)))
        }
        outcomes: dict[int, Outcome] = {}
        for index, answer in answers.items():
            if isinstance(answer, DomainError):
                outcomes[index] = answer
                continue
            task = tasks[answer.task_id]  # the foreign key
            started = Started(execution_to_proto(answer, task.name), answer.attempt, task)
            # Tracked even when the caller went away: a claimed run the reaper does not know stays running.
            after.append(functools.partial(self._publish_start, started))
            outcomes[index] = started
        return outcomes

    def _publish_start(self, started: Started) -> None:
        self._app.progress.track(started.execution, started.attempt)
        self._app.events.publish_execution(started.execution, started.attempt)

    def _new_row(self, new: NewRun, now: datetime) -> dict[str, Any]:
        start = None
        if new.executor:
            lease = new.lease_seconds or self._app.settings.lease_seconds
            start = store.Claim(new.executor, now + timedelta(seconds=lease))
        return store.execution_values(new.execution, now, start)

    def _create(self, session: Session, new: NewRun, values: dict[str, Any], after: AfterCommit) -> Created:
        row, created = store.insert_execution(session, values)
        if not created:
            return Created(execution_to_proto(row), created=False)
        alerts.enqueue_skipped(session, [row], row.created_at)
        name = self._app.task_names.get(session, row.task_id) if new.executor else ""
        return self._created(row, bool(new.executor), name, after)

    def _create_many(
        self, session: Session, creates: list[tuple[int, NewRun, dict[str, Any]]], after: AfterCommit
    ) -> dict[int, Outcome]:
        if not creates:
            return {}
        try:
            inserted = store.create_executions(session, [values for *_, values in creates])
        except DBAPIError as exc:  # a task deleted meanwhile
            raise _Poisoned(exc) from exc
        skipped = [row for row in inserted.values() if row.status == ExecutionStatus.SKIPPED]
        if skipped:  # their alerts commit with them
            alerts.enqueue_skipped(session, skipped, skipped[0].created_at)
        names = self._app.task_names.get_many(
            session, {new.execution.task_id for _, new, _ in creates if new.executor}
        )
        outcomes: dict[int, Outcome] = {}
        for index, new, values in creates:
            # Popped: a key twice in one call makes one run, the second update finds it existing.
            row = inserted.pop(values["dedup_key"], None)
            if row is None:
                existing = store.existing_execution(session, values["dedup_key"])
                outcomes[index] = Created(execution_to_proto(existing), created=False)
            else:
                outcomes[index] = self._created(row, bool(new.executor), names.get(row.task_id, ""), after)
        return outcomes

    def _created(self, row: ExecutionRow, started: bool, name: str, after: AfterCommit) -> Created:
        execution, attempt = execution_to_proto(row, name), row.attempt

        def publish() -> None:
            if started:
                self._app.progress.track(execution, attempt)
            self._app.events.publish_execution(execution, attempt)

        after.append(publish)
        return Created(execution, created=True, attempt=attempt if started else 0)

    def _end(self, session: Session, ends: list[_KnownEnd], now: datetime, after: AfterCommit) -> list[Ended]:
        runs = store.end_runs(session, [known.end for known in ends], now)
        # A trading calendar sync's sessions become its calendar's data with the run's end.
        synced = {name for run in runs if (name := calendars.record_synced(session, run.row, now))}
        if synced:
            after.append(functools.partial(self._calendars_synced, sorted(synced)))
        unnamed = {run.row.task_id for known, run in zip(ends, runs, strict=True) if known.task_name is None}
        names = self._app.task_names.get_many(session, unnamed) if unnamed else {}
        outcomes = []
        for known, run in zip(ends, runs, strict=True):
            name = known.task_name if known.task_name is not None else names.get(run.row.task_id, "")
            execution = execution_to_proto(run.row, name)
            retry = execution_to_proto(run.retry) if run.retry is not None else None
            if run.retry is not None and run.retry.scheduled_time is not None:
                self._log_retry(session, run.row.id, run.retry, now, after)
            after.append(functools.partial(self._publish_end, execution, run.row.attempt, retry))
            outcomes.append(Ended(execution, retry))
        return outcomes

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

    def _log_retry(
        self, session: Session, execution_id: int, retry: ExecutionRow, now: datetime, after: AfterCommit
    ) -> None:
        """The failed run's log says when its retry runs."""
        assert retry.scheduled_time is not None
        due = retry.scheduled_time.isoformat(timespec="seconds")
        text = f"已安排第 {retry.retry_count} 次重试：{due}，执行记录 {retry.id} (retry {retry.retry_count} scheduled at {due})"
        logs.append_log(session, execution_id, log_lines(LogStream.SYSTEM, text, now))
        after.append(functools.partial(self._app.events.log_appended, execution_id))

    def _publish_end(
        self, execution: task_pb2.Execution, attempt: int, retry: task_pb2.Execution | None
    ) -> None:
        """After a run's end committed: live tracking, watchers, metrics, its retry to the scheduler."""
        self._app.progress.forget(execution.id)
        RUNS_FINISHED.labels(execution.status).inc()
        self._app.events.publish_execution(execution, attempt)
        if retry is not None:
            RETRIES.labels(retry_reason(execution.error_message)).inc()
            self._app.events.publish_scheduler(
                internal_pb2.WatchSchedulerEventsResponse(
                    type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_EXECUTION_READY, execution=retry
                )
            )


def retry_reason(error_message: str) -> str:
    """The `reason` label of a retry: why its run failed, from the run's error message."""
    if error_message == DRAIN_INTERRUPTED_MESSAGE:
        return "handed_back"
    if error_message.startswith(store.LOST_EXECUTOR):
        return "lost_executor"
    # The executor's "执行超时（…）" (the task's timeout) and "命令执行超时（…）" (a command's own).
    if "执行超时" in error_message:
        return "timeout"
    return "failed"


def _guarded(work: Callable[[], T]) -> T | DomainError:
    """`work` inside the shared transaction: its domain error becomes its outcome, unless a failed
    statement caused it (the transaction is then aborted: _Poisoned)."""
    try:
        return work()
    except DomainError as exc:
        if isinstance(exc.__cause__, DBAPIError):
            raise _Poisoned(exc) from exc
        return exc
    except DBAPIError as exc:
        raise _Poisoned(exc) from exc

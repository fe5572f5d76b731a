"""One shared transaction of run updates (the design is in the package docstring): what a batch's
logs, creates, claims and ends do in the database, and what each of them publishes once the
transaction committed. It runs in a worker thread, so the publishing is returned, not run: the
recorder runs it on the event loop after the commit.

When a statement fails inside the transaction (`Poisoned`), the whole of it is rolled back and the
recorder stores each update alone; a refusal that is no failed statement (a run not pending, an
attempt gone stale) is that update's outcome and the others go on (`guarded`).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from services.common.errors import DomainError
from services.common.log_lines import LogStream, log_lines
from services.common.metrics import RETRIES, RUNS_FINISHED
from services.common.vocabulary import DRAIN_INTERRUPTED_MESSAGE, ExecutionStatus
from services.registry.app import RegistryApp
from services.registry.convert import execution_to_proto, scheduling_task_to_proto
from services.registry.models import ExecutionRow, TaskRow
from services.registry.runs.model import (
    Appended,
    Created,
    Ended,
    LogAppend,
    NewRun,
    Outcome,
    Start,
    Started,
)
from services.registry.store import alerts, calendars, logs, run_ends
from services.registry.store import executions as store
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

# What a state change does once its transaction committed (watchers, feeds, live tracking).
AfterCommit = list[Callable[[], None]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KnownEnd:
    """An end with what the live run knows about it, read on the event loop before storing."""

    end: run_ends.RunEnd
    task_name: str | None


# A create, a claim, an end or log lines on their way to the database, with their index in the
# caller's batch.
Stored = tuple[int, NewRun | Start | KnownEnd | LogAppend]


class Poisoned(Exception):
    """A statement failed inside the shared transaction: it is rolled back, each update goes alone."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class RunTransaction:
    def __init__(self, app: RegistryApp, calendars_synced: Callable[[list[str]], None]) -> None:
        self._app = app
        # After a trading calendar sync's end committed: its calendars' tasks go to the scheduler again.
        self._calendars_synced = calendars_synced

    def store(self, stored: list[Stored]) -> tuple[dict[int, Outcome], AfterCommit]:
        after: AfterCommit = []
        outcomes: dict[int, Outcome] = {}
        creates: list[tuple[int, NewRun, dict[str, Any]]] = []
        known_starts: list[tuple[int, KnownEnd]] = []
        claims = [(index, item) for index, item in stored if isinstance(item, Start)]
        appends = [(index, item) for index, item in stored if isinstance(item, LogAppend)]
        # Appends pick their offset from the log's end: on SQLite the transaction takes the write lock
        # before that read (PostgreSQL locks the run's row; see store.logs).
        db = self._app.db
        with db.write_turns.turn(), db.session(serialized=bool(appends)) as session:
            now = self._app.clock()
            # Logs first: an end committed with them never shows a run ended with its last lines missing.
            if appends:
                outcomes.update(self._append(session, appends, after))
            for index, item in stored:
                if isinstance(item, LogAppend | Start):
                    continue
                if isinstance(item, KnownEnd):
                    if item.end.started is not None:
                        known_starts.append((index, item))
                    else:
                        ended = guarded(functools.partial(self._end, session, [item], now, after))
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
                    outcomes[index] = guarded(functools.partial(self._create, session, item, values, after))
            if claims:
                outcomes.update(self._claim(session, claims, now, after))
            if known_starts:
                # One statement for all; if one of them ended elsewhere, every update goes alone.
                together = guarded(
                    functools.partial(self._end, session, [item for _, item in known_starts], now, after)
                )
                if isinstance(together, DomainError):
                    raise Poisoned(together)
                outcomes.update((index, run) for (index, _), run in zip(known_starts, together, strict=True))
        return outcomes, after

    def _append(
        self, session: Session, appends: list[tuple[int, LogAppend]], after: AfterCommit
    ) -> dict[int, Outcome]:
        """Every append of the batch, together (see store.logs.append_logs)."""
        try:
            ends = logs.append_logs(session, [(append.execution_id, append.data) for _, append in appends])
        except DBAPIError as exc:
            raise Poisoned(exc) from exc
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
            claim = store.Claim(executor, now + self._app.settings.lease(lease_seconds))
            try:
                rows = store.claim_executions(
                    session, [start.execution_id for _, start in group], claim, now, adopt
                )
            except DBAPIError as exc:
                raise Poisoned(exc) from exc
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
            start = store.Claim(new.executor, now + self._app.settings.lease(new.lease_seconds))
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
            raise Poisoned(exc) from exc
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

    def _end(self, session: Session, ends: list[KnownEnd], now: datetime, after: AfterCommit) -> list[Ended]:
        runs = run_ends.end_runs(session, [known.end for known in ends], now)
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


def guarded(work: Callable[[], T]) -> T | DomainError:
    """`work` inside the shared transaction: its domain error becomes its outcome, unless a failed
    statement caused it (the transaction is then aborted: Poisoned)."""
    try:
        return work()
    except DomainError as exc:
        if isinstance(exc.__cause__, DBAPIError):
            raise Poisoned(exc) from exc
        return exc
    except DBAPIError as exc:
        raise Poisoned(exc) from exc

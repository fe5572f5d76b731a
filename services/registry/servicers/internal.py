"""RegistryInternalService: the scheduler's change feed and every state change of a run."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from services.common.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound
from services.common.metrics import RUNS_FINISHED
from services.common.server import current_principal
from services.common.structs import dict_to_struct, struct_to_dict
from services.registry.app import RegistryApp
from services.registry.convert import (
    execution_to_proto,
    from_timestamp,
    task_event,
    task_to_proto,
    to_timestamp,
)
from services.registry.events import RESUBSCRIBE
from services.registry.models import ExecutionRow, TaskRow
from services.registry.progress import LiveRun
from services.registry.store import executions as store
from services.registry.store import leadership
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2
from zquant.scheduler.v1 import task_pb2

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
FEED_HEARTBEAT_SECONDS = 5.0
MAX_RECORD_UPDATES = 1000
# RecordRuns batches with at least this many creates and ends are stored off the event loop.
THREADED_BATCH = 8
# What a state change does once its transaction committed (watchers, feeds, live tracking).
AfterCommit = list[Callable[[], None]]
T = TypeVar("T")


class _Poisoned(Exception):
    """An update's statement failed inside a shared transaction."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _run_all(after: AfterCommit) -> None:
    for action in after:
        action()


def _error_result(exc: Exception) -> pb2.RunUpdateResult:
    if isinstance(exc, DomainError):
        return pb2.RunUpdateResult(code=exc.code.value[0], message=exc.message)
    log.error("a run update failed", exc_info=exc)
    return pb2.RunUpdateResult(code=grpc.StatusCode.INTERNAL.value[0], message="内部错误")


def _require_service() -> None:
    if not current_principal().is_service:
        raise FailedPrecondition("内部接口只接受服务令牌")


class InternalServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def WatchSchedulerEvents(
        self, request: pb2.WatchSchedulerEventsRequest, context: Context
    ) -> AsyncIterator[pb2.WatchSchedulerEventsResponse]:
        _require_service()
        with self._app.events.scheduler_feed() as feed:
            now = self._app.clock()
            with self._app.db.session() as session:
                rows = list(session.scalars(select(TaskRow).order_by(TaskRow.id)))
                last_planned = store.last_scheduled_times(session)
            # Each task with its interval anchor and newest recorded planned time, for catch-up.
            for row in rows:
                yield task_event(row, now, last_planned.get(row.id))
            yield pb2.WatchSchedulerEventsResponse(event_type="snapshot_done")
            while True:
                try:
                    event = await asyncio.wait_for(feed.get(), timeout=FEED_HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield pb2.WatchSchedulerEventsResponse(event_type="heartbeat")
                    continue
                if event is RESUBSCRIBE:
                    log.info("ending a scheduler feed that may have missed events; it subscribes again")
                    return
                yield event

    async def CreateExecution(
        self, request: pb2.CreateExecutionRequest, context: Context
    ) -> pb2.CreateExecutionResponse:
        _require_service()
        return self._committed(lambda session, now, after: self._create(session, request, now, after))

    def _committed(self, work: Callable[[Session, datetime, AfterCommit], T]) -> T:
        """`work` in a transaction of its own; what it left to do after the commit runs then."""
        after: AfterCommit = []
        with self._app.db.session() as session:
            value = work(session, self._app.clock(), after)
        _run_all(after)
        return value

    async def RecordRuns(self, request: pb2.RecordRunsRequest, context: Context) -> pb2.RecordRunsResponse:
        _require_service()
        if len(request.updates) > MAX_RECORD_UPDATES:
            raise InvalidArgument(f"一次最多记录 {MAX_RECORD_UPDATES} 条更新")
        results = [pb2.RunUpdateResult()] * len(request.updates)
        stored: list[tuple[int, pb2.RunUpdate]] = []
        for index, update in enumerate(request.updates):
            if update.WhichOneof("update") == "progress":
                # Memory only: applied here on the event loop, before the ends that follow it.
                try:
                    results[index] = pb2.RunUpdateResult(progress=self._report(update.progress))
                except DomainError as exc:
                    results[index] = _error_result(exc)
            else:
                stored.append((index, update))
        if stored:
            # A large batch goes to a worker thread, so the event loop serves other calls while the
            # database works on it; a small one costs less than the hand-over (measured: the
            # thread's contention makes a lightly loaded scheduler's fires later).
            if len(stored) >= THREADED_BATCH:
                answers, after = await asyncio.to_thread(self._store, stored)
            else:
                answers, after = self._store(stored)
            for index, result in answers:
                results[index] = result
            _run_all(after)
        return pb2.RecordRunsResponse(results=results)

    def _store(
        self, updates: list[tuple[int, pb2.RunUpdate]]
    ) -> tuple[list[tuple[int, pb2.RunUpdateResult]], AfterCommit]:
        """Creates and ends in one transaction, or, when a statement failed (which aborts a
        PostgreSQL transaction: a task deleted meanwhile, a run that ended elsewhere), each in a
        transaction of its own, so the others still land and the failing one gets its own error.
        Returns the results and what to do on the event loop now that they are committed."""
        try:
            return self._store_together(updates)
        except _Poisoned:
            answers, after = [], []
            for index, update in updates:
                result, done = self._store_alone(update)
                answers.append((index, result))
                after += done
            return answers, after

    def _store_together(
        self, updates: list[tuple[int, pb2.RunUpdate]]
    ) -> tuple[list[tuple[int, pb2.RunUpdateResult]], AfterCommit]:
        """The scheduler's creates and its runs' successes each go as one statement for all."""
        after: AfterCommit = []
        answers: list[tuple[int, pb2.RunUpdateResult]] = []
        creates: list[tuple[int, pb2.CreateExecutionRequest, dict[str, Any]]] = []
        successes: list[tuple[int, pb2.FinishExecutionRequest, LiveRun]] = []
        with self._app.db.session() as session:
            now = self._app.clock()
            for index, update in updates:
                kind = update.WhichOneof("update")
                if kind == "create" and update.create.dedup_key:
                    try:
                        creates.append((index, update.create, self._new_row(update.create, now)))
                    except DomainError as exc:
                        answers.append((index, _error_result(exc)))
                elif kind == "finish" and (live := self._plain_success(update.finish)) is not None:
                    successes.append((index, update.finish, live))
                else:
                    answers.append((index, self._apply(session, update, now, after)))
            for index, created in self._create_many(session, creates, now, after):
                answers.append((index, pb2.RunUpdateResult(create=created)))
            for index, finished in self._succeed_many(session, successes, now, after):
                answers.append((index, pb2.RunUpdateResult(finish=finished)))
        return answers, after

    def _store_alone(self, update: pb2.RunUpdate) -> tuple[pb2.RunUpdateResult, AfterCommit]:
        """In a worker thread too: what to do after the commit is returned, not run."""
        after: AfterCommit = []
        try:
            with self._app.db.session() as session:
                result = self._apply(session, update, self._app.clock(), after)
        except _Poisoned as exc:
            return _error_result(exc.error), []
        return result, after

    def _apply(
        self, session: Session, update: pb2.RunUpdate, now: datetime, after: AfterCommit
    ) -> pb2.RunUpdateResult:
        """A create or an end of a RecordRuns call; its domain error becomes its result."""
        try:
            kind = update.WhichOneof("update")
            if kind == "create":
                return pb2.RunUpdateResult(create=self._create(session, update.create, now, after))
            if kind == "finish":
                execution, retry = self._finish(session, self._run_end(update.finish), now, after)
                return pb2.RunUpdateResult(
                    finish=pb2.FinishExecutionResponse(execution=execution, retry=retry)
                )
            raise InvalidArgument("更新内容为空")
        except DomainError as exc:
            if isinstance(exc.__cause__, DBAPIError):
                raise _Poisoned(exc) from exc
            return _error_result(exc)
        except DBAPIError as exc:
            raise _Poisoned(exc) from exc

    def _new_row(self, request: pb2.CreateExecutionRequest, now: datetime) -> dict[str, Any]:
        start = None
        if request.start_executor:
            lease = request.lease_seconds or self._app.settings.lease_seconds
            start = store.Claim(request.start_executor, now + timedelta(seconds=lease))
        new = store.NewExecution(
            task_id=request.task_id,
            trigger=request.trigger,
            scheduled_time=from_timestamp(request.scheduled_time)
            if request.HasField("scheduled_time")
            else None,
            status=request.status or "pending",
            error_message=request.error_message,
            parent_execution_id=request.parent_execution_id,
            retry_count=request.retry_count,
            dedup_key=request.dedup_key,
        )
        return store.execution_values(new, now, start)

    def _create(
        self, session: Session, request: pb2.CreateExecutionRequest, now: datetime, after: AfterCommit
    ) -> pb2.CreateExecutionResponse:
        values = self._new_row(request, now)
        row, created = store.insert_execution(session, values)
        if not created:
            return pb2.CreateExecutionResponse(execution=execution_to_proto(row), created=False)
        name = self._app.task_names.get(session, row.task_id) if request.start_executor else ""
        return self._created(row, bool(request.start_executor), name, after)

    def _create_many(
        self,
        session: Session,
        creates: list[tuple[int, pb2.CreateExecutionRequest, dict[str, Any]]],
        now: datetime,
        after: AfterCommit,
    ) -> list[tuple[int, pb2.CreateExecutionResponse]]:
        if not creates:
            return []
        try:
            inserted = store.create_executions(session, [values for _, _, values in creates])
        except DBAPIError as exc:  # a task deleted meanwhile
            raise _Poisoned(exc) from exc
        names = self._app.task_names.get_many(
            session, {request.task_id for _, request, _ in creates if request.start_executor}
        )
        responses = []
        for index, request, values in creates:
            # Popped: a key twice in one call makes one run, the second update finds it existing.
            row = inserted.pop(values["dedup_key"], None)
            if row is None:
                existing = store.existing_execution(session, values["dedup_key"])
                responses.append(
                    (
                        index,
                        pb2.CreateExecutionResponse(execution=execution_to_proto(existing), created=False),
                    )
                )
                continue
            name = names.get(row.task_id, "")
            responses.append((index, self._created(row, bool(request.start_executor), name, after)))
        return responses

    def _created(
        self, row: ExecutionRow, started: bool, name: str, after: AfterCommit
    ) -> pb2.CreateExecutionResponse:
        execution, attempt = execution_to_proto(row, name), row.attempt

        def publish() -> None:
            if started:
                self._app.progress.track(execution, attempt)
            self._app.events.publish_execution(execution, attempt)

        after.append(publish)
        return pb2.CreateExecutionResponse(
            execution=execution, created=True, attempt=attempt if started else 0
        )

    async def StartExecution(
        self, request: pb2.StartExecutionRequest, context: Context
    ) -> pb2.StartExecutionResponse:
        _require_service()
        now = self._app.clock()
        lease = request.lease_seconds or self._app.settings.lease_seconds
        claim = store.Claim(request.executor, now + timedelta(seconds=lease))
        with self._app.db.session() as session:
            row = store.claim_execution(session, request.execution_id, claim, now, adopt=request.adopt)
            task_row = session.get(TaskRow, row.task_id)
            assert task_row is not None
            task = task_to_proto(task_row, now)
        execution = execution_to_proto(row, task.name)
        self._app.progress.track(execution, row.attempt)
        self._app.events.publish_execution(execution, row.attempt)
        return pb2.StartExecutionResponse(execution=execution, attempt=row.attempt, task=task)

    async def RequeueExecution(
        self, request: pb2.RequeueExecutionRequest, context: Context
    ) -> pb2.RequeueExecutionResponse:
        _require_service()
        with self._app.db.session() as session:
            row = store.requeue_execution(session, request.execution_id, request.attempt)
            names = store.task_names(session, {row.task_id})
        self._app.progress.forget(request.execution_id)
        self._app.events.publish_execution(execution_to_proto(row, names.get(row.task_id, "")), row.attempt)
        return pb2.RequeueExecutionResponse()

    async def ReportProgress(
        self, request: pb2.ReportProgressRequest, context: Context
    ) -> pb2.ReportProgressResponse:
        _require_service()
        return self._report(request)

    def _report(self, request: pb2.ReportProgressRequest) -> pb2.ReportProgressResponse:
        result = struct_to_dict(request.result) if request.HasField("result") else None
        run = self._app.progress.report(request.execution_id, request.attempt, result)
        return pb2.ReportProgressResponse(terminate_requested=run.terminate_requested)

    async def FinishExecution(
        self, request: pb2.FinishExecutionRequest, context: Context
    ) -> pb2.FinishExecutionResponse:
        _require_service()
        execution, retry = self.finish_run(self._run_end(request))
        return pb2.FinishExecutionResponse(execution=execution, retry=retry)

    def _run_end(self, request: pb2.FinishExecutionRequest) -> store.RunEnd:
        """The request's end of a run, its final result merged over the live progress."""
        live = self._app.progress.get(request.execution_id)
        result = {**(live.result if live else {}), **struct_to_dict(request.result)}
        return store.RunEnd(
            request.execution_id, request.attempt, request.status, result, request.error_message
        )

    def finish_run(self, end: store.RunEnd) -> tuple[task_pb2.Execution, task_pb2.Execution | None]:
        """Ends a run in a transaction of its own: (the run, its retry if one was created)."""
        return self._committed(lambda session, now, after: self._finish(session, end, now, after))

    def _finish(
        self, session: Session, end: store.RunEnd, now: datetime, after: AfterCommit
    ) -> tuple[task_pb2.Execution, task_pb2.Execution | None]:
        live = self._app.progress.get(end.execution_id)
        finished = None
        if (started := self._live_start(end.execution_id, end.attempt)) is not None:
            # The live run holds the start time and the whole result: one statement.
            finished = store.finish_running(session, end, started, now)
        row, retry_row = finished or store.finish_execution(session, end, now)
        # The live run already knows its task's name; ask the database only when it does not.
        name = live.snapshot.task_name if live else self._app.task_names.get(session, row.task_id)
        execution = execution_to_proto(row, name)
        retry = execution_to_proto(retry_row) if retry_row is not None else None
        after.append(functools.partial(self._ended, execution, row.attempt, retry))
        return execution, retry

    def _live_start(self, execution_id: int, attempt: int) -> datetime | None:
        """When the live run of this attempt started; None when this replica does not track it."""
        live = self._app.progress.get(execution_id)
        if live is None or live.attempt != attempt or not live.snapshot.HasField("start_time"):
            return None
        return live.snapshot.start_time.ToDatetime(tzinfo=UTC)

    def _plain_success(self, request: pb2.FinishExecutionRequest) -> LiveRun | None:
        """The live run when this finish is a plain success of the attempt it tracks (no retry to
        create, start time and result at hand): such finishes go together in one statement."""
        if request.status != "success" or self._live_start(request.execution_id, request.attempt) is None:
            return None
        return self._app.progress.get(request.execution_id)

    def _succeed_many(
        self,
        session: Session,
        successes: list[tuple[int, pb2.FinishExecutionRequest, LiveRun]],
        now: datetime,
        after: AfterCommit,
    ) -> list[tuple[int, pb2.FinishExecutionResponse]]:
        if not successes:
            return []
        ended = []
        for index, request, live in successes:
            end = self._run_end(request)
            execution = task_pb2.Execution()
            execution.CopyFrom(live.snapshot)
            started = execution.start_time.ToDatetime(tzinfo=UTC)
            execution.status = end.status
            execution.end_time.FromDatetime(now)
            execution.duration_seconds = store.duration(started, now)
            execution.result.CopyFrom(dict_to_struct(end.result))
            execution.error_message = end.error_message
            ended.append((index, execution, end.attempt, store.finish_params(end, started, now)))
        if not store.finish_many(session, [params for *_, params in ended]):
            # Some run is no longer that attempt running (reaped, ended elsewhere).
            raise _Poisoned(FailedPrecondition("执行记录已结束或尝试已失效"))
        responses = []
        for index, execution, attempt, _ in ended:
            after.append(functools.partial(self._ended, execution, attempt, None))
            responses.append((index, pb2.FinishExecutionResponse(execution=execution)))
        return responses

    def _ended(self, execution: task_pb2.Execution, attempt: int, retry: task_pb2.Execution | None) -> None:
        """After a run's end committed: live tracking, watchers, metrics, its retry to the scheduler."""
        self._app.progress.forget(execution.id)
        RUNS_FINISHED.labels(execution.status).inc()
        self._app.events.publish_execution(execution, attempt)
        if retry is not None:
            self._app.events.publish_scheduler(
                pb2.WatchSchedulerEventsResponse(event_type="execution_ready", execution=retry)
            )

    def reap_silent_runs(self) -> int:
        """Fails runs whose executor stopped reporting (killed, network cut, scheduler gone).

        With replicas every one of them reaps: the first finish wins, the others find the run
        ended (FailedPrecondition) and drop it. A replica that does not hear the others (its
        cluster bus is reconnecting) waits: their reports cannot reach it then.
        """
        cluster = self._app.cluster
        if cluster is not None and not cluster.listening:
            return 0
        reaped = 0
        for run in self._app.progress.silent_runs(self._app.settings.lease_seconds):
            try:
                self.finish_run(
                    store.RunEnd(run.snapshot.id, run.attempt, "failed", run.result, store.LOST_EXECUTOR)
                )
                reaped += 1
            except (FailedPrecondition, NotFound):  # finished elsewhere, or deleted with its task
                self._app.progress.forget(run.snapshot.id)
        return reaped

    async def run_reaper(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                if reaped := self.reap_silent_runs():
                    log.warning("failed %d runs whose executor went silent", reaped)
            except Exception:
                log.exception("reaper failed; will retry")

    async def ListActiveExecutions(
        self, request: pb2.ListActiveExecutionsRequest, context: Context
    ) -> pb2.ListActiveExecutionsResponse:
        _require_service()
        with self._app.db.session() as session:
            rows = store.active_executions(session, request.limit or 1000)
        return pb2.ListActiveExecutionsResponse(executions=[execution_to_proto(row) for row in rows])

    async def AcquireLeadership(
        self, request: pb2.AcquireLeadershipRequest, context: Context
    ) -> pb2.AcquireLeadershipResponse:
        _require_service()
        with self._app.db.session() as session:
            state = leadership.acquire(
                session, request.candidate, request.ttl_seconds or 3, self._app.clock()
            )
        return pb2.AcquireLeadershipResponse(
            leader=state.leader,
            holder=state.holder,
            term=state.term,
            expires_at=to_timestamp(state.expires_at),
        )

    async def ReleaseLeadership(
        self, request: pb2.ReleaseLeadershipRequest, context: Context
    ) -> pb2.ReleaseLeadershipResponse:
        _require_service()
        with self._app.db.session() as session:
            leadership.release(session, request.candidate, self._app.clock())
        return pb2.ReleaseLeadershipResponse()

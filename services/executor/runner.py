"""Active runs: admission (concurrency, duplicates, draining), timeouts, cancellation, event streams."""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections import deque
from collections.abc import AsyncIterator

from services.common.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, Unavailable
from services.executor.jobs import run_job
from services.executor.jobs.context import JobContext, JobFailed
from services.executor.jobs.plugin import PluginRegistry
from services.executor.models import ACCEPTED, HEARTBEAT, RunEvent, RunSpec
from services.executor.settings import ExecutorSettings

log = logging.getLogger(__name__)

TERMINATED_MESSAGE = "任务已被终止"
# A drained run did not fail on its own and nobody terminated it: it fails, so the task's retry
# policy runs it again on another executor.
STOPPING_MESSAGE = "执行器正在停止，任务已中断"
CALLER_GONE_MESSAGE = "调度器已断开连接，任务已被终止"


class ActiveRun:
    """One run: its job task and the events waiting to be streamed."""

    def __init__(self, spec: RunSpec, ctx: JobContext, heartbeat_seconds: float) -> None:
        self.spec = spec
        self.ctx = ctx
        self._heartbeat_seconds = heartbeat_seconds
        self._pending: deque[RunEvent] = deque([ACCEPTED])
        self._wakeup = asyncio.Event()
        self._finished = False
        # Set once a cancel was requested; the reason reported when the job ends cancelled.
        self.cancel_message = ""
        self.cancel_status = "terminated"
        self.task: asyncio.Task[tuple[str, str]] | None = None

    def push(self, event: RunEvent) -> None:
        if self._finished:
            # A sync plugin's thread may still report after the run ended.
            return
        self._finished = event.event_type == "finished"
        # Progress events are whole snapshots: while the caller lags, only the newest one waits.
        if event.event_type == "progress" and self._pending and self._pending[-1].event_type == "progress":
            self._pending[-1] = event
        else:
            self._pending.append(event)
        self._wakeup.set()

    def cancel(self, message: str, grace_seconds: float | None = None, status: str = "terminated") -> bool:
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

    def abandon(self) -> None:
        """The stream ended (normally or because the caller went away): no orphan work."""
        self.cancel(CALLER_GONE_MESSAGE)

    async def events(self) -> AsyncIterator[RunEvent]:
        """accepted, progress..., finished; a heartbeat every heartbeat_seconds in between."""
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time() + self._heartbeat_seconds
        while True:
            while self._pending:
                event = self._pending.popleft()
                yield event
                if event.event_type == "finished":
                    return
            self._wakeup.clear()
            try:
                async with asyncio.timeout_at(next_heartbeat):
                    await self._wakeup.wait()
            except TimeoutError:
                next_heartbeat = loop.time() + self._heartbeat_seconds
                yield HEARTBEAT


class Runner:
    def __init__(
        self,
        settings: ExecutorSettings,
        plugins: PluginRegistry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._plugins = plugins if plugins is not None else PluginRegistry()
        self._rng = rng if rng is not None else random.Random()
        self._active: dict[int, ActiveRun] = {}
        self._draining = False

    @property
    def active_count(self) -> int:
        return len(self._active)

    def start(self, spec: RunSpec) -> ActiveRun:
        """Admits and starts a run, or raises the reason it cannot run here."""
        if spec.execution_id <= 0:
            raise InvalidArgument("execution_id 必须大于 0")
        if self._draining:
            raise Unavailable("执行器正在停止")
        if spec.execution_id in self._active:
            raise FailedPrecondition(f"执行记录 {spec.execution_id} 已在运行")
        if len(self._active) >= self._settings.max_concurrency:
            raise ResourceExhausted(f"执行器繁忙：已有 {len(self._active)} 个任务在运行")
        ctx = JobContext(
            spec=spec,
            work_dir=self._settings.work_dir,
            output_tail_bytes=self._settings.output_tail_bytes,
            kill_grace_seconds=self._settings.kill_grace_seconds,
            rng=self._rng,
            emit=lambda snapshot: run.push(RunEvent("progress", snapshot)),
        )
        run = ActiveRun(spec, ctx, self._settings.heartbeat_seconds)
        run.task = asyncio.create_task(self._execute(run), name=f"execution-{spec.execution_id}")
        # A callback rather than code at the end of _execute: a task cancelled before its first
        # step never runs any of its code, and it must still report and free its slot.
        run.task.add_done_callback(lambda task: self._finish(run, task))
        self._active[spec.execution_id] = run
        log.debug("run started", extra=_log_fields(spec))
        return run

    def cancel(self, execution_id: int, grace_seconds: float | None = None) -> bool:
        run = self._active.get(execution_id)
        return run is not None and run.cancel(TERMINATED_MESSAGE, grace_seconds)

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
                run.cancel(STOPPING_MESSAGE, status="failed")
            await asyncio.wait(pending)

    async def _execute(self, run: ActiveRun) -> tuple[str, str]:
        """Runs the job under the task's timeout; returns (status, error_message)."""
        limit = run.spec.timeout_seconds
        try:
            async with asyncio.timeout(limit if limit > 0 else None) as deadline:
                run.ctx.result.update(await run_job(run.ctx, self._plugins))
        except TimeoutError:
            if not deadline.expired():
                raise
            return "failed", f"执行超时（超过 {limit} 秒）"
        except JobFailed as exc:
            run.ctx.result.update(exc.result)
            return "failed", exc.message
        return "success", ""

    def _finish(self, run: ActiveRun, task: asyncio.Task[tuple[str, str]]) -> None:
        if task.cancelled():
            status, error = run.cancel_status, run.cancel_message or TERMINATED_MESSAGE
        elif (exc := task.exception()) is not None:
            log.error("job crashed", exc_info=exc, extra=_log_fields(run.spec))
            status, error = "failed", f"执行器内部错误: {exc}"
        else:
            status, error = task.result()
        result = copy.deepcopy(run.ctx.result)
        # The progress fields describe the run to the end: its final status, not "running".
        result["status"] = status
        result["success"] = status == "success"
        if error:
            result["message"] = error.split("\n", 1)[0]
        run.push(RunEvent("finished", result, status, error))
        self._active.pop(run.spec.execution_id, None)
        log.info("run finished", extra={**_log_fields(run.spec), "status": status, "error_message": error})


def _log_fields(spec: RunSpec) -> dict[str, object]:
    return {
        "execution_id": spec.execution_id,
        "attempt": spec.attempt,
        "task_id": spec.task_id,
        "task_type": spec.task_type,
    }

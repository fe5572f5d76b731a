"""Command jobs: one program, no shell, in its own process group, with an explicit environment."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.job_config import command_argv, command_env, command_timeout, command_work_dir
from services.common.log_lines import LogStream
from services.common.tracing import current_traceparent
from services.executor.jobs.context import JobContext, JobFailed
from services.executor.run_log import RunLog

PROGRESS_PREFIX = "::progress::"
_STEP_FORM = re.compile(r"(\d+)\s*/\s*(\d+)(?:\s+(.*))?")
# Longer stdout lines are kept in the tail but never parsed as progress.
_MAX_LINE_BYTES = 65536
_READ_CHUNK_BYTES = 65536
# After the group is dead the pipes hit EOF at once; only a process that left the group can hold them.
_PIPE_DRAIN_SECONDS = 2.0
_STDERR_IN_MESSAGE = 2000
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, slots=True)
class _Command:
    argv: list[str]
    display: str
    work_dir: Path
    env: dict[str, str]
    timeout: float | None


def parse_progress_line(line: str) -> dict[str, Any] | None:
    """`::progress:: {json object}` or `::progress:: 3/10 message` -> progress update; else None."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    body = line[len(PROGRESS_PREFIX) :].strip()
    if body.startswith("{"):
        try:
            update = json.loads(body)
        except ValueError:
            return None
        return update if isinstance(update, dict) else None
    match = _STEP_FORM.fullmatch(body)
    if match is None or int(match[2]) == 0:
        return None
    step: dict[str, Any] = {"current_step": int(match[1]), "total_steps": int(match[2])}
    if match[3]:
        step["message"] = match[3]
    return step


class _Capture:
    """Keeps the last `limit` bytes of a stream; hands complete lines starting with `prefix` to `on_line`."""

    def __init__(self, limit: int, prefix: bytes = b"", on_line: Callable[[str], None] | None = None) -> None:
        self._limit = limit
        self._tail = bytearray()
        self._prefix = prefix
        self._on_line = on_line
        self._line = bytearray()
        self._overlong = False

    def feed(self, chunk: bytes) -> None:
        self._tail += chunk
        del self._tail[: -self._limit]
        if self._on_line is None:
            return
        *lines, rest = (self._line + chunk).split(b"\n")
        for raw in lines:
            self._deliver(raw)
            self._overlong = False
        self._overlong = self._overlong or len(rest) > _MAX_LINE_BYTES
        self._line = bytearray() if self._overlong else rest

    def finish(self) -> None:
        """The stream ended: a last line without a newline still counts."""
        if self._line:
            self._deliver(self._line)
        self._line = bytearray()

    def _deliver(self, raw: bytearray) -> None:
        # Only matching lines are decoded: a chatty command costs little.
        if self._on_line is not None and not self._overlong and raw.startswith(self._prefix):
            self._on_line(raw.decode("utf-8", "replace").rstrip("\r"))

    def text(self) -> str:
        return self._tail.decode("utf-8", "replace")


def _parse(ctx: JobContext) -> _Command:
    config = ctx.config
    argv, display = command_argv(config)
    # Relative directories are relative to the executor's work_dir; "" is the work_dir itself.
    directory = (ctx.work_dir / command_work_dir(config)).resolve()
    if not directory.is_dir():
        raise JobFailed(f"工作目录不存在: {directory}")

    extra = command_env(config)
    limit = command_timeout(config)
    # The task's own timeout_seconds, enforced by the runner for every job kind, takes precedence.
    timeout = limit if limit > 0 and ctx.spec.timeout_seconds == 0 else None
    return _Command(argv, display, directory, _environment(ctx, extra), timeout)


def _environment(ctx: JobContext, extra: dict[str, str]) -> dict[str, str]:
    """Built from scratch: a command never sees the executor's variables (service token, database URL)."""
    env = {
        "PATH": os.environ.get("PATH", _DEFAULT_PATH),
        "HOME": ctx.job_user.home if ctx.job_user is not None else os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUTF8": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    env.update(extra)
    env["ZQ_EXECUTION_ID"] = str(ctx.spec.execution_id)
    env["ZQ_TASK_ID"] = str(ctx.spec.task_id)
    env["ZQ_LOGICAL_DATE"] = ctx.logical_date.isoformat()
    env["ZQ_PREV_TRADING_DAY"] = ctx.prev_trading_day.isoformat()
    traceparent = current_traceparent()  # with tracing on: the run's trace, for the program's own spans
    if traceparent:
        env["TRACEPARENT"] = traceparent
    return env


async def _pump(reader: asyncio.StreamReader, capture: _Capture, run_log: RunLog, stream: LogStream) -> None:
    while chunk := await reader.read(_READ_CHUNK_BYTES):
        capture.feed(chunk)
        run_log.feed(stream, chunk)
    capture.finish()
    run_log.end_stream(stream)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    # The group may be gone already.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _wait_exit(process: asyncio.subprocess.Process) -> None:
    """Waits for the command's own process to exit.

    Not Process.wait(): unless the exit was already seen, that also waits until every holder of
    the stdout/stderr pipes (say, a background grandchild) has exited, which is what must not be
    waited for. The exit status arrives through asyncio's child watcher; poll for it, backing off.
    """
    delay = 0.005
    while process.returncode is None:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


async def _stop_group(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM to the whole process group, SIGKILL after `grace` seconds; grandchildren included."""
    try:
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await _wait_exit(process)
    finally:
        # Also when cancelled while waiting: members that ignored SIGTERM, and whatever a command
        # that exited by itself left running in its group.
        _signal_group(process.pid, signal.SIGKILL)
    await _wait_exit(process)


async def _finish_reading(readers: list[asyncio.Task[None]]) -> None:
    _, pending = await asyncio.wait(readers, timeout=_PIPE_DRAIN_SECONDS)
    for reader in pending:
        reader.cancel()


async def run_command(ctx: JobContext) -> dict[str, Any]:
    command = _parse(ctx)
    loop = asyncio.get_running_loop()
    started = loop.time()
    argv = command.argv
    if ctx.job_user is not None:
        # As root, the command drops to the job user (setpriv). The child changes directory while
        # still root, and setpriv reports a missing program only as an exit code: check both first.
        if not await asyncio.to_thread(ctx.job_user.can_enter, command.work_dir):
            raise JobFailed(f"工作目录无权进入: {command.work_dir}（命令以用户 {ctx.job_user.name} 运行）")
        program = os.path.join(command.work_dir, argv[0]) if os.sep in argv[0] else argv[0]
        if shutil.which(program, path=command.env.get("PATH")) is None:
            raise JobFailed(f"命令不存在: {argv[0]}")
        argv = ctx.job_user.wrap(argv)
    try:
        # A new session makes the command the leader of its own process group: the whole tree can
        # be signalled at once, and a signal meant for the executor does not reach it.
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=command.work_dir,
            env=command.env,
            start_new_session=True,
        )
    except PermissionError:
        raise JobFailed(f"命令不可执行: {command.argv[0]}") from None
    except FileNotFoundError:
        raise JobFailed(f"命令不存在: {command.argv[0]}") from None
    except OSError as exc:
        raise JobFailed(f"命令启动失败: {exc}") from None
    assert process.stdout is not None and process.stderr is not None  # both are PIPE

    def on_stdout_line(line: str) -> None:
        update = parse_progress_line(line)
        if update is not None:
            ctx.progress(update)

    stdout = _Capture(ctx.output_tail_bytes, PROGRESS_PREFIX.encode(), on_stdout_line)
    stderr = _Capture(ctx.output_tail_bytes)
    readers = [
        asyncio.create_task(_pump(process.stdout, stdout, ctx.log, LogStream.STDOUT)),
        asyncio.create_task(_pump(process.stderr, stderr, ctx.log, LogStream.STDERR)),
    ]
    timed_out = False
    try:
        async with asyncio.timeout(command.timeout) as deadline:
            await _wait_exit(process)
    except TimeoutError:
        if not deadline.expired():
            raise
        timed_out = True
    finally:
        # Exited, timed out or cancelled: nothing the command started may outlive the run, and even
        # a terminated run reports its output.
        await _stop_group(process, ctx.kill_grace_seconds)
        await _finish_reading(readers)
        ctx.result.update(
            {
                "exit_code": process.returncode,
                "command": command.display,
                "work_dir": str(command.work_dir),
                "duration_seconds": round(loop.time() - started, 3),
                "stdout_tail": stdout.text(),
                "stderr_tail": stderr.text(),
            }
        )
    if timed_out:
        raise JobFailed(f"命令执行超时（超过 {command.timeout:g} 秒）")
    if process.returncode != 0:
        message = f"命令执行失败，退出码: {process.returncode}"
        error_tail = stderr.text().strip()[-_STDERR_IN_MESSAGE:]
        if error_tail:
            message += f"\n标准错误: {error_tail}"
        raise JobFailed(message)
    # The outcome is already merged into ctx.result above.
    return {}

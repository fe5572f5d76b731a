"""The executor over a real in-process gRPC channel, with real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.auth import service_metadata
from services.common.errors import EXECUTOR_UP_SINCE, Reason, error_metadata, reason_of
from services.common.server import ServiceServer
from services.common.structs import dict_to_struct, struct_to_dict
from services.executor.jobs.plugin import PluginRegistry, ProgressCallback
from services.executor.outcomes import read_stored
from services.executor.runner import Runner
from services.executor.server import create_server
from services.executor.settings import ExecutorSettings
from tests.waiting import eventually
from zquant.scheduler.v1 import executor_service_pb2, executor_service_pb2_grpc, task_pb2

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOKEN = "test-service-token"
AUTH = service_metadata(TOKEN)
Code = grpc.StatusCode
Event = executor_service_pb2.RunResponse


def kind(event: Event) -> str:
    """The event's type as a word: accepted, progress, heartbeat or finished."""
    return executor_service_pb2.RunResponse.EventType.Name(event.type).removeprefix("EVENT_TYPE_").lower()


@dataclass
class Stream:
    """A Run call being read event by event."""

    call: Any
    events: AsyncIterator[Event]

    async def next(self, event_type: str) -> Event:
        async for event in self.events:
            if kind(event) == event_type:
                return event
        raise AssertionError(f"stream ended without {event_type}")

    async def rest(self) -> list[Event]:
        return [event async for event in self.events]


@dataclass
class Executor:
    server: ServiceServer
    runner: Runner
    channel: grpc.aio.Channel
    stub: Any

    def run(self, execution_id: int, task: task_pb2.Task, metadata: Any = AUTH, attempt: int = 1) -> Any:
        request = executor_service_pb2.RunRequest(execution_id=execution_id, attempt=attempt, task=task)
        return self.stub.Run(request, metadata=metadata)

    def attach(self, execution_id: int, attempt: int) -> AsyncIterator[Event]:
        request = executor_service_pb2.RunRequest(execution_id=execution_id, attempt=attempt, attach=True)
        return aiter(self.stub.Run(request, metadata=AUTH))

    async def acknowledge(self, execution_id: int, attempt: int) -> bool:
        request = executor_service_pb2.AcknowledgeRequest(execution_id=execution_id, attempt=attempt)
        return bool((await self.stub.Acknowledge(request, metadata=AUTH)).forgotten)

    async def acknowledge_all(self, runs: list[tuple[int, int]]) -> int:
        request = executor_service_pb2.AcknowledgeRequest(
            runs=[executor_service_pb2.RunAttempt(execution_id=e, attempt=a) for e, a in runs]
        )
        return int((await self.stub.Acknowledge(request, metadata=AUTH)).forgotten_count)

    def stream(self, execution_id: int, task: task_pb2.Task) -> Stream:
        call = self.run(execution_id, task)
        return Stream(call, aiter(call))

    async def run_all(self, task: task_pb2.Task, execution_id: int = 1, attempt: int = 1) -> list[Event]:
        return [event async for event in self.run(execution_id, task, attempt=attempt)]

    async def cancel(self, execution_id: int, grace_seconds: int = 0) -> bool:
        request = executor_service_pb2.CancelRequest(execution_id=execution_id, grace_seconds=grace_seconds)
        response = await self.stub.Cancel(request, metadata=AUTH)
        return bool(response.cancelled)


StartExecutor = Callable[..., Awaitable[Executor]]


@pytest_asyncio.fixture(loop_scope="session")
async def start_executor(tmp_path: Path) -> AsyncIterator[StartExecutor]:
    started: list[Executor] = []

    async def start(
        plugins: PluginRegistry | None = None, rng: random.Random | None = None, **overrides: Any
    ) -> Executor:
        options: dict[str, Any] = {
            "service_token": TOKEN,
            "port": 0,
            "heartbeat_seconds": 0.2,
            "kill_grace_seconds": 1.0,
            "drain_seconds": 5.0,
            "work_dir": tmp_path,
            **overrides,
        }
        server, port, runner = await create_server(
            ExecutorSettings(**options), plugins=plugins or PluginRegistry(), rng=rng
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        executor = Executor(server, runner, channel, executor_service_pb2_grpc.ExecutorServiceStub(channel))
        started.append(executor)
        return executor

    yield start
    for executor in started:
        await executor.channel.close(None)
        await executor.server.stop(0)


@pytest_asyncio.fixture(loop_scope="session")
async def executor(start_executor: StartExecutor) -> Executor:
    return await start_executor()


def make_task(task_type: str = "example_task", task_timeout: int = 0, **config: Any) -> task_pb2.Task:
    return task_pb2.Task(
        id=7,
        name="t",
        task_type=task_type,
        timeout_seconds=task_timeout,
        config=dict_to_struct(config),
    )


def command_task(command: str | list[str], **config: Any) -> task_pb2.Task:
    return make_task("common_task", command=command, **config)


def result(event: Event) -> dict[str, Any]:
    return struct_to_dict(event.result)


def finished(events: Sequence[Event]) -> Event:
    """The one finished event, which must be the last one."""
    assert [kind(e) for e in events].count("finished") == 1
    assert kind(events[0]) == "accepted"
    assert kind(events[-1]) == "finished"
    return events[-1]


def progress(events: Sequence[Event]) -> list[dict[str, Any]]:
    return [result(e) for e in events if kind(e) == "progress"]


def alive(pid: int) -> bool:
    """Zombies count as dead: this container's init does not reap orphans."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


# --- example_task ---------------------------------------------------------------------------


async def test_example_streams_the_guides_progress_structure(executor: Executor) -> None:
    events = await executor.run_all(make_task(duration_seconds=0.3, steps=3, message="完成啦"))

    snapshots = progress(events)
    assert [p["progress_percent"] for p in snapshots] == [0, 33, 66, 100]
    assert snapshots[0] == {
        "current_step": 0,
        "total_steps": 3,
        "progress_percent": 0,
        "status": "running",
        "message": "开始执行",
        "steps": [],
    }
    assert snapshots[1] == {
        "current_step": 1,
        "total_steps": 3,
        "progress_percent": 33,
        "status": "running",
        "message": "正在执行步骤 1/3",
        "steps": [{"step": 1, "status": "completed", "message": "步骤 1/3 处理完成"}],
    }
    assert [len(p["steps"]) for p in snapshots] == [0, 1, 2, 3]

    end = finished(events)
    assert (end.status, end.error_message) == ("success", "")
    final = result(end)
    assert final["steps"] == snapshots[-1]["steps"]
    assert {k: final[k] for k in ("success", "status", "message", "progress_percent", "current_step")} == {
        "success": True,
        "status": "success",
        "message": "完成啦",
        "progress_percent": 100,
        "current_step": 3,
    }
    assert 0.3 <= final["duration_seconds"] < 1.5


async def test_a_caller_that_reads_batches_gets_every_event_in_order_and_others_one_per_message(
    executor: Executor,
) -> None:
    task = make_task(duration_seconds=0, steps=3)
    request = executor_service_pb2.RunRequest(execution_id=41, attempt=1, task=task, batch_events=True)
    messages = [message async for message in executor.stub.Run(request, metadata=AUTH)]
    events = [event for message in messages for event in (message, *message.then)]
    finished(events)  # accepted first, the outcome last and once
    assert not any(event.then for message in messages for event in message.then)
    assert [p["progress_percent"] for p in progress(events)] == sorted(
        p["progress_percent"] for p in progress(events)
    )
    assert len(messages) <= len(events)
    # A caller from before batches: one event per message, as before.
    singles = await executor.run_all(task, execution_id=42)
    finished(singles)
    assert not any(message.then for message in singles)


async def test_example_success_rate_zero_fails_after_all_steps(executor: Executor) -> None:
    end = finished(await executor.run_all(make_task(duration_seconds=0, steps=2, success_rate=0)))
    assert (end.status, end.error_message) == ("failed", "示例任务执行失败（模拟失败场景）")
    final = result(end)
    assert (final["status"], final["success"], final["current_step"]) == ("failed", False, 2)


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(("draw", "status"), [(0.49, "success"), (0.5, "failed")])
async def test_example_draws_from_the_injected_random_source(
    start_executor: StartExecutor, draw: float, status: str
) -> None:
    executor = await start_executor(rng=FixedRandom(draw))
    end = finished(await executor.run_all(make_task(duration_seconds=0, steps=1, success_rate=0.5)))
    assert end.status == status


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"steps": 0}, "配置项 steps 必须是大于 0 的整数"),
        ({"steps": 2.5}, "配置项 steps 必须是大于 0 的整数"),
        ({"steps": "5"}, "配置项 steps 必须是大于 0 的整数"),
        ({"steps": 5000}, "配置项 steps 不能超过 1000"),
        ({"success_rate": 2}, "配置项 success_rate 必须是介于 0 到 1 之间的数字"),
        ({"duration_seconds": -1}, "配置项 duration_seconds 必须是大于等于 0 的数字"),
        ({"duration_seconds": True}, "配置项 duration_seconds 必须是大于等于 0 的数字"),
        ({"message": 5}, "配置项 message 必须是字符串"),
    ],
)
async def test_example_bad_config_fails_cleanly(
    executor: Executor, config: dict[str, Any], message: str
) -> None:
    end = finished(await executor.run_all(make_task(**config)))
    assert (end.status, end.error_message) == ("failed", message)


@pytest.mark.parametrize("task_type", ["common_task", "manual_task"])
async def test_example_through_task_action(executor: Executor, task_type: str) -> None:
    task = make_task(task_type, task_action="example_task", duration_seconds=0, steps=1)
    assert finished(await executor.run_all(task)).status == "success"


async def test_task_timeout_fails_the_run(executor: Executor) -> None:
    started = time.monotonic()
    events = await executor.run_all(make_task(task_timeout=1, duration_seconds=10, steps=10))
    end = finished(events)
    assert (end.status, end.error_message) == ("failed", "执行超时（超过 1 秒）")
    assert result(end)["current_step"] < 10
    assert time.monotonic() - started < 8  # stopped, not run to its 10 s (room for a loaded machine)


# --- routing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (
            make_task("workflow", workflow_type="serial", tasks=[]),
            "编排任务由调度器执行，不能直接在执行器上运行",
        ),
        (make_task("common_task"), "通用任务配置中必须包含 'command' 或 'task_action' 字段"),
        (
            make_task("manual_task", task_action="sync_stock_list"),
            "不支持的 task_action: sync_stock_list。支持的 action: example_task, data_sync_stock_list, data_sync_trading_calendar, data_sync_daily_data, data_sync_all_daily_data, a_plugin",
        ),
        (make_task("nightly"), "不支持的任务类型: nightly"),
    ],
)
async def test_refused_tasks_fail_with_a_message(
    start_executor: StartExecutor, task: task_pb2.Task, message: str
) -> None:
    executor = await start_executor(plugins=PluginRegistry({"a_plugin": lambda config, progress: {}}))
    end = finished(await executor.run_all(task))
    assert (end.status, end.error_message) == ("failed", message)


# --- plugins --------------------------------------------------------------------------------


def sync_plugin(config: dict[str, Any], progress: ProgressCallback) -> dict[str, Any]:
    progress({"current_step": 1, "total_steps": 2, "message": "同步中"})
    time.sleep(0.1)
    return {"count": config["n"], "message": "同步完成"}


async def async_plugin(config: dict[str, Any], progress: ProgressCallback) -> dict[str, Any]:
    progress({"current_step": 1, "total_steps": 2, "message": "同步中"})
    await asyncio.sleep(0.1)
    return {"count": config["n"], "message": "同步完成"}


def failing_plugin(config: dict[str, Any], progress: ProgressCallback) -> dict[str, Any]:
    return {"success": False, "message": "数据源不可用"}


async def raising_plugin(config: dict[str, Any], progress: ProgressCallback) -> dict[str, Any]:
    raise RuntimeError("boom")


PLUGINS = PluginRegistry(
    {"sync": sync_plugin, "async": async_plugin, "failing": failing_plugin, "raising": raising_plugin}
)


@pytest.mark.parametrize("action", ["sync", "async"])
async def test_plugin_reports_progress_and_result(start_executor: StartExecutor, action: str) -> None:
    executor = await start_executor(plugins=PLUGINS)
    events = await executor.run_all(make_task("common_task", task_action=action, n=3))
    assert progress(events) == [
        {
            "current_step": 1,
            "total_steps": 2,
            "progress_percent": 50,
            "status": "running",
            "message": "同步中",
        }
    ]
    end = finished(events)
    assert end.status == "success"
    assert result(end) == {
        "current_step": 1,
        "total_steps": 2,
        "progress_percent": 50,
        "status": "success",
        "success": True,
        "message": "同步完成",
        "count": 3,
    }


@pytest.mark.parametrize(
    ("action", "message"),
    [("failing", "插件 failing 执行失败: 数据源不可用"), ("raising", "插件 raising 执行出错: boom")],
)
async def test_plugin_failure_fails_the_run(start_executor: StartExecutor, action: str, message: str) -> None:
    executor = await start_executor(plugins=PLUGINS)
    end = finished(await executor.run_all(make_task("common_task", task_action=action)))
    assert (end.status, end.error_message) == ("failed", message)
    assert result(end)["success"] is False


# --- commands -------------------------------------------------------------------------------


async def test_command_success_reports_exit_code_and_output(executor: Executor, tmp_path: Path) -> None:
    code = "import sys; print('你好'); print('注意', file=sys.stderr)"
    end = finished(await executor.run_all(command_task(python(code))))
    assert end.status == "success"
    final = result(end)
    assert final["exit_code"] == 0
    assert final["success"] is True
    assert final["stdout_tail"] == "你好\n"
    assert final["stderr_tail"] == "注意\n"
    assert final["command"] == shlex.join(python(code))
    assert final["work_dir"] == str(tmp_path)
    assert final["duration_seconds"] >= 0


async def test_command_string_is_split_without_a_shell(executor: Executor) -> None:
    end = finished(await executor.run_all(command_task("echo 'a b' '$HOME' ;")))
    assert result(end)["stdout_tail"] == "a b $HOME ;\n"


async def test_command_non_zero_exit_fails_with_stderr(executor: Executor) -> None:
    end = finished(await executor.run_all(command_task(sh("echo out; echo 出错了 >&2; exit 3"))))
    assert (end.status, end.error_message) == ("failed", "命令执行失败，退出码: 3\n标准错误: 出错了")
    final = result(end)
    assert (final["exit_code"], final["stdout_tail"], final["message"]) == (
        3,
        "out\n",
        "命令执行失败，退出码: 3",
    )


async def test_progress_lines_become_progress_events(executor: Executor) -> None:
    code = (
        "import time\n"
        "print('::progress:: 1/4 加载数据')\n"
        "time.sleep(0.2)\n"
        'print(\'::progress:: {"current_step": 2, "total_steps": 4, "rows": 10}\')\n'
        "time.sleep(0.2)\n"
        "print('普通输出')\n"
    )
    events = await executor.run_all(command_task(python(code)))
    assert progress(events) == [
        {
            "current_step": 1,
            "total_steps": 4,
            "progress_percent": 25,
            "message": "加载数据",
            "status": "running",
        },
        {
            "current_step": 2,
            "total_steps": 4,
            "progress_percent": 50,
            "message": "加载数据",
            "status": "running",
            "rows": 10,
        },
    ]
    final = result(finished(events))
    assert (final["rows"], final["current_step"], final["exit_code"], final["status"]) == (
        10,
        2,
        0,
        "success",
    )


async def test_command_gets_an_explicit_environment(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZQ_SERVICE_TOKEN", "secret")
    monkeypatch.setenv("ZQ_DATABASE_URL", "postgresql://user:pw@db/zq")
    task = command_task(python("import json, os; print(json.dumps(dict(os.environ)))"), env={"FOO": "bar"})
    end = finished(await executor.run_all(task, execution_id=42))
    env = json.loads(result(end)["stdout_tail"])
    assert "ZQ_SERVICE_TOKEN" not in env
    assert "ZQ_DATABASE_URL" not in env
    assert env["FOO"] == "bar"
    assert (env["ZQ_EXECUTION_ID"], env["ZQ_TASK_ID"]) == ("42", "7")
    assert (env["PYTHONUTF8"], env["PYTHONIOENCODING"], env["LC_ALL"]) == ("1", "utf-8", "C.UTF-8")


async def test_command_output_tail_is_bounded(start_executor: StartExecutor) -> None:
    executor = await start_executor(output_tail_bytes=100)
    end = finished(await executor.run_all(command_task(python("print('x' * 100000 + 'END')"))))
    tail = result(end)["stdout_tail"]
    assert len(tail) == 100
    assert tail.endswith("END\n")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"command": "echo 'unclosed"}, "命令解析失败: No closing quotation"),
        ({"command": ["echo", 1]}, "命令解析失败: command 必须是字符串或字符串列表"),
        ({"command": "  "}, "命令不能为空"),
        ({"command": "/no/such/program --flag"}, "命令不存在: /no/such/program"),
        ({"command": "./not-executable.sh"}, "命令不可执行: ./not-executable.sh"),
        ({"command": "true", "work_dir": "missing"}, "工作目录不存在: "),
        ({"command": "true", "env": {"N": 1}}, "配置项 env 必须是字符串到字符串的对象"),
        ({"command": "true", "timeout_seconds": -1}, "配置项 timeout_seconds 必须是大于等于 0 的数字"),
    ],
)
async def test_bad_command_fails_cleanly(
    executor: Executor, tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    (tmp_path / "not-executable.sh").write_text("#!/bin/sh\n")
    end = finished(await executor.run_all(make_task("common_task", **config)))
    assert end.status == "failed"
    assert end.error_message.startswith(message)


async def test_command_timeout_kills_it(executor: Executor) -> None:
    started = time.monotonic()
    end = finished(await executor.run_all(command_task("sleep 30", timeout_seconds=0.3)))
    assert (end.status, end.error_message) == ("failed", "命令执行超时（超过 0.3 秒）")
    assert result(end)["exit_code"] == -15
    assert time.monotonic() - started < 20  # killed, not run to its 30 s (room for a loaded machine)


async def test_heartbeats_while_a_command_is_silent(executor: Executor) -> None:
    events = await executor.run_all(command_task("sleep 0.7"))
    assert finished(events).status == "success"
    assert [kind(e) for e in events].count("heartbeat") >= 2


async def test_background_processes_die_with_the_command(executor: Executor) -> None:
    # The background sleep holds stdout open: the run must not wait for it, nor leave it behind.
    started = time.monotonic()
    events = await executor.run_all(command_task(sh("sleep 30 & echo $!")))
    assert finished(events).status == "success"
    assert time.monotonic() - started < 20  # not waiting for the 30 s sleep (room for a loaded machine)
    pid = int(result(events[-1])["stdout_tail"])
    await eventually(lambda: not alive(pid), "the job's process to be gone", within=3.0)


# --- cancellation ---------------------------------------------------------------------------

PRINT_PIDS = 'sleep 30 & echo "::progress:: {\\"pid\\": $!, \\"shell\\": $$}"; '


async def test_cancel_kills_the_whole_process_group(executor: Executor) -> None:
    stream = executor.stream(5, command_task(sh(PRINT_PIDS + "sleep 30; wait")))
    pids = result(await stream.next("progress"))
    assert alive(pids["pid"]) and alive(pids["shell"])

    assert await executor.cancel(5) is True
    events = await stream.rest()
    end = events[-1]
    assert (kind(end), end.status, end.error_message) == ("finished", "terminated", "任务已被终止")
    assert result(end)["pid"] == pids["pid"]
    await eventually(
        lambda: not alive(pids["pid"]) and not alive(pids["shell"]),
        "the job and its shell to be gone",
        within=3.0,
    )
    assert await executor.cancel(5) is False


async def test_cancel_kills_after_the_grace_period_when_sigterm_is_ignored(executor: Executor) -> None:
    stream = executor.stream(6, command_task(sh("trap '' TERM; " + PRINT_PIDS + "sleep 30; wait")))
    pids = result(await stream.next("progress"))
    started = time.monotonic()
    assert await executor.cancel(6, grace_seconds=1) is True
    end = (await stream.rest())[-1]
    assert end.status == "terminated"
    # Not before the grace period; and killed, not ended by its 30 s sleep (the upper bound leaves
    # room for a loaded machine: this is not a timing benchmark).
    assert 0.9 <= time.monotonic() - started < 20
    assert not alive(pids["pid"])


async def test_cancel_of_an_unknown_run(executor: Executor) -> None:
    assert await executor.cancel(999) is False


async def test_a_job_outlives_its_caller_and_a_new_caller_re_attaches_to_its_outcome(
    executor: Executor,
) -> None:
    stream = executor.stream(8, make_task(duration_seconds=1.0, steps=4))
    await stream.next("progress")
    stream.call.cancel()  # the scheduler stepped down
    await asyncio.sleep(0.3)
    assert executor.runner.active_count == 1  # the job goes on

    end = finished([event async for event in executor.attach(8, attempt=2)])
    assert (end.status, result(end)["current_step"]) == ("success", 4)

    # Finished and not acknowledged: the outcome is kept, and this attempt never runs a second time.
    again = executor.attach(8, attempt=2)
    assert [kind(event) for event in [event async for event in again]][-1] == "finished"
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await executor.run_all(make_task(), execution_id=8, attempt=2)
    assert twice.value.code() == Code.FAILED_PRECONDITION

    assert await executor.acknowledge(8, attempt=1) is False  # not the attempt that owns it now
    assert await executor.acknowledge(8, attempt=2) is True
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await anext(executor.attach(8, attempt=3))
    assert gone.value.code() == Code.NOT_FOUND


async def test_a_run_it_never_had_is_not_found_with_since_when_the_executor_is_up(executor: Executor) -> None:
    # The scheduler tells "never reached this executor" from "lost with a restart" by that moment.
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await anext(executor.attach(77, attempt=2))
    assert (unknown.value.code(), reason_of(unknown.value)) == (Code.NOT_FOUND, Reason.EXECUTION_NOT_FOUND)
    up_since = datetime.fromisoformat(error_metadata(unknown.value)[EXECUTOR_UP_SINCE])
    assert up_since.tzinfo is not None and up_since <= datetime.now(UTC)


async def test_one_acknowledgement_forgets_the_outcomes_of_many_runs_each_for_its_attempt(
    executor: Executor,
) -> None:
    for execution_id in (21, 22, 23):
        await executor.run_all(make_task(), execution_id=execution_id, attempt=1)

    # 23's attempt 2 is not the one that ran: its outcome stays, and so does 24 (never ran here).
    assert await executor.acknowledge_all([(21, 1), (22, 1), (23, 2), (24, 1)]) == 2
    end = finished([event async for event in executor.attach(23, attempt=2)])
    assert end.status == "success"
    for gone in (21, 22):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await anext(executor.attach(gone, attempt=2))
        assert error.value.code() == Code.NOT_FOUND


async def test_an_unacknowledged_outcome_outlives_executor_restarts_until_the_attempt_that_collected_it_acknowledges_it(
    start_executor: StartExecutor, tmp_path: Path
) -> None:
    outcomes = tmp_path / "outcomes"
    first = await start_executor(outcomes_dir=outcomes)
    ran = finished(await first.run_all(make_task(duration_seconds=0.1, steps=2), execution_id=31))
    # The scheduler got the outcome but the registry never stored it: no acknowledgement. It is
    # written before the finished event goes out, so it is on disk now, whatever happens next.
    assert 31 in read_stored(outcomes)

    # A new executor process on the same directory (this one was killed -9): the next scheduler
    # re-attaches with a new attempt and collects the real outcome; the job never runs again.
    second = await start_executor(outcomes_dir=outcomes)
    end = finished([event async for event in second.attach(31, attempt=2)])
    assert (end.status, result(end)) == ("success", result(ran))
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await second.run_all(make_task(), execution_id=31, attempt=2)
    assert twice.value.code() == Code.FAILED_PRECONDITION

    # Restarted again before the acknowledgement: the outcome now belongs to attempt 2.
    await second.runner.settle()
    third = await start_executor(outcomes_dir=outcomes)
    assert await third.acknowledge(31, attempt=1) is False
    assert await third.acknowledge(31, attempt=2) is True
    await third.runner.settle()
    assert 31 not in read_stored(outcomes)
    fourth = await start_executor(outcomes_dir=outcomes)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await anext(fourth.attach(31, attempt=3))
    assert gone.value.code() == Code.NOT_FOUND


async def test_a_stored_outcome_of_another_task_under_the_same_id_does_not_block_a_new_run(
    start_executor: StartExecutor, tmp_path: Path
) -> None:
    outcomes = tmp_path / "outcomes"
    first = await start_executor(outcomes_dir=outcomes)
    finished(await first.run_all(make_task(duration_seconds=0.1, steps=1), execution_id=41))
    # The database was made anew (development): execution 41 is now another task's first run.
    other = make_task(duration_seconds=0.1, steps=1)
    other.id = 8
    second = await start_executor(outcomes_dir=outcomes)
    assert finished(await second.run_all(other, execution_id=41)).status == "success"


async def test_re_attaching_to_a_running_job_replays_its_newest_progress(executor: Executor) -> None:
    stream = executor.stream(9, make_task(duration_seconds=2.0, steps=4))
    await stream.next("progress")
    await stream.next("progress")
    stream.call.cancel()
    events = [event async for event in executor.attach(9, attempt=2)]
    assert [kind(event) for event in events[:2]] == ["accepted", "progress"]
    assert result(events[1])["current_step"] >= 1
    assert finished(events).status == "success"


async def test_cancel_of_an_attempt_that_no_longer_owns_the_run_leaves_it_running(executor: Executor) -> None:
    stream = executor.stream(10, make_task(duration_seconds=1.0, steps=4))
    await stream.next("progress")
    stream.call.cancel()
    attached = executor.attach(10, attempt=2)
    first = await anext(attached)  # attached: attempt 2 owns the run now
    stale = executor_service_pb2.CancelRequest(execution_id=10, attempt=1)
    assert (await executor.stub.Cancel(stale, metadata=AUTH)).cancelled is False
    assert finished([first] + [event async for event in attached]).status == "success"


async def test_attach_never_starts_a_job(executor: Executor) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await anext(executor.attach(404, attempt=1))
    assert unknown.value.code() == Code.NOT_FOUND
    assert executor.runner.active_count == 0


# --- admission ------------------------------------------------------------------------------


async def test_max_concurrency_and_duplicate_runs_are_refused(start_executor: StartExecutor) -> None:
    executor = await start_executor(max_concurrency=1)
    first = executor.stream(1, make_task(duration_seconds=30))
    await first.next("accepted")

    with pytest.raises(grpc.aio.AioRpcError) as busy:
        await executor.run_all(make_task(), execution_id=2)
    assert (busy.value.code(), busy.value.details(), reason_of(busy.value)) == (
        Code.RESOURCE_EXHAUSTED,
        "执行器繁忙：已有 1 个任务在运行",
        Reason.EXECUTOR_BUSY,
    )
    with pytest.raises(grpc.aio.AioRpcError) as duplicate:
        await executor.run_all(make_task(), execution_id=1)
    assert (duplicate.value.code(), duplicate.value.details(), reason_of(duplicate.value)) == (
        Code.FAILED_PRECONDITION,
        "执行记录 1 已在运行",
        Reason.RUN_ALREADY_ACTIVE,
    )

    assert await executor.cancel(1)
    assert (await first.rest())[-1].status == "terminated"
    assert finished(await executor.run_all(make_task(duration_seconds=0, steps=1), execution_id=2))


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong"),)])
async def test_only_the_service_token_is_accepted(executor: Executor, metadata: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as run:
        [event async for event in executor.run(1, make_task(), metadata=metadata)]
    assert (run.value.code(), reason_of(run.value)) == (Code.UNAUTHENTICATED, Reason.SERVICE_TOKEN_REQUIRED)
    with pytest.raises(grpc.aio.AioRpcError) as cancel:
        await executor.stub.Cancel(executor_service_pb2.CancelRequest(execution_id=1), metadata=metadata)
    assert cancel.value.code() == Code.UNAUTHENTICATED
    # Health stays open for probes.
    health = health_pb2_grpc.HealthStub(executor.channel)
    response = await health.Check(
        health_pb2.HealthCheckRequest(service="zquant.scheduler.v1.ExecutorService")
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


# --- drain ----------------------------------------------------------------------------------


async def wait_until_refused(executor: Executor) -> grpc.aio.AioRpcError:
    """Retries a cheap run until the executor refuses it (the drain has begun)."""
    for execution_id in range(100, 200):
        try:
            await executor.run_all(make_task("workflow"), execution_id=execution_id)
        except grpc.aio.AioRpcError as exc:
            return exc
        await asyncio.sleep(0.01)
    raise AssertionError("never refused")


async def test_stop_lets_an_active_run_finish(executor: Executor) -> None:
    stream = executor.stream(1, make_task(duration_seconds=0.4, steps=2))
    await stream.next("accepted")
    stopping = asyncio.create_task(executor.server.stop(5))

    refused = await wait_until_refused(executor)
    assert (refused.code(), refused.details()) == (Code.UNAVAILABLE, "执行器正在停止")
    end = (await stream.rest())[-1]
    assert (kind(end), end.status) == ("finished", "success")
    await stopping


async def test_stop_fails_runs_that_outlast_the_drain_so_they_are_retried(
    start_executor: StartExecutor,
) -> None:
    executor = await start_executor(drain_seconds=0.2)
    stream = executor.stream(1, make_task(duration_seconds=30))
    await stream.next("accepted")
    stopping = asyncio.create_task(executor.server.stop(5))
    end = (await stream.rest())[-1]
    assert (end.status, end.error_message) == ("failed", "执行器正在停止，任务已中断")
    await stopping


# --- the real process -----------------------------------------------------------------------


async def test_entry_point_drains_on_sigterm(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "ZQ_SERVICE_TOKEN"}
    refused = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.executor", env=env)
    assert await refused.wait() == 2

    # Not tmp_path: a root executor checks that its job user can enter the work_dir, and pytest's
    # tmp_path lies under a directory only root can enter.
    env.update(ZQ_SERVICE_TOKEN=TOKEN, ZQ_EXECUTOR_PORT="0", ZQ_EXECUTOR_WORKDIR="/tmp")
    env.update(ZQ_DATA_DIR=str(tmp_path))  # its outcome files, not the repository's var/
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.executor", env=env, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        while "address" not in (line := json.loads(await process.stdout.readline())):
            pass
        async with grpc.aio.insecure_channel(line["address"]) as channel:
            stub = executor_service_pb2_grpc.ExecutorServiceStub(channel)
            request = executor_service_pb2.RunRequest(
                execution_id=1, task=make_task(duration_seconds=0.5, steps=2)
            )
            events = aiter(stub.Run(request, metadata=AUTH))
            assert kind(await anext(events)) == "accepted"
            process.send_signal(signal.SIGTERM)
            assert [event async for event in events][-1].status == "success"
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

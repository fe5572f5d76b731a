"""Every scheduling promise, proven with the real processes (registry, scheduler, two executors, Envoy)
on SQLite and on PostgreSQL.

Times are checked against the task's own anchor (created_at, or updated_at after enable), which the
registry sets from the same clock the scheduler fires by; windows allow for a loaded 2-core machine.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stack import ROOT, Stack
from tests.integration.api import Api, finished
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

SECOND = timedelta(seconds=1)
FORBID_REASON = "上一次执行仍在运行"
MISSED_REASON = "调度器未运行"
LOST = "执行器失联"

Execution = dict[str, Any]


# ---- helpers ------------------------------------------------------------------------------------


def ts(text: str) -> datetime:
    """An RFC 3339 UTC time as the API prints it (0-9 fraction digits), to the microsecond."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", text)
    assert match is not None, f"not an RFC 3339 UTC time: {text!r}"
    fraction = (match[2] or "").ljust(6, "0")[:6]
    return datetime.fromisoformat(f"{match[1]}.{fraction}+00:00")


def now() -> datetime:
    return datetime.now(UTC)


def sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - now()).total_seconds()))


def planned(execution: Execution) -> datetime:
    return ts(execution["scheduled_time"])


def lateness(execution: Execution) -> float:
    """Seconds from the planned time to the start (how late the run began)."""
    return (ts(execution["start_time"]) - planned(execution)).total_seconds()


def process_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an orphan may wait for a reaper that never comes)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def grpc_serving(port: int, token: str) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)]) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1.0, metadata=[("authorization", f"Bearer {token}")]
            )
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


class Tasks:
    """Creates uniquely named tasks for one test and deletes them (with their runs) afterwards."""

    _counter = itertools.count()

    def __init__(self, api: Api) -> None:
        self.api = api
        self.ids: list[int] = []

    def create(self, **fields: Any) -> dict[str, Any]:
        fields.setdefault("name", f"sched-{os.getpid()}-{next(self._counter)}-{time.monotonic_ns()}")
        task = self.api.create_task(**fields)
        self.ids.append(task["id"])
        return task

    def get(self, task_id: int) -> dict[str, Any]:
        task: dict[str, Any] = self.api.ok("GET", f"/tasks/{task_id}")
        return task

    def action(self, task_id: int, name: str) -> dict[str, Any]:
        task: dict[str, Any] = self.api.ok("POST", f"/tasks/{task_id}/{name}")
        return task

    def trigger(self, task_id: int) -> int:
        response = self.api.ok("POST", f"/tasks/{task_id}/trigger")
        assert response["message"] == "任务已触发"
        execution_id: int = response["execution_id"]
        return execution_id

    def runs(self, task_id: int, **params: Any) -> list[Execution]:
        """Every execution of the task, oldest first."""
        return sorted(self.api.executions(task_id, limit=1000, **params), key=lambda e: e["id"])

    def execution(self, task_id: int, execution_id: int) -> Execution:
        execution: Execution = self.api.ok("GET", f"/tasks/{task_id}/executions/{execution_id}")
        return execution

    def wait_runs(
        self, task_id: int, check: Callable[[list[Execution]], bool], timeout: float, what: str
    ) -> list[Execution]:
        def probe() -> list[Execution] | None:
            runs = self.runs(task_id)
            return runs if check(runs) else None

        result: list[Execution] = wait_for(probe, timeout, f"task {task_id}: {what}")
        return result

    def wait_settled(self, task_id: int, count: int, timeout: float = 20) -> list[Execution]:
        """Waits until the task has `count` executions and none of them is pending or running."""
        return self.wait_runs(
            task_id,
            lambda runs: len(runs) >= count and all(finished(e) for e in runs),
            timeout,
            f"{count} finished executions",
        )

    def delete_all(self) -> None:
        for task_id in self.ids:
            self.api.delete(f"/tasks/{task_id}", params={"force": "true"})


@pytest.fixture
def tasks(admin: Api) -> Iterator[Tasks]:
    made = Tasks(admin)
    try:
        yield made
    finally:
        made.delete_all()


def example(duration: float = 0.2, steps: int = 2, **extra: Any) -> dict[str, Any]:
    return {"duration_seconds": duration, "steps": steps, **extra}


def table(runs: list[Execution]) -> str:
    """Executions one per line, for assertion messages."""
    return "\n" + "\n".join(
        f"{e['id']:>5} {e['scheduled_time']} {e['trigger']:<8} {e['status']:<10} "
        f"{e['executor'] or '-'} {e['error_message'] or ''}"
        for e in runs
    )


def scheduled_times(runs: list[Execution]) -> list[datetime]:
    return sorted(planned(e) for e in runs if e["trigger"] == "schedule")


# ---- firing -------------------------------------------------------------------------------------


def test_interval_fires_once_per_interval_on_the_anchor_grid(tasks: Tasks) -> None:
    task = tasks.create(interval_seconds=2, config=example())
    anchor = ts(task["created_at"])
    assert ts(task["next_run_time"]) == anchor + 2 * SECOND

    sleep_until(anchor + 7 * SECOND)  # fires at +2, +4, +6; the next is due at +8
    runs = tasks.runs(task["id"])
    assert len(runs) == 3, table(runs)
    assert scheduled_times(runs) == [anchor + k * 2 * SECOND for k in (1, 2, 3)]
    assert {e["trigger"] for e in runs} == {"schedule"}
    runs = tasks.wait_settled(task["id"], 3)
    assert [e["status"] for e in runs] == ["success"] * 3, table(runs)
    assert all(0 <= lateness(e) < 1.0 for e in runs), table(runs)


@pytest.mark.skipif(
    os.uname().sysname != "Linux" or os.geteuid() != 0 or len(os.sched_getaffinity(0)) < 2,
    reason="real-time priority needs Linux, root (CAP_SYS_NICE) and two CPUs",
)
def test_the_schedulers_loop_thread_runs_real_time_and_nothing_else_of_it_does(stack: Stack) -> None:
    # So its fires are not late behind the executors and the database (common/thread_priority.py).
    for name in stack.config.scheduler_names:
        pid = stack.pid(name)
        assert pid is not None
        policies = {}
        for thread in map(int, os.listdir(f"/proc/{pid}/task")):
            with contextlib.suppress(ProcessLookupError):  # a pool's idle thread may end meanwhile
                policies[thread] = os.sched_getscheduler(thread) & ~os.SCHED_RESET_ON_FORK
        assert policies.pop(pid) == os.SCHED_FIFO  # the main thread runs the loop
        assert set(policies.values()) == {os.SCHED_OTHER}, policies
        log = (stack.config.logs_dir / f"{name}.log").read_text(errors="replace")
        assert '"message": "loop thread priority", "realtime": true' in log


def test_pause_stops_firing_and_resume_keeps_the_phase(tasks: Tasks) -> None:
    task = tasks.create(interval_seconds=2, config=example())
    task_id, anchor = task["id"], ts(task["created_at"])
    tasks.wait_runs(task_id, lambda runs: len(runs) >= 1, 5, "the first run")
    paused = tasks.action(task_id, "pause")
    assert paused["paused"] is True and paused["enabled"] is True
    assert paused["schedule_status"] == "paused" and not paused.get("next_run_time")

    sleep_until(anchor + 7 * SECOND)  # +4 and +6 were due while paused
    runs = tasks.runs(task_id)
    assert scheduled_times(runs) == [anchor + 2 * SECOND], table(runs)

    resumed = tasks.action(task_id, "resume")
    assert resumed["paused"] is False
    assert ts(resumed["next_run_time"]) == anchor + 8 * SECOND  # same phase, not re-anchored
    runs = tasks.wait_runs(task_id, lambda runs: len(runs) >= 2, 4, "a run after resume")
    assert scheduled_times(runs) == [anchor + 2 * SECOND, anchor + 8 * SECOND], table(runs)
    assert {e["status"] for e in runs} <= {"pending", "running", "success"}, table(runs)


def test_disable_stops_firing_and_enable_restarts_one_interval_later(tasks: Tasks) -> None:
    task = tasks.create(interval_seconds=2, config=example())
    task_id, anchor = task["id"], ts(task["created_at"])
    tasks.wait_runs(task_id, lambda runs: len(runs) >= 1, 5, "the first run")
    disabled = tasks.action(task_id, "disable")
    assert disabled["enabled"] is False and disabled["schedule_status"] == "disabled"

    time.sleep(4.6)  # more than two intervals
    assert scheduled_times(tasks.runs(task_id)) == [anchor + 2 * SECOND]

    enabled = tasks.action(task_id, "enable")
    enabled_at = ts(enabled["updated_at"])
    assert enabled["enabled"] is True
    assert ts(enabled["next_run_time"]) == enabled_at + 2 * SECOND
    runs = tasks.wait_runs(task_id, lambda runs: len(runs) >= 2, 4, "a run after enable")
    assert scheduled_times(runs) == [anchor + 2 * SECOND, enabled_at + 2 * SECOND], table(runs)
    time.sleep(0.5)
    assert len(tasks.runs(task_id)) == 2  # nothing was caught up for the disabled time


def test_trigger_runs_once_and_changes_nothing_else(tasks: Tasks) -> None:
    paused = tasks.create(interval_seconds=2, config=example())
    paused = tasks.action(paused["id"], "pause")
    disabled = tasks.create(interval_seconds=2, enabled=False, config=example())
    live = tasks.create(interval_seconds=2, config=example())
    live_anchor = ts(live["created_at"])

    triggered = {task["id"]: tasks.trigger(task["id"]) for task in (paused, disabled, live)}
    for task_id, execution_id in triggered.items():
        run = tasks.api.wait_execution(task_id, execution_id, timeout=10)
        assert (run["status"], run["trigger"], run["retry_count"]) == ("success", "manual", 0), run

    # Well past two intervals of every task.
    sleep_until(max(ts(t["created_at"]) for t in (paused, disabled, live)) + 4.7 * SECOND)
    for before in (paused, disabled):
        after = tasks.get(before["id"])
        for field in ("enabled", "paused", "updated_at", "interval_seconds", "schedule_status"):
            assert after[field] == before[field], (field, before, after)
        assert not after.get("next_run_time")
        runs = tasks.runs(before["id"])
        assert [(e["id"], e["trigger"]) for e in runs] == [(triggered[before["id"]], "manual")], table(runs)

    runs = tasks.runs(live["id"])
    assert [e["trigger"] for e in runs].count("manual") == 1
    # The manual run did not move the interval's phase.
    assert scheduled_times(runs) == [live_anchor + 2 * SECOND, live_anchor + 4 * SECOND], table(runs)
    assert tasks.get(live["id"])["updated_at"] == live["updated_at"]

    # Resuming the paused task continues on its original phase.
    paused_anchor = ts(paused["created_at"])
    resumed = tasks.action(paused["id"], "resume")
    next_run = ts(resumed["next_run_time"])
    assert (next_run - paused_anchor) % (2 * SECOND) == timedelta(0)
    runs = tasks.wait_runs(paused["id"], lambda runs: len(runs) >= 2, 4, "a run after resume")
    assert scheduled_times(runs) == [next_run]


def test_six_field_cron_fires_on_even_seconds_in_the_task_zone(tasks: Tasks) -> None:
    task = tasks.create(cron_expression="*/2 * * * * *", timezone="America/New_York", config=example(0.1, 1))
    zone = ZoneInfo(task["timezone"])
    created = ts(task["created_at"])
    sample = created + 5.5 * SECOND
    sleep_until(sample)
    times = scheduled_times(tasks.runs(task["id"]))
    # Read after `sample` (later on a busy machine): a fire up to then may be there too.
    read_at = datetime.now(UTC)
    # Every even second of the zone's clock after creation; the last one may still be on its way.
    candidates = (created.replace(microsecond=0) + s * SECOND for s in range(1, 60))
    expected = [t for t in candidates if created < t <= read_at and t.astimezone(zone).second % 2 == 0]
    settled = [t for t in expected if t <= sample - 0.5 * SECOND]
    assert times[: len(settled)] == settled, (times, expected)
    assert times == expected[: len(times)], (times, expected)
    assert all(t.astimezone(zone).second % 2 == 0 and t.microsecond == 0 for t in times)


# ---- overlap, retries, timeout ------------------------------------------------------------------


def test_overlap_policies(tasks: Tasks) -> None:
    # Runs of 3 s, due every second.
    long_run = example(3, 3)
    forbid = tasks.create(interval_seconds=1, config=long_run, max_retries=0, concurrency_policy="forbid")
    allow = tasks.create(interval_seconds=1, config=long_run, max_retries=0, concurrency_policy="allow")
    replace = tasks.create(interval_seconds=1, config=long_run, max_retries=0, concurrency_policy="replace")
    latest = max(ts(t["created_at"]) for t in (forbid, allow, replace))
    sleep_until(latest + 3.5 * SECOND)  # every task has fired at +1, +2, +3

    runs = tasks.wait_runs(forbid["id"], lambda r: len(r) >= 3, 3, "three planned times")
    first, *rest = sorted(runs, key=planned)
    assert first["status"] in ("running", "success"), table(runs)
    assert rest and all(e["status"] == "skipped" for e in rest), table(runs)
    assert all(e["error_message"].startswith(FORBID_REASON) for e in rest), table(runs)
    assert all(e["trigger"] == "schedule" for e in runs)

    runs = tasks.wait_runs(allow["id"], lambda r: len(r) >= 3, 3, "three planned times")
    runs = sorted(runs, key=planned)[:3]
    assert [e["status"] for e in runs] == ["running"] * 3, table(runs)  # all three at once

    def replaced(runs: list[Execution]) -> bool:
        ordered = sorted(runs, key=planned)
        return len(ordered) >= 3 and all(e["status"] == "terminated" for e in ordered[:-1])

    runs = sorted(tasks.wait_runs(replace["id"], replaced, 5, "older runs terminated"), key=planned)
    assert runs[-1]["status"] in ("pending", "running"), table(runs)
    assert all(e["start_time"] for e in runs), table(runs)  # each one started before it was replaced
    assert not any(e["status"] == "skipped" for e in runs)


def test_retries_chain_exactly_max_retries_times(tasks: Tasks) -> None:
    failing = example(0.2, 2, success_rate=0)
    chained = tasks.create(config=failing, max_retries=2, retry_interval=1)
    single = tasks.create(config=failing, max_retries=0, retry_interval=1)
    for task in (chained, single):
        tasks.trigger(task["id"])

    runs = tasks.wait_settled(chained["id"], 3, timeout=20)
    time.sleep(1.5)  # a fourth run would be due by now
    runs = tasks.runs(chained["id"])
    assert [e["retry_count"] for e in runs] == [0, 1, 2], table(runs)
    assert [e["trigger"] for e in runs] == ["manual", "retry", "retry"]
    assert [e["status"] for e in runs] == ["failed"] * 3
    assert all("失败" in e["error_message"] for e in runs), table(runs)
    for failed, retry in itertools.pairwise(runs):
        assert planned(retry) == ts(failed["end_time"]) + SECOND  # due after retry_interval ...
        assert ts(retry["start_time"]) >= planned(retry)  # ... and not started before it

    runs = tasks.runs(single["id"])
    assert [(e["trigger"], e["status"], e["retry_count"]) for e in runs] == [("manual", "failed", 0)], table(
        runs
    )


def test_disabling_cancels_a_pending_retry(tasks: Tasks) -> None:
    task = tasks.create(config=example(0.1, 1, success_rate=0), max_retries=3, retry_interval=3)
    tasks.trigger(task["id"])
    runs = tasks.wait_runs(
        task["id"], lambda r: any(e["trigger"] == "retry" for e in r), 10, "the retry to be scheduled"
    )
    retry = next(e for e in runs if e["trigger"] == "retry")
    assert retry["status"] == "pending" and retry["retry_count"] == 1
    tasks.action(task["id"], "disable")

    cancelled = tasks.execution(task["id"], retry["id"])
    assert cancelled["status"] == "skipped", cancelled
    assert "禁用" in cancelled["error_message"], cancelled
    sleep_until(planned(retry) + 1.5 * SECOND)  # it would have run by now
    runs = tasks.runs(task["id"])
    assert [(e["trigger"], e["status"]) for e in runs] == [("manual", "failed"), ("retry", "skipped")], table(
        runs
    )


def test_timeout_fails_the_run_with_a_clear_message(tasks: Tasks) -> None:
    task = tasks.create(config=example(10, 10), timeout_seconds=1, max_retries=0)
    execution_id = tasks.trigger(task["id"])
    run = tasks.api.wait_execution(task["id"], execution_id, timeout=8)
    assert run["status"] == "failed", run
    assert "超时" in run["error_message"] and "1 秒" in run["error_message"], run
    assert run["duration_seconds"] < 4, run


# ---- failures -----------------------------------------------------------------------------------


def executor_name(stack: Stack, address: str) -> str:
    names = {
        f"127.0.0.1:{stack.ports.executors[i]}": f"executor-{i}" for i in range(len(stack.ports.executors))
    }
    assert address in names, f"execution ran on {address!r}, not one of {sorted(names)}"
    return names[address]


def test_killed_executor_fails_the_run_and_the_retry_runs_elsewhere(stack: Stack, tasks: Tasks) -> None:
    task = tasks.create(config=example(3, 6), max_retries=1, retry_interval=1)
    execution_id = tasks.trigger(task["id"])

    def running() -> Execution | None:
        run = tasks.execution(task["id"], execution_id)
        return run if run["status"] == "running" and run["executor"] and run["result"] else None

    run = wait_for(running, 10, "the run to start on an executor")
    victim = executor_name(stack, run["executor"])
    killed = time.monotonic()
    stack.kill(victim)
    try:
        lost = tasks.api.wait_execution(task["id"], execution_id, timeout=20)
        assert time.monotonic() - killed <= 15, lost
        assert lost["status"] == "failed" and LOST in lost["error_message"], lost

        runs = tasks.wait_settled(task["id"], 2, timeout=20)
        retry = runs[1]
        assert (retry["trigger"], retry["retry_count"], retry["status"]) == ("retry", 1, "success"), table(
            runs
        )
        assert retry["executor"] and retry["executor"] != run["executor"], table(runs)
    finally:
        stack.start_service(victim)


def test_terminate_kills_the_command_process_group(tasks: Tasks, tmp_path: Path) -> None:
    # Writable by the command, which a root executor runs as another user (tmp_path is root's own).
    pids = Path(tempfile.mkdtemp(prefix="zq-pids-"))
    pids.chmod(0o777)
    script = (
        f"echo $$ > {pids}/shell; "
        f"sleep 60 & echo $! > {pids}/background; "
        f"sleep 60 & echo $! > {pids}/foreground; "
        "echo started; wait"
    )
    task = tasks.create(task_type="common_task", config={"command": ["sh", "-c", script]}, max_retries=2)
    execution_id = tasks.trigger(task["id"])
    names = ("shell", "background", "foreground")
    wait_for(
        lambda: all((pids / n).is_file() and (pids / n).read_text().strip() for n in names), 10, "pid files"
    )
    group = [int((pids / n).read_text()) for n in names]
    assert all(process_alive(pid) for pid in group)
    run = tasks.execution(task["id"], execution_id)
    assert run["status"] == "running", run

    tasks.api.ok("POST", f"/executions/{execution_id}/terminate")
    run = tasks.api.wait_execution(task["id"], execution_id, timeout=15)
    assert run["status"] == "terminated", run
    wait_for(lambda: not any(process_alive(pid) for pid in group), 5, f"processes {group} to be gone")
    time.sleep(1.5)
    assert len(tasks.runs(task["id"])) == 1  # a terminated run is not retried
    shutil.rmtree(pids)


def test_two_schedulers_on_one_database_never_duplicate(stack: Stack, tasks: Tasks, tmp_path: Path) -> None:
    port = free_port()
    env = {**stack.env_for("scheduler"), "ZQ_SCHEDULER_PORT": str(port)}
    with (tmp_path / "scheduler-2.log").open("wb") as log:
        second = subprocess.Popen(
            [sys.executable, "-m", "services.scheduler"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: grpc_serving(port, stack.service_token), 20, "the second scheduler")
        time.sleep(0.5)  # its change feed is subscribed
        task = tasks.create(
            interval_seconds=1, config=example(0.1, 1), max_retries=0, concurrency_policy="allow"
        )
        anchor = ts(task["created_at"])
        sleep_until(anchor + 6.5 * SECOND)
        runs = tasks.runs(task["id"])
        assert {e["trigger"] for e in runs} == {"schedule"}
        per_time = Counter(planned(e) for e in runs)
        assert max(per_time.values()) == 1, per_time
        assert sorted(per_time) == [anchor + k * SECOND for k in range(1, 7)], table(runs)
        assert all(e["status"] != "skipped" for e in runs), table(runs)

        # The second one was live all along: with the first stopped it carries on alone.
        stack.stop_service("scheduler")
        try:
            alone_from = now()
            runs = tasks.wait_runs(
                task["id"], lambda r: sum(planned(e) > alone_from for e in r) >= 2, 5, "runs of the second"
            )
        finally:
            stack.start_service("scheduler")
        time.sleep(2.5)
        # (A run the stopped scheduler was relaying fails 15 s later as lost; max_retries=0: no retry.)
        runs = tasks.runs(task["id"])
        assert {e["trigger"] for e in runs} == {"schedule"}
        per_time = Counter(planned(e) for e in runs)
        assert max(per_time.values()) == 1, per_time
        last = max(per_time)
        count = round((last - anchor) / SECOND)
        assert sorted(per_time) == [anchor + k * SECOND for k in range(1, count + 1)], table(runs)
        assert second.poll() is None, (tmp_path / "scheduler-2.log").read_text()
    finally:
        second.terminate()
        try:
            second.wait(10)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()


def test_scheduler_restart_records_missed_runs_and_catches_up_once(stack: Stack, tasks: Tasks) -> None:
    # Overlap is not what this test is about: under the default `forbid`, a live fire due while the
    # catch-up run still runs (the first live fire may come milliseconds after the catch-up) is
    # rightly skipped as an overlap; `allow` keeps the record independent of how long runs take.
    task = tasks.create(
        interval_seconds=1,
        config=example(0.1, 1),
        max_retries=0,
        misfire_policy="run_once",
        concurrency_policy="allow",
    )
    task_id, anchor = task["id"], ts(task["created_at"])
    tasks.wait_runs(task_id, lambda r: len(r) >= 2, 5, "two runs")
    stack.stop_service("scheduler")
    stopped = now()
    time.sleep(3.2)
    starting = now()
    stack.start_service("scheduler")
    time.sleep(2.5)

    runs = tasks.runs(task_id)
    per_time = Counter(planned(e) for e in runs)
    assert max(per_time.values()) == 1, per_time
    count = round((max(per_time) - anchor) / SECOND)
    assert sorted(per_time) == [anchor + k * SECOND for k in range(1, count + 1)], table(runs)  # no gaps

    after_stop = sorted((e for e in runs if planned(e) > stopped), key=planned)
    missed = [e for e in after_stop if planned(e) < starting]
    assert len(missed) >= 2, table(runs)
    # Missed times: a prefix recorded as skipped with the reason, then the newest one run once
    # (it may be the first after `starting`), then live fires.
    skipped = list(itertools.takewhile(lambda e: e["status"] == "skipped", after_stop))
    assert len(skipped) >= len(missed) - 1, table(after_stop)
    assert all(MISSED_REASON in e["error_message"] for e in skipped), table(skipped)
    assert all(e["status"] != "skipped" for e in after_stop[len(skipped) :]), table(after_stop)
    catch_up = after_stop[len(skipped)]
    assert catch_up["trigger"] == "schedule" and catch_up["status"] in ("running", "success"), catch_up
    assert all(e["trigger"] == "schedule" for e in runs)

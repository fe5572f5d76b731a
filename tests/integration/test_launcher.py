"""`make up`'s own command survives a dead process: `python -m stack up` (single mode: one registry,
one scheduler, an executor, the UI server and Envoy on SQLite) on free ports, each process then
`kill -9`ed from outside as a user would. The launcher starts it again, says so, and the stack keeps
serving: a REST call through Envoy answers and a triggered run succeeds. SIGTERM stops everything.

One executor only, so the run after the executor's restart can only have run on the restarted one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from stack import ROOT
from tests.integration.api import Api, unique
from tests.waiting import wait_for

ADMIN_PASSWORD = "launcher-admin-pw"
STARTUP_SECONDS = 90  # two cores shared with other test runs
RESTART_SECONDS = 60


@dataclass
class Launcher:
    """The running `python -m stack up` and everything it printed so far."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def start_reading(self) -> None:
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float, after: int = 0) -> re.Match[str]:
        """The first printed line from index `after` on that matches `pattern`."""

        def probe() -> re.Match[str] | None:
            if self.process.poll() is not None:
                raise AssertionError(f"the launcher exited ({self.process.returncode}):\n{self.output}")
            return next((m for line in self.lines[after:] if (m := re.search(pattern, line))), None)

        match: re.Match[str] = wait_for(probe, timeout, f"a line matching {pattern!r}", interval=0.2)
        return match

    def pids(self) -> dict[str, int]:
        """Each process's current pid: the banner's, or the one it came back with last."""
        pids = {m[1]: int(m[2]) for m in re.finditer(r"^  (\S+)\s+pid (\d+)", self.output, re.M)}
        pids.update({m[1]: int(m[2]) for m in re.finditer(r" (\S+) is back \(pid (\d+)\)", self.output)})
        return pids

    @property
    def http_url(self) -> str:
        port = self.wait_for_line(r"is up: http://localhost:(\d+)/", 0)[1]
        return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    data_dir = tmp_path_factory.mktemp("launcher")
    env = {
        **os.environ,
        "ZQ_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ZQ_DATABASE_URL": f"sqlite:///{data_dir}/registry.db",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen")]),
    }
    argv = [sys.executable, "-m", "stack", "up", "--free-ports", "--executors", "1"]
    argv += ["--data-dir", str(data_dir), "--timeout", str(STARTUP_SECONDS)]
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    launched = Launcher(process)
    launched.start_reading()
    try:
        launched.wait_for_line(r"stop: Ctrl-C", STARTUP_SECONDS + 10)
        yield launched
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def kill_and_wait_for_restart(launcher: Launcher, name: str) -> int:
    """SIGKILLs `name` from outside; returns the pid it is back with."""
    old = launcher.pids()[name]
    seen = len(launcher.lines)
    os.kill(old, signal.SIGKILL)
    launcher.wait_for_line(rf"{name} exited with code -9; starting it again in [\d.]+ s", 10, after=seen)
    new = int(launcher.wait_for_line(rf"{name} is back \(pid (\d+)\)", RESTART_SECONDS, after=seen)[1])
    assert new != old and pid_alive(new) and not pid_alive(old)
    return new


def a_triggered_run_succeeds(api: Api) -> None:
    task = api.create_task(name=unique("after-restart"), max_retries=0)
    execution_id = api.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]
    execution = api.wait_execution(task["id"], execution_id, timeout=RESTART_SECONDS)
    assert execution["status"] == "success", execution


def test_make_up_prints_each_process_with_its_log_file_and_a_metrics_url_that_answers(
    launcher: Launcher,
) -> None:
    pids = launcher.pids()
    assert sorted(pids) == ["envoy", "executor-0", "registry", "scheduler", "static"]
    for name in pids:
        log = launcher.wait_for_line(rf"^\s+log (\S+/{name}\.log)$", 0)[1]
        assert Path(log).is_file()
    metrics = dict(re.findall(r"^  (\S+)\s+pid.*metrics (http://\S+/metrics)", launcher.output, re.M))
    assert sorted(metrics) == ["executor-0", "registry", "scheduler"]
    for url in metrics.values():
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200 and "zq_" in response.text, url
    assert "scrape_configs" in launcher.output


def test_a_killed_executor_is_started_again_and_the_next_run_succeeds_on_it(launcher: Launcher) -> None:
    admin = Api.login(launcher.http_url, "admin", ADMIN_PASSWORD)
    kill_and_wait_for_restart(launcher, "executor-0")
    a_triggered_run_succeeds(admin)
    assert all(pid_alive(pid) for name, pid in launcher.pids().items() if name != "executor-0")


def test_a_killed_registry_is_started_again_and_rest_through_envoy_still_answers(launcher: Launcher) -> None:
    admin = Api.login(launcher.http_url, "admin", ADMIN_PASSWORD)
    kill_and_wait_for_restart(launcher, "registry")
    # The token from before the kill still works: the restarted registry keeps the signing key.
    assert admin.ok("GET", "/tasks", params={"limit": 1})["total"] >= 1
    a_triggered_run_succeeds(admin)
    assert pid_alive(launcher.pids()["envoy"])


def test_a_killed_scheduler_is_started_again_leads_at_once_and_runs_the_next_trigger(
    launcher: Launcher,
) -> None:
    admin = Api.login(launcher.http_url, "admin", ADMIN_PASSWORD)
    new = kill_and_wait_for_restart(launcher, "scheduler")
    # The killed leader's stream ended with it, and the registry released its term there and
    # then: the restarted scheduler does not wait for the term to run out.
    back = time.monotonic()
    wait_for(
        lambda: f":{new}:" in admin.ok("GET", "/status")["leader"], 15, "the restarted scheduler to lead"
    )
    assert time.monotonic() - back < 5
    a_triggered_run_succeeds(admin)


def test_sigterm_stops_the_launcher_and_every_process(launcher: Launcher) -> None:
    seen = len(launcher.lines)
    pids = [pid for pid in launcher.pids().values() if pid_alive(pid)]
    assert len(pids) == 5
    launcher.process.send_signal(signal.SIGTERM)
    assert launcher.process.wait(timeout=60) == 0
    assert launcher.reader is not None
    launcher.reader.join(timeout=10)  # until the last printed line is read
    assert "stopped." in launcher.lines[seen:]
    assert [pid for pid in pids if pid_alive(pid)] == []

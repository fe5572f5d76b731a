"""One child process: started from the spawner thread in its own group, logged, stopped, killed."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.config import ServiceSpec
from stack.processes import Child, Spawner, tail, terminate

# Ignores SIGTERM, like a service stuck in its shutdown.
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('REA' + 'DY', flush=True); time.sleep(60)"


@pytest.fixture
def spawner() -> Iterator[Spawner]:
    spawner = Spawner()
    yield spawner
    spawner.shutdown()


def child(tmp_path: Path, code: str, name: str = "worker") -> Child:
    spec = ServiceSpec(name, "grpc", 0, (sys.executable, "-c", code))
    return Child(spec, tmp_path / f"{name}.log")


def wait_for_output(c: Child, text: str) -> None:
    """Until the child printed `text` (built so it is not in its command line, which is logged)."""
    deadline = time.monotonic() + 20
    while text not in c.log_path.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, c.tail()
        time.sleep(0.05)


def test_a_child_runs_in_its_own_process_group_and_logs_to_its_file(tmp_path: Path, spawner: Spawner) -> None:
    c = child(tmp_path, "print('hello', flush=True)")
    c.start(spawner, os.environ)
    assert c.process is not None and c.process.wait(timeout=20) == 0
    assert os.getpgid(os.getpid()) != c.process.pid  # its own group (pgid == its pid)
    log = c.log_path.read_text(encoding="utf-8")
    assert "stack: starting worker:" in log and "hello" in log
    assert c.exit_code == 0 and not c.running and c.pid is None


def test_a_second_start_appends_to_the_log_of_the_first(tmp_path: Path, spawner: Spawner) -> None:
    c = child(tmp_path, "print('run', flush=True)")
    for _ in range(2):
        c.start(spawner, os.environ)
        assert c.process is not None
        c.process.wait(timeout=20)
    c.note("worker is back")
    assert c.log_path.read_text(encoding="utf-8").count("run\n") == 2
    assert tail(c.log_path, 1).endswith("stack: worker is back")


def test_terminate_kills_what_ignores_sigterm_after_the_timeout(tmp_path: Path, spawner: Spawner) -> None:
    c = child(tmp_path, STUBBORN)
    c.start(spawner, os.environ)
    wait_for_output(c, "READY")
    terminate([c], timeout=0.5)
    assert c.exit_code == -signal.SIGKILL and c.log is None


def test_kill_reaches_the_whole_group(tmp_path: Path, spawner: Spawner) -> None:
    grandchild = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(grandchild)!r}, 'w').write(str(p.pid))\n"
        "print('REA' + 'DY', flush=True); time.sleep(60)\n"
    )
    c = child(tmp_path, code)
    c.start(spawner, os.environ)
    wait_for_output(c, "READY")
    pid = int(grandchild.read_text())
    c.kill()
    deadline = time.monotonic() + 20
    while _alive(pid):
        assert time.monotonic() < deadline, f"grandchild {pid} survived"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by init) counts as gone.
    with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_a_program_that_cannot_be_executed_exits_with_the_reason_in_its_log(
    tmp_path: Path, spawner: Spawner
) -> None:
    spec = ServiceSpec("ghost", "grpc", 0, ("/nonexistent/program",))
    c = Child(spec, tmp_path / "ghost.log")
    c.start(spawner, os.environ)  # the death-signal shim execs it, so the child itself fails
    assert c.process is not None and c.process.wait(timeout=20) != 0
    assert "nonexistent" in c.tail()

"""The supervisor on a real process (the UI's static server, the quickest of our services to start):
a dead process comes back after its backoff and is logged; one stopped on purpose stays down; without
a restart policy a killed process stays dead until a test starts it again."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.config import StackConfig
from stack.restart import RestartPolicy
from stack.supervisor import Stack, StackError
from tests.waiting import wait_for

QUICK = RestartPolicy(first_delay=0.2, max_delay=1.0, reset_after=60.0)


def static_only(tmp_path: Path, restart: RestartPolicy | None) -> StackConfig:
    dist = tmp_path / "dist"
    dist.mkdir(exist_ok=True)
    (dist / "index.html").write_text("<html>ui</html>", encoding="utf-8")
    return StackConfig.build(
        tmp_path / "stack",
        free_ports=True,
        registry=False,
        scheduler=False,
        executors=0,
        envoy=False,
        extra_env={"ZQ_WEB_DIST": str(dist)},
        restart=restart,
    )


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Stack]:
    with Stack(static_only(tmp_path, QUICK)) as stack:
        yield stack


@pytest.fixture
def unsupervised(tmp_path: Path) -> Iterator[Stack]:
    with Stack(static_only(tmp_path, None)) as stack:
        yield stack


def test_a_process_killed_from_outside_is_started_again_and_the_restart_is_logged(supervised: Stack) -> None:
    old = supervised.pid("static")
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: supervised.restarts("static") == 1, 30.0, "the restart", interval=0.05)
    assert supervised.pid("static") not in (None, old)
    log = supervised.config.log_path("static").read_text(encoding="utf-8")
    assert "static exited with code -9; starting it again in 0.2 s" in log
    assert f"static is back (pid {supervised.pid('static')})" in log


def test_a_process_that_keeps_dying_waits_longer_each_time(supervised: Stack) -> None:
    for _ in range(3):
        restarts = supervised.restarts("static")
        supervised.kill("static")
        wait_for(lambda: supervised.restarts("static") == restarts + 1, 30.0, "the restart", interval=0.05)  # noqa: B023
    log = supervised.config.log_path("static").read_text(encoding="utf-8")
    delays = [line.rsplit(" in ", 1)[1] for line in log.splitlines() if "starting it again" in line]
    assert delays == ["0.2 s", "0.4 s", "0.8 s"]


def test_a_service_stopped_on_purpose_stays_down_until_started(supervised: Stack) -> None:
    supervised.stop_service("static")
    time.sleep(5 * QUICK.first_delay)  # several watchdog rounds
    assert not supervised.is_running("static") and supervised.restarts("static") == 0
    supervised.start_service("static")
    assert supervised.is_running("static")


def test_start_service_after_a_kill_starts_it_at_once_and_the_watchdog_does_not_start_a_second(
    supervised: Stack,
) -> None:
    supervised.kill("static")
    supervised.start_service("static")
    pid = supervised.pid("static")
    time.sleep(5 * QUICK.first_delay)
    assert supervised.pid("static") == pid and supervised.restarts("static") == 0
    supervised.start_service("static")  # already back: just waits until it is ready
    assert supervised.pid("static") == pid


def test_without_a_restart_policy_a_killed_process_stays_dead_until_started(unsupervised: Stack) -> None:
    unsupervised.kill("static")
    time.sleep(1.0)
    assert not unsupervised.is_running("static")
    unsupervised.start_service("static")
    assert unsupervised.is_running("static")
    with pytest.raises(StackError, match="already running"):
        unsupervised.start_service("static")


def test_stop_ends_the_watchdog_and_every_process(tmp_path: Path) -> None:
    stack = Stack(static_only(tmp_path, QUICK))
    stack.start()
    pid = stack.pid("static")
    stack.stop()
    time.sleep(3 * QUICK.first_delay)
    assert stack.pid("static") is None and pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_port_already_taken_is_refused_before_anything_starts(tmp_path: Path) -> None:
    stack = Stack(static_only(tmp_path, QUICK))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", stack.ports.static))
        holder.listen()
        with pytest.raises(StackError, match=f"static:{stack.ports.static}"):
            stack.start()
    assert not stack.is_running("static")


def test_a_stack_started_again_after_a_stop_restarts_its_dead_again(tmp_path: Path) -> None:
    stack = Stack(static_only(tmp_path, QUICK))
    stack.start()
    stack.stop()
    with stack:
        stack.kill("static")
        wait_for(lambda: stack.restarts("static") == 1, 30.0, "the restart", interval=0.05)
        assert stack.is_running("static")

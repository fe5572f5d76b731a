"""Child processes of the stack: start one, signal it, stop a set of them, read its log.

Every child runs in its own session (process group), so Ctrl-C reaches only the launcher and a
signal to the group also reaches what the child started (an executor's command jobs). Each writes
stdout and stderr to its own log file, ``<data_dir>/logs/<name>.log``; the launcher appends a line
``=== <time> stack: ...`` there when it starts the process and when it finds it dead.

Children also get ``PR_SET_PDEATHSIG(SIGTERM)``, so nothing outlives a launcher that is killed
outright. That signal is tied to the *thread* that forked the child (Envoy sets it on itself too),
so every child is started from one long-lived :class:`Spawner` thread, and the launcher must stay
alive while the stack runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from stack.config import ROOT, ServiceSpec

_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # not Linux / no glibc: children then rely on the launcher stopping them
    _libc = None

# Every child starts as this tiny program, which asks the kernel for SIGTERM when the spawner thread
# (its parent) goes away, so a killed launcher leaves no orphans, and then execs the real command
# (same pid; the death signal survives exec). Not a preexec_fn: that makes Popen fork() instead of
# vfork(), and fork() runs gRPC's at-fork handlers, which, while gRPC is busy in the launcher (tests),
# restart a poller thread in the child that dies on the fd Popen closed ("Epoll1Poller encountered
# epoll_wait error: Bad file descriptor", SIGABRT before exec; grpc/grpc#43055).
# argv: <launcher pid> <libc path> <command...>; exits 1 when the launcher is already gone.
_PDEATHSIG_EXEC = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(sys.argv[2] or None).prctl(1, signal.SIGTERM, 0, 0, 0)\n"
    "os.getppid() == int(sys.argv[1]) or os._exit(1)\n"
    "os.execvpe(sys.argv[3], sys.argv[3:], os.environ)\n"
)


def with_pdeathsig(argv: Sequence[str]) -> list[str]:
    """`argv` behind the death-signal shim (Linux); as is elsewhere."""
    if _libc is None:
        return list(argv)
    libc = getattr(_libc, "_name", "") or ""
    return [sys.executable, "-S", "-c", _PDEATHSIG_EXEC, str(os.getpid()), libc, *argv]


class Spawner:
    """The one thread that forks every child (see the module docstring for why one)."""

    def __init__(self) -> None:
        self._thread: ThreadPoolExecutor | None = None

    def popen(self, argv: Sequence[str], env: Mapping[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stack-spawner")
        return self._thread.submit(_popen, argv, env, log).result()

    def shutdown(self) -> None:
        """Ends the thread; call it only after every child has stopped (they get SIGTERM then)."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None


def _popen(argv: Sequence[str], env: Mapping[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        with_pdeathsig(argv),
        cwd=ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: Ctrl-C reaches only the launcher
    )


@dataclass
class Child:
    """One service's process over its lifetime: the current process (if any) and its log."""

    spec: ServiceSpec
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    started_at: float = 0.0  # time.monotonic() of the last start

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running and self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The code of a process that was started and has exited; None while it runs."""
        return None if self.process is None else self.process.poll()

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started_at

    def start(self, spawner: Spawner, env: Mapping[str, str]) -> None:
        """Starts the process, appending to the log of earlier runs (a fresh log on the first)."""
        self.close_log()
        log = self.log_path.open("ab" if self.process is not None else "wb")
        self.log = log
        self.note(f"starting {self.name}: {shlex.join(self.spec.argv)}")
        try:
            self.process = spawner.popen(self.spec.argv, env, log)
        except OSError:
            self.close_log()
            raise
        self.started_at = time.monotonic()

    def note(self, what: str) -> None:
        """Appends one launcher line to the log, between the process's own lines."""
        line = f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} stack: {what}\n".encode()
        if self.log is not None:
            self.log.write(line)
            self.log.flush()
        else:
            with self.log_path.open("ab") as log:
                log.write(line)

    def signal(self, sig: int) -> None:
        """Sends `sig` to the whole process group (what the child started gets it too)."""
        if self.process is not None:
            # start_new_session=True made the child a process-group leader: pgid == pid.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the group; waits for the process and closes its log."""
        if self.process is not None:
            self.signal(signal.SIGKILL)
            self.process.wait()
        self.close_log()

    def close_log(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def tail(self, lines: int = 40) -> str:
        if self.log is not None:
            self.log.flush()
        return tail(self.log_path, lines)


def terminate(children: Sequence[Child], timeout: float) -> None:
    """SIGTERM to every running child at once; SIGKILL to those still up after `timeout`."""
    running = [c for c in children if c.running]
    for child in running:
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in running:
        assert child.process is not None
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    for child in children:
        child.close_log()


def tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a log file (at most its last 64 KiB)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read()
    except OSError as exc:
        return f"(cannot read: {exc})"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

"""Who command jobs run as: an executor running as root drops them to a dedicated unprivileged user.

Commands are whatever an admin typed into a task; the executor holds the service token and, next to a
registry, may share a machine with its JWT key and database. Run as root, a command could read all
of it. So when the executor's effective user is root, every command runs as `ZQ_JOB_USER` (default
`nobody`): that user's uid and primary group, no supplementary groups, its own HOME. There is no
fallback to root: an unknown user, or one that cannot read and search the executor's work_dir, stops
the executor at start, and a task whose work_dir that user cannot use fails with the reason. The
working directory is set before the drop, so its parent directories need no permission for the job
user (a checkout under a 0700 home works); programs on the PATH must be executable for it, e.g.
`/usr/bin/python3` rather than an interpreter under root's home. An
executor that is not root (Kubernetes, the Docker image) runs commands as its own user.

The switch is made by `setpriv` (util-linux) in front of the command, not by subprocess's `user=`:
with `user=` Python forks instead of using vfork, and in a process full of gRPC threads the forked
child ran gRPC's fork handlers and sometimes crashed (SIGSEGV) before its exec.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_JOB_USER = "nobody"


@dataclass(frozen=True, slots=True)
class JobUser:
    name: str
    uid: int
    gid: int
    home: str
    setpriv: str

    @classmethod
    def resolve(cls, name: str) -> JobUser:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ValueError(f"ZQ_JOB_USER {name!r} is not a user on this machine") from None
        if entry.pw_uid == 0:
            raise ValueError(f"ZQ_JOB_USER {name!r} is root: commands must run unprivileged")
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise ValueError("setpriv (util-linux) is needed to run commands as ZQ_JOB_USER")
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, setpriv)

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run as this user: its uid and primary group, no supplementary group."""
        return [self.setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--", *argv]

    def can_enter(self, directory: Path) -> bool:
        """Asks the kernel, as this user, whether it can work in `directory`. A command starts in its
        directory before it drops to this user (the executor, still root, sets the working directory),
        so only the directory itself counts: it must be readable and searchable for this user
        (permission bits and ACLs); its parents need not be (a checkout under /root works)."""
        if not directory.is_dir():
            return False
        probe = subprocess.run(
            self.wrap(["/bin/sh", "-c", "test -r . -a -x ."]),
            cwd=directory,
            env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        if probe.returncode != 0:
            log.warning(
                "job user cannot enter a directory",
                extra={
                    "user": self.name,
                    "directory": str(directory),
                    "exit_code": probe.returncode,
                    "stderr": probe.stderr.decode("utf-8", "replace")[-500:],
                },
            )
        return probe.returncode == 0


def job_user_for(name: str, work_dir: Path) -> JobUser | None:
    """The user commands run as (None: the executor's own, which is not root); checked against
    the work_dir at start, so a misconfigured executor never starts rather than failing every run."""
    if os.geteuid() != 0:
        return None
    user = JobUser.resolve(name or DEFAULT_JOB_USER)
    if not user.can_enter(work_dir):
        raise ValueError(
            f"ZQ_JOB_USER {user.name} cannot enter ZQ_EXECUTOR_WORKDIR {work_dir}: commands run as that "
            "user when the executor runs as root. Choose a work_dir that user can read and search, "
            "or another ZQ_JOB_USER."
        )
    return user

"""Commands of a root executor run as the job user: never root, never with the executor's groups,
and a work_dir that user cannot enter fails the run with the reason instead of running as root."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.executor.jobs.command import run_command
from services.executor.jobs.context import JobContext, JobFailed
from services.executor.jobs.job_user import JobUser, job_user_for
from services.executor.models import RunSpec
from services.executor.run_log import DEFAULT_LOG_MAX_BYTES, RunLog

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root drops commands to the job user")


def context(base: Path, command: list[str], **config: Any) -> JobContext:
    spec = RunSpec(1, 1, 1, "t", "common_task", {"command": command, **config}, 0, date(2024, 1, 2))
    return JobContext(
        spec=spec,
        log=RunLog(DEFAULT_LOG_MAX_BYTES, lambda _: None),
        work_dir=base,
        output_tail_bytes=4096,
        kill_grace_seconds=1,
        rng=random.Random(0),
        job_user=JobUser.resolve("nobody"),
        emit=lambda _: None,
    )


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user can enter, wherever pytest's (root-only) tmp_path lives."""
    path = Path(tempfile.mkdtemp(prefix="zq-job-user-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_a_command_runs_as_the_job_user_without_supplementary_groups(open_dir: Path) -> None:
    ctx = context(open_dir, ["/bin/sh", "-c", "id -u; id -G; echo $HOME"])
    asyncio.run(run_command(ctx))
    uid, groups, home = ctx.result["stdout_tail"].split("\n")[:3]
    nobody = JobUser.resolve("nobody")
    assert int(uid) == nobody.uid
    assert groups.split() == [str(nobody.gid)]
    assert home == nobody.home


def test_a_work_dir_the_job_user_cannot_enter_fails_the_run_with_the_reason(open_dir: Path) -> None:
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    ctx = context(open_dir, ["/bin/true"], work_dir="private")
    with pytest.raises(JobFailed) as failed:
        asyncio.run(run_command(ctx))
    assert failed.value.message == f"工作目录无权进入: {private}（命令以用户 nobody 运行）"


def test_the_job_user_is_checked_against_the_work_dir_at_start(tmp_path: Path, open_dir: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(ValueError, match="ZQ_JOB_USER nobody cannot enter ZQ_EXECUTOR_WORKDIR"):
        job_user_for("", private)
    assert job_user_for("", open_dir) == JobUser.resolve("nobody")


def test_a_work_dir_under_a_private_parent_is_usable(tmp_path: Path) -> None:
    """The working directory is set before the drop: only the directory itself must be open (a
    checkout under a 0700 home directory works)."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    checkout = home / "checkout"
    checkout.mkdir(mode=0o755)
    (checkout / "job.sh").write_text("echo from-the-checkout\n")
    (checkout / "job.sh").chmod(0o644)
    user = job_user_for("", checkout)
    assert user is not None and user.can_enter(checkout)
    ctx = context(checkout, ["/bin/sh", "job.sh"])
    asyncio.run(run_command(ctx))
    assert "from-the-checkout" in ctx.result["stdout_tail"]


def test_root_and_unknown_users_are_refused_as_job_users() -> None:
    with pytest.raises(ValueError, match="is root"):
        JobUser.resolve("root")
    with pytest.raises(ValueError, match="is not a user"):
        JobUser.resolve("no-such-user-zq")

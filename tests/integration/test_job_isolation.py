"""Commands run unprivileged (issue 11): a command cannot read the service's secrets, neither from
its environment nor from the registry's data directory; as root the executor drops commands to
`ZQ_JOB_USER`, and refuses to start when that user cannot enter its work_dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import ROOT, Stack
from tests.conftest import database_url
from tests.integration.api import Api, unique
from tests.integration.conftest import ADMIN_PASSWORD, start_stack, stop_and_check

PROBE = r"""
import json, os, pwd, sys
def read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return "read"
    except PermissionError:
        return "denied"
    except FileNotFoundError:
        return "missing"
print(json.dumps({
    "uid": os.getuid(),
    "user": pwd.getpwuid(os.getuid()).pw_name,
    "groups": os.getgroups(),
    "token": os.environ.get("ZQ_SERVICE_TOKEN"),
    "secret_env": sorted(
        k for k in os.environ
        if k.startswith("ZQ_")
        and k not in ("ZQ_EXECUTION_ID", "ZQ_TASK_ID", "ZQ_LOGICAL_DATE", "ZQ_PREV_TRADING_DAY")
    ),
    "files": {path: read(path) for path in sys.argv[1:]},
}))
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("isolation")
    with database_url("sqlite", str(tmp)) as url:
        stack = start_stack(tmp, url, executors=1, scheduler=True)
        try:
            yield stack
        finally:
            stop_and_check(stack)


def run_probe(stack: Stack, *paths: Path) -> dict[str, object]:
    admin = Api.login(stack.http_url, "admin", ADMIN_PASSWORD)
    # /usr/bin/python3: the system interpreter, which any user may run (the test's may live in a
    # directory only root can enter).
    command = ["/usr/bin/python3", "-c", PROBE, *map(str, paths)]
    task = admin.create_task(name=unique("isolation"), task_type="common_task", config={"command": command})
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger")["execution_id"]
    run = admin.wait_execution(task["id"], execution_id)
    assert run["status"] == "success", run["error_message"]
    lines = run["result"]["stdout_tail"].strip().splitlines()
    probe: dict[str, object] = json.loads(lines[-1])
    return probe


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs a system python3")
def test_a_command_sees_no_service_token_and_cannot_read_the_secrets(stack: Stack) -> None:
    data = stack.data_dir
    secrets = [data / "jwt_signing_key.pem", data / "admin_password.txt", data / "scheduler.db"]
    secrets = [path for path in secrets if path.exists()]
    assert secrets, f"no secrets found in {data}"
    probe = run_probe(stack, *secrets)
    assert probe["token"] is None
    assert probe["secret_env"] == []
    if os.geteuid() == 0:
        assert probe["uid"] != 0 and probe["user"] == "nobody"
        assert probe["groups"] in ([], [65534])  # no supplementary group of the executor
        files = probe["files"]
        assert isinstance(files, dict) and set(files.values()) == {"denied"}, files


@pytest.mark.skipif(os.geteuid() != 0, reason="only root drops commands to the job user")
def test_a_root_executor_refuses_to_start_when_the_job_user_cannot_enter_its_work_dir(
    tmp_path: Path,
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "ZQ_SERVICE_TOKEN": "x" * 32,
        "ZQ_EXECUTOR_PORT": "0",
        "ZQ_EXECUTOR_WORKDIR": str(private),
    }
    started = subprocess.run(
        [sys.executable, "-m", "services.executor"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2
    assert f"ZQ_JOB_USER nobody cannot enter ZQ_EXECUTOR_WORKDIR {private}" in started.stdout + started.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root drops commands to the job user")
def test_a_root_executor_refuses_root_as_the_job_user(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ZQ_SERVICE_TOKEN": "x" * 32,
        "ZQ_EXECUTOR_PORT": "0",
        "ZQ_JOB_USER": "root",
    }
    started = subprocess.run(
        [sys.executable, "-m", "services.executor"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2
    assert "is root: commands must run unprivileged" in started.stdout + started.stderr

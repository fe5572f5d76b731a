"""Integration fixtures: the real processes (registry, scheduler, executors, Envoy) on free ports,
once per backend (SQLite and PostgreSQL) per test module.

Every service runs with the loop watchdog (`ZQ_SLOW_CALLBACK_MS`, services/common/loop_watchdog.py): a
callback that holds an event loop for 100 ms or more is logged, and `stop_and_check` fails the
module at teardown, printing those lines. Modules that start their own stacks use `stack_env` and
`stop_and_check` too.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import Stack, StackConfig
from tests.conftest import BACKENDS, database_url
from tests.integration.api import Api

ADMIN_PASSWORD = "admin-" + secrets.token_hex(6)
USER_PASSWORD = "user-" + secrets.token_hex(6)


SLOW_CALLBACK_MS = 100


def stack_env(**env: str) -> dict[str, str]:
    """The environment every integration stack gets: the admin's password and the loop watchdog."""
    return {"ZQ_ADMIN_PASSWORD": ADMIN_PASSWORD, "ZQ_SLOW_CALLBACK_MS": str(SLOW_CALLBACK_MS), **env}


def slow_callbacks(stack: Stack) -> list[str]:
    """The watchdog's lines in the stack's service logs (`<data_dir>/logs/<name>.log`)."""
    found = []
    for path in sorted((stack.data_dir / "logs").glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if "slow_callback" not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == "slow_callback":
                found.append(f"{path.name}: {line}")
    return found


def stop_and_check(*stacks: Stack) -> None:
    """Stops the stacks, then fails if any of their services held its event loop too long."""
    for stack in stacks:
        stack.stop()
    found = [line for stack in stacks for line in slow_callbacks(stack)]
    if found:
        pytest.fail(
            f"callbacks held an event loop for {SLOW_CALLBACK_MS} ms or more:\n" + "\n".join(found),
            pytrace=False,
        )


def start_stack(tmp: Path, url: str, **options: object) -> Stack:
    config = StackConfig.build(
        tmp / "stack",
        free_ports=True,
        database_url=url,
        extra_env=stack_env(**options.pop("extra_env", {})),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )
    stack = Stack(config)
    stack.start()
    return stack


def stack_on_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, prefix: str, **options: object
) -> Iterator[Stack]:
    """A stack on the backend of `request.param` (start_stack options), checked when stopped."""
    tmp = tmp_path_factory.mktemp(f"{prefix}-{request.param}")
    with database_url(request.param, str(tmp)) as url:
        stack = start_stack(tmp, url, **options)
        try:
            yield stack
        finally:
            stop_and_check(stack)


@pytest.fixture
def job_file() -> Iterator[Path]:
    """A file in a directory of its own that jobs write to (also as the job user of a root
    executor): what they leave there shows what ran, and how often."""
    directory = Path(tempfile.mkdtemp(prefix="zq-jobs-"))
    directory.chmod(0o777)
    yield directory / "jobs.log"
    shutil.rmtree(directory)


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole stack with two executors; module-scoped, so tests create their own tasks."""
    yield from stack_on_backend(request, tmp_path_factory, "stack", executors=2)


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Api:
    return Api.login(stack.http_url, "admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def operator(stack: Stack, admin: Api) -> Api:
    admin.ok(
        "POST", "/api/v1/auth/users", json={"username": "op", "password": USER_PASSWORD, "role": "operator"}
    )
    return Api.login(stack.http_url, "op", USER_PASSWORD)


@pytest.fixture(scope="module")
def viewer(stack: Stack, admin: Api) -> Api:
    admin.ok(
        "POST", "/api/v1/auth/users", json={"username": "viewer", "password": USER_PASSWORD, "role": "viewer"}
    )
    return Api.login(stack.http_url, "viewer", USER_PASSWORD)


@pytest.fixture(scope="module")
def anonymous(stack: Stack) -> Api:
    return Api(stack.http_url)

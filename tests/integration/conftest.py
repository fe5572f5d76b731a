"""Integration fixtures: the real processes (registry, scheduler, executors, Envoy) on free ports,
once per backend (SQLite and PostgreSQL) per test module."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.stack import Stack
from tests.conftest import BACKENDS, database_url
from tests.integration.api import Api

ADMIN_PASSWORD = "admin-" + secrets.token_hex(6)
USER_PASSWORD = "user-" + secrets.token_hex(6)


def start_stack(tmp: Path, url: str, **options: object) -> Stack:
    stack = Stack(
        tmp / "stack",
        free_ports=True,
        database_url=url,
        extra_env={"ZQ_ADMIN_PASSWORD": ADMIN_PASSWORD, **options.pop("extra_env", {})},  # type: ignore[dict-item]
        **options,  # type: ignore[arg-type]
    )
    stack.start()
    return stack


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole stack with two executors; module-scoped, so tests create their own tasks."""
    tmp = tmp_path_factory.mktemp(f"stack-{request.param}")
    with database_url(request.param, str(tmp)) as url:
        stack = start_stack(tmp, url, executors=2)
        try:
            yield stack
        finally:
            stack.stop()


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

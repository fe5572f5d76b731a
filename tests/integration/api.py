"""A small REST client for the integration tests: everything goes through the real Envoy."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

from tests.waiting import wait_for

PREFIX = "/api/v1/scheduler"


class Api:
    """An httpx client logged in as one user; paths are relative to /api/v1/scheduler."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url
        self.token = token
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=30)

    @classmethod
    def login(cls, base_url: str, username: str, password: str) -> Api:
        response = httpx.post(
            f"{base_url}/api/v1/auth/login", json={"username": username, "password": password}
        )
        response.raise_for_status()
        return cls(base_url, response.json()["access_token"])

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = path if path.startswith("/api/") else PREFIX + path
        return self.http.request(method, url, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a 2xx response; fails the test with the body otherwise."""
        response = self.request(method, path, **kwargs)
        assert response.is_success, f"{method} {path} -> {response.status_code} {response.text}"
        return response.json()

    def create_task(self, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"task_type": "example_task", "config": {"duration_seconds": 0.2, "steps": 2}}
        body.update(fields)
        result: dict[str, Any] = self.ok("POST", "/tasks", json=body)
        return result

    def executions(self, task_id: int, **params: Any) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.ok("GET", f"/tasks/{task_id}/executions", params=params)[
            "executions"
        ]
        return result

    def wait_execution(self, task_id: int, execution_id: int, timeout: float = 30) -> dict[str, Any]:
        """Polls until the execution is finished; returns it."""
        execution: dict[str, Any] = wait_for(
            lambda: finished(self.ok("GET", f"/tasks/{task_id}/executions/{execution_id}")),
            timeout,
            f"execution {execution_id} to finish",
        )
        return execution


def finished(execution: dict[str, Any]) -> dict[str, Any] | None:
    return execution if execution["status"] not in ("pending", "running") else None


def unique(prefix: str = "t") -> str:
    """A task or user name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def error(
    response: httpx.Response,
    status: int,
    detail: str | None = None,
    contains: str | None = None,
    reason: str | None = None,
) -> str:
    """Asserts an error response in the API's shape ({"detail": ..., "reason": ...}) and returns its
    detail. Every error carries a machine-readable reason; `reason` checks which one."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"], body
    assert isinstance(body.get("reason"), str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", body["reason"]), body
    if reason is not None:
        assert body["reason"] == reason, body
    if detail is not None:
        assert body["detail"] == detail, body
    if contains is not None:
        assert contains in body["detail"], body
    message: str = body["detail"]
    return message


RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def parse_time(text: str) -> datetime:
    """An API time: RFC 3339 in UTC with a Z."""
    assert RFC3339_UTC.match(text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_shape(
    body: dict[str, Any],
    fields: Mapping[str, type | tuple[type, ...]],
    optional_times: set[str],
    times: Iterable[str],
) -> dict[str, Any]:
    """Every field present with its JSON type (ids are numbers, never strings or bools); unset times
    may be absent; every time is RFC 3339 UTC."""
    missing = set(fields) - set(body)
    assert not missing, f"missing fields {missing}: {body}"
    extra = set(body) - set(fields) - optional_times
    assert not extra, f"unexpected fields {extra}: {body}"
    for name, kind in fields.items():
        assert isinstance(body[name], kind), f"{name}={body[name]!r} is not {kind}"
        if kind is int:
            assert not isinstance(body[name], bool), name
    for name in (*times, *optional_times & set(body)):
        parse_time(body[name])
    return body

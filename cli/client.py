"""The gateway's REST API as the CLI uses it, and where `zq login` keeps its token.

Errors of the API are ``{"detail", "reason"}`` (docs/contract.md); `ApiError` carries both, and the
status, so the CLI prints the reason and exits 1. A gateway that cannot be reached is an ApiError
too (reason UNREACHABLE): for a script, both mean "the call did not happen".
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx

PREFIX = "/api/v1/scheduler"
CREDENTIALS = "credentials.json"
TIMEOUT = httpx.Timeout(30.0, read=300.0)  # an import of many tasks answers after its transaction


class ApiError(Exception):
    def __init__(self, status: int, detail: str, reason: str) -> None:
        super().__init__(f"{detail} ({reason}, HTTP {status})" if status else f"{detail} ({reason})")
        self.status = status
        self.detail = detail
        self.reason = reason


class NotLoggedIn(click.UsageError):
    def __init__(self) -> None:
        super().__init__("not logged in: run 'zq login --url URL --username NAME' first")


def config_dir() -> Path:
    """Where the token lives: ZQ_CONFIG_DIR, else the user's config dir (~/.config/zq on Linux)."""
    return Path(os.environ.get("ZQ_CONFIG_DIR") or click.get_app_dir("zq"))


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str

    def save(self) -> Path:
        """Written 0600 from the start (never readable by others, not even briefly)."""
        directory = config_dir()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / CREDENTIALS
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump({"url": self.url, "token": self.token}, file)
        os.chmod(path, 0o600)  # an older file keeps its mode through O_CREAT
        return path

    @classmethod
    def load(cls) -> Credentials:
        try:
            data = json.loads((config_dir() / CREDENTIALS).read_text(encoding="utf-8"))
            return cls(url=str(data["url"]), token=str(data["token"]))
        except (OSError, ValueError, KeyError, TypeError):
            raise NotLoggedIn() from None


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        detail, reason = str(body.get("detail") or body.get("message")), str(body.get("reason") or "")
    except (ValueError, AttributeError):
        detail, reason = response.text.strip() or response.reason_phrase, ""
    return ApiError(response.status_code, detail, reason or f"HTTP_{response.status_code}")


def login(url: str, username: str, password: str) -> Credentials:
    url = url.rstrip("/")
    try:
        response = httpx.post(
            f"{url}/api/v1/auth/login", json={"username": username, "password": password}, timeout=TIMEOUT
        )
    except httpx.HTTPError as exc:
        raise ApiError(0, f"cannot reach {url}: {exc}", "UNREACHABLE") from None
    if response.is_error:
        raise _error(response)
    return Credentials(url=url, token=str(response.json()["access_token"]))


class Api:
    """Calls relative to /api/v1/scheduler with the stored token."""

    def __init__(self, credentials: Credentials) -> None:
        self.url = credentials.url
        self.http = httpx.Client(
            base_url=credentials.url,
            headers={"Authorization": f"Bearer {credentials.token}"},
            timeout=TIMEOUT,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, PREFIX + path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach {self.url}: {exc}", "UNREACHABLE") from None
        if response.is_error:
            raise _error(response)
        return response.json() if response.content else {}

    def events(self, path: str) -> Iterator[dict[str, Any]]:
        """A server-sent event stream (the transcoder's `data: {json}` lines), event by event."""
        try:
            with self.http.stream("GET", PREFIX + path, timeout=httpx.Timeout(30.0, read=None)) as response:
                if response.is_error:
                    response.read()
                    raise _error(response)
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        yield json.loads(line[len("data:") :])
        except httpx.HTTPError as exc:
            raise ApiError(0, f"stream from {self.url} broke: {exc}", "UNREACHABLE") from None

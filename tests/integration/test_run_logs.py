"""Every run has a log (issue 12): a command's output byte for byte, a failing plugin's traceback,
the framework's own lines, the cap keeping head and tail; read in pages or followed live over SSE.
Real processes on each backend, through Envoy."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack import Stack
from stack.config import GEN, ROOT
from tests.conftest import BACKENDS, database_url
from tests.integration.api import Api, error, unique
from tests.integration.conftest import ADMIN_PASSWORD, USER_PASSWORD, start_stack, stop_and_check

STAMP = 24  # "2026-12-03T14:44:01.123Z"

PLUGIN = """
import logging

log = logging.getLogger("zq_log_test_plugin")


def explode(config, progress):
    log.info("about to explode with %s", config["value"])
    print("printed by the plugin")
    return _deeper(config["value"])


def _deeper(value):
    raise ValueError(f"plugin exploded on {value}")
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A task_action plugin installed the way plugins are: a module and its entry point."""
    directory = tmp_path_factory.mktemp("plugins")
    (directory / "zq_log_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = directory / "zq_log_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zq-log-test-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[zquant_scheduler.task_actions]\nexplode = zq_log_test_plugin:explode\n"
    )
    directory.chmod(0o755)
    return directory


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, plugin_path: Path
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"logs-{request.param}")
    pythonpath = os.pathsep.join([str(ROOT), str(GEN), str(plugin_path)])
    with database_url(request.param, str(tmp)) as url:
        stack = start_stack(tmp, url, executors=1, extra_env={"PYTHONPATH": pythonpath})
        try:
            yield stack
        finally:
            stop_and_check(stack)


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Api:
    return Api.login(stack.http_url, "admin", ADMIN_PASSWORD)


def run_once(admin: Api, config: dict[str, Any], task_type: str = "common_task") -> dict[str, Any]:
    task = admin.create_task(name=unique("log"), task_type=task_type, config=config, max_retries=0)
    execution = admin.ok("POST", f"/tasks/{task['id']}/trigger", json={})
    execution_id = execution.get("execution_id") or execution["id"]
    return admin.wait_execution(task["id"], execution_id, timeout=60)


def whole_log(admin: Api, execution_id: int, limit: int = 0) -> str:
    """The log read page by page, as a client would."""
    text, offset = "", 0
    while True:
        params = {"offset": offset, **({"limit": limit} if limit else {})}
        page = admin.ok("GET", f"/executions/{execution_id}/log", params=params)
        text += str(page["text"])
        if int(page["next_offset"]) == offset:
            assert page["complete"]
            return text
        offset = int(page["next_offset"])


def stream_lines(log: str, stream: str) -> list[str]:
    """The text of the log's lines of one stream."""
    marker = f" {stream} "
    return [line[STAMP + len(marker) :] for line in log.splitlines() if line[STAMP:].startswith(marker)]


PRINTER = """
import sys
for i in range(20000):
    print(f"line {i} 数据 {'x' * (i % 50)}")
    if i % 1000 == 0:
        print(f"warning {i}", file=sys.stderr)
"""


def test_a_commands_output_is_stored_line_by_line_byte_for_byte(admin: Api) -> None:
    run = run_once(admin, {"command": ["/usr/bin/python3", "-c", PRINTER]})
    assert run["status"] == "success", run["error_message"]
    log = whole_log(admin, run["id"], limit=100_000)
    expected = [f"line {i} 数据 {'x' * (i % 50)}" for i in range(20000)]
    assert stream_lines(log, "stdout") == expected
    assert stream_lines(log, "stderr") == [f"warning {i}" for i in range(0, 20000, 1000)]
    system = stream_lines(log, "system")
    assert any("attempt 1" in line for line in system)  # claimed by, executor, attempt
    assert system[-1].startswith("执行结束: success")


def test_a_failing_plugins_traceback_records_and_prints_are_in_its_log(admin: Api) -> None:
    run = run_once(admin, {"task_action": "explode", "value": "42"})
    assert run["status"] == "failed"
    log = whole_log(admin, run["id"])
    assert "INFO zq_log_test_plugin: about to explode with 42" in stream_lines(log, "log")
    assert "printed by the plugin" in stream_lines(log, "stdout")
    traceback = "\n".join(stream_lines(log, "stderr"))
    assert "Traceback (most recent call last):" in traceback
    assert "in _deeper" in traceback
    assert "ValueError: plugin exploded on 42" in traceback


def test_a_log_over_its_cap_keeps_head_and_tail_and_says_how_much_was_dropped(admin: Api) -> None:
    script = "for i in range(20000): print(f'{i:08d}' + 'y' * 91)"
    run = run_once(admin, {"command": ["/usr/bin/python3", "-c", script], "log_max_bytes": 262144})
    assert run["status"] == "success", run["error_message"]
    log = whole_log(admin, run["id"])
    assert len(log.encode()) < 262144 + 4096  # the cap, plus the framework's few lines
    printed = stream_lines(log, "stdout")
    assert printed[0] == "00000000" + "y" * 91
    assert printed[-1] == "00019999" + "y" * 91
    numbers = [int(line[:8]) for line in printed]
    assert numbers == sorted(numbers) and len(numbers) < 20000
    head_end = next(i for i, (a, b) in enumerate(zip(numbers, numbers[1:], strict=False)) if b != a + 1)
    assert numbers[head_end + 1 :] == list(range(numbers[head_end + 1], 20000))  # a whole tail
    assert any("bytes dropped" in line for line in stream_lines(log, "system"))


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield json.loads(line[len("data: ") :])


def test_the_log_stream_follows_a_run_live_until_it_ends_and_resumes_from_last_event_id(
    admin: Api,
) -> None:
    script = "import time\nfor i in range(30):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.1)"
    task = admin.create_task(
        name=unique("live"), task_type="common_task", config={"command": ["/usr/bin/python3", "-c", script]}
    )
    execution = admin.ok("POST", f"/tasks/{task['id']}/trigger", json={})
    execution_id = execution.get("execution_id") or execution["id"]
    path = f"/api/v1/scheduler/executions/{execution_id}/log/stream"
    received, kinds = "", []
    with admin.http.stream("GET", path, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in sse_events(response):
            kinds.append(event["event_type"])
            if event["event_type"] == "log":
                assert int(event["offset"]) == len(received.encode())
                received += event["text"]
            if event["event_type"] == "end":
                break
    assert kinds[-1] == "end" and kinds.count("log") >= 2  # arrived while the command ran
    assert stream_lines(received, "stdout") == [f"tick {i}" for i in range(30)]
    assert received == whole_log(admin, execution_id)

    resume_at = received.index(" stdout tick 20")
    resume_at = received.rindex("\n", 0, resume_at) + 1
    headers = {"Last-Event-ID": str(len(received[:resume_at].encode()))}
    with admin.http.stream("GET", path, headers=headers, timeout=60) as response:
        resumed = "".join(e["text"] for e in sse_events(response) if e["event_type"] == "log")
    assert resumed == received[resume_at:]


def test_every_role_reads_logs_and_bad_requests_are_refused(admin: Api, stack: Stack) -> None:
    run = run_once(admin, {"task_action": "example_task", "duration_seconds": 0.2, "steps": 2})
    name = unique("viewer")
    account = {"username": name, "password": USER_PASSWORD, "role": "viewer"}
    admin.ok("POST", "/api/v1/auth/users", json=account)
    viewer = Api.login(stack.http_url, name, USER_PASSWORD)
    assert "步骤 2/2 处理完成" in stream_lines(whole_log(viewer, run["id"]), "stdout")
    error(admin.get("/executions/99999999/log"), 404, reason="EXECUTION_NOT_FOUND")
    error(admin.get(f"/executions/{run['id']}/log", params={"offset": -1}), 400, reason="INVALID_ARGUMENT")
    assert Api(stack.http_url).get(f"/executions/{run['id']}/log").status_code == 401
    too_small = {"command": ["true"], "log_max_bytes": 10}
    body = {"name": unique("cap"), "task_type": "common_task", "config": too_small}
    error(admin.post("/tasks", json=body), 400, contains="log_max_bytes")


def test_the_scheduler_says_it_started_in_its_service_log(stack: Stack) -> None:
    logs = [path.read_text(errors="replace") for path in stack.config.logs_dir.glob("scheduler*.log")]
    assert logs and all("Scheduler started" in text for text in logs)


def test_a_failed_runs_log_says_when_its_retry_runs_and_a_timeout_is_logged(admin: Api) -> None:
    config = {"command": ["/usr/bin/python3", "-c", "import time; time.sleep(30)"]}
    task = admin.create_task(
        name=unique("retry"),
        task_type="common_task",
        config=config,
        max_retries=1,
        retry_interval=1,
        timeout_seconds=1,
    )
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger", json={})["execution_id"]
    run = admin.wait_execution(task["id"], execution_id, timeout=60)
    assert run["status"] == "failed"
    system = stream_lines(whole_log(admin, execution_id), "system")
    assert any("timed out after 1 s" in line for line in system)
    assert any("retry 1 scheduled at" in line for line in system)

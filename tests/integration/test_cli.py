"""The `zq` command line, run as a user runs it (a subprocess) against the whole stack through
Envoy, on SQLite and PostgreSQL: a document exported from one installation and imported into a
fresh one means the same tasks and workflows; a dry run changes nothing; a bad document is refused
with the item named; exit codes are 0 done, 1 refused by the API, 2 a usage error."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stack import Stack
from tests.conftest import database_url
from tests.integration.api import Api, unique
from tests.integration.conftest import ADMIN_PASSWORD, USER_PASSWORD, start_stack, stop_and_check
from tests.waiting import wait_for

ZQ = Path(sys.executable).parent / "zq"


class Zq:
    """`zq` with its own config dir, as one user on one machine."""

    def __init__(self, config_dir: Path) -> None:
        self.env = {**os.environ, "ZQ_CONFIG_DIR": str(config_dir)}
        self.config_dir = config_dir

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ZQ), *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str) -> Any:
        """The JSON a command prints, asserting that it exited 0."""
        done = self("--output", "json", *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def login(self, stack: Stack, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
        done = self("login", "--url", stack.http_url, "--username", username, "--password", password)
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def fresh(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second installation on the same kind of database, with no tasks: registry and Envoy."""
    backend = "sqlite" if stack.config.database_url.startswith("sqlite") else "postgresql"
    tmp = tmp_path_factory.mktemp(f"fresh-{backend}")
    with database_url(backend, str(tmp)) as url:
        other = start_stack(tmp, url, scheduler=False, executors=0, static=False)
        try:
            yield other
        finally:
            stop_and_check(other)


@pytest.fixture(scope="module")
def zq(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Zq:
    tool = Zq(tmp_path_factory.mktemp("zq-config"))
    tool.login(stack)
    return tool


def sub_task(name: str) -> dict[str, Any]:
    return {"name": name, "task_type": "common_task", "interval_seconds": 3600, "config": {"command": "true"}}


def a_document(prefix: str) -> dict[str, Any]:
    first, second = f"{prefix}_fetch", f"{prefix}_report"
    nodes = [{"task": first, "dependencies": []}, {"task": second, "dependencies": [first]}]
    return {
        "version": 1,
        "tasks": [
            {
                "name": f"{prefix}_flow",
                "task_type": "workflow",
                "cron_expression": "0 18 * * 1-5",
                "config": {"workflow_type": "parallel", "tasks": nodes},
            },
            sub_task(first),
            sub_task(second),
        ],
    }


def by_name(items: list[dict[str, Any]], prefix: str) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items if item["name"].startswith(prefix)}


def test_login_keeps_the_token_readable_by_its_owner_only(zq: Zq) -> None:
    mode = stat.S_IMODE((zq.config_dir / "credentials.json").stat().st_mode)
    assert mode == 0o600


def test_an_export_imported_into_a_fresh_installation_round_trips_tasks_and_workflows(
    zq: Zq, fresh: Stack, tmp_path: Path
) -> None:
    prefix = unique("rt")
    source = tmp_path / "doc.yaml"
    source.write_text(json.dumps(a_document(prefix)), encoding="utf-8")  # JSON is YAML too
    created = zq.ok("import", str(source))
    assert (created["created"], created["updated"], created["unchanged"]) == (3, 0, 0)

    exported = tmp_path / "export.yaml"
    done = zq("export", "--file", str(exported))
    assert done.returncode == 0, done.stderr
    assert "exported" in done.stderr  # progress goes to stderr, the document to the file

    elsewhere = Zq(tmp_path / "elsewhere")
    elsewhere.login(fresh)
    imported = elsewhere.ok("import", str(exported))
    assert imported["created"] == len(imported["tasks"]) and imported["updated"] == 0

    here = by_name(zq.ok("export")["tasks"], prefix)
    there = by_name(elsewhere.ok("export")["tasks"], prefix)
    assert there == here and len(there) == 3
    assert there[f"{prefix}_flow"]["config"]["tasks"][1] == {
        "task": f"{prefix}_report",
        "dependencies": [f"{prefix}_fetch"],
    }
    # On the fresh installation the workflow runs the fresh installation's tasks.
    flow_id = next(t["task_id"] for t in imported["tasks"] if t["name"] == f"{prefix}_flow")
    nodes = Api.login(fresh.http_url, "admin", ADMIN_PASSWORD).ok("GET", f"/tasks/{flow_id}/workflow")[
        "tasks"
    ]
    names = {item["name"]: item["task_id"] for item in imported["tasks"]}
    assert [node["id"] for node in nodes] == [names[f"{prefix}_fetch"], names[f"{prefix}_report"]]
    # Importing the same document again changes nothing.
    again = elsewhere.ok("import", str(exported))
    assert again["unchanged"] == len(again["tasks"]) and again["created"] == again["updated"] == 0


def test_a_dry_run_reports_what_would_change_and_changes_nothing(zq: Zq, tmp_path: Path) -> None:
    prefix = unique("dry")
    document = a_document(prefix)
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    preview = zq.ok("import", "--dry-run", str(path))
    assert preview["dry_run"] and preview["created"] == 3
    assert by_name(zq.ok("export")["tasks"], prefix) == {}

    zq.ok("import", str(path))
    document["tasks"][1]["interval_seconds"] = 60
    path.write_text(json.dumps(document), encoding="utf-8")
    preview = zq.ok("import", "--dry-run", str(path))
    actions = {item["name"]: item["action"] for item in preview["tasks"]}
    assert actions == {
        f"{prefix}_flow": "unchanged",
        f"{prefix}_fetch": "updated",
        f"{prefix}_report": "unchanged",
    }
    assert by_name(zq.ok("export")["tasks"], prefix)[f"{prefix}_fetch"]["interval_seconds"] == 3600


def test_a_bad_document_is_refused_with_the_item_named_and_nothing_changes(zq: Zq, tmp_path: Path) -> None:
    prefix = unique("bad")
    document = a_document(prefix)
    document["tasks"][2]["cron_expression"] = "every day"
    document["tasks"][2].pop("interval_seconds")
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    done = zq("import", str(path))
    assert done.returncode == 1
    assert f"tasks[2] ({prefix}_report)" in done.stderr and "CRON_INVALID" in done.stderr
    assert "tasks[0]" not in done.stderr  # the workflow is refused because of its sub-task, named once
    assert by_name(zq.ok("export")["tasks"], prefix) == {}


def test_exit_codes_tell_a_script_what_happened(zq: Zq, tmp_path: Path, stack: Stack, admin: Api) -> None:
    assert zq("tasks", "get", "999999").returncode == 1  # the API said 404
    assert zq("tasks", "get", "not-a-number").returncode == 2
    assert zq("import", str(tmp_path / "missing.json")).returncode == 2
    assert zq("frobnicate").returncode == 2
    assert Zq(tmp_path / "nobody")("tasks", "list").returncode == 2  # not logged in
    wrong = Zq(tmp_path / "wrong")(
        "login", "--url", stack.http_url, "--username", "admin", "--password", "nope"
    )
    assert wrong.returncode == 1

    admin.ok(
        "POST",
        "/api/v1/auth/users",
        json={"username": "cli_viewer", "password": USER_PASSWORD, "role": "viewer"},
    )
    viewer = Zq(tmp_path / "viewer")
    viewer.login(stack, "cli_viewer", USER_PASSWORD)
    assert viewer("--output", "json", "export").returncode == 0  # export needs any role
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(a_document(unique("viewer"))), encoding="utf-8")
    refused = viewer("import", str(path))
    assert refused.returncode == 1 and "403" in refused.stderr


def test_tasks_and_runs_from_the_command_line(zq: Zq, tmp_path: Path) -> None:
    name = unique("cmd")
    path = tmp_path / "task.yaml"
    path.write_text(f"name: {name}\ntask_type: common_task\nconfig:\n  command: 'true'\n", encoding="utf-8")
    task = zq.ok("tasks", "create", "-f", str(path))
    assert task["name"] == name
    listed = zq("tasks", "list", "--name", name)
    assert listed.returncode == 0 and name in listed.stdout and "NAME" in listed.stdout
    assert zq.ok("tasks", "disable", str(task["id"]))["enabled"] is False
    assert zq.ok("tasks", "enable", str(task["id"]))["enabled"] is True
    execution_id = zq.ok("tasks", "trigger", str(task["id"]))["execution_id"]
    watched = zq("runs", "watch", str(task["id"]), str(execution_id))
    assert watched.returncode == 0, watched.stderr
    assert "success" in watched.stdout.splitlines()[-1]
    runs = wait_for(
        lambda: zq.ok("runs", "list", "--task", str(task["id"]))["executions"], 30, "the run listed"
    )
    assert runs[0]["id"] == execution_id and runs[0]["status"] == "success"
    assert zq.ok("tasks", "delete", str(task["id"]))["message"]
    assert zq("tasks", "get", str(task["id"])).returncode == 1

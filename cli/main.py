"""The `zq` commands. Exit codes a script can use: 0 done, 1 the API refused or could not be
reached (the reason is printed on stderr), 2 a usage error (bad option, unreadable file, not logged
in). `zq runs watch` also exits 1 when the run it followed did not succeed.

Every command prints a table for people or, with `--output json`, the API's JSON for scripts.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click

from cli import documents
from cli.client import Api, ApiError, Credentials, login

F = TypeVar("F", bound=Callable[..., Any])
TASK_COLUMNS = ("id", "name", "task_type", "enabled", "paused", "cron_expression", "interval_seconds")
RUN_COLUMNS = ("id", "task_id", "task_name", "status", "trigger", "start_time", "duration_seconds")
IMPORT_COLUMNS = ("name", "action", "task_id")
EXPORT_PAGE = 1000
UPLOAD_CHUNK = 64 * 1024
ENDED = frozenset({"success", "failed", "terminated", "skipped"})


# ---- output -----------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Left-aligned columns, as wide as their widest cell."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)]
    lines = [[column.upper() for column in columns], *cells]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def show(value: Any, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    if click.get_current_context().find_root().params["output"] == "json":
        click.echo(json.dumps(value, ensure_ascii=False, indent=2))
    else:
        click.echo(table(rows, columns))


def api_command(function: F) -> F:
    """Turns an API refusal into its reason on stderr and exit code 1."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ApiError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def api() -> Api:
    return Api(Credentials.load())


def read_value(path: str) -> Any:
    """What a file (or stdin for -) holds; an unreadable file is a usage error (exit 2)."""
    try:
        return documents.read(path, sys.stdin.read() if path == "-" else None)
    except documents.DocumentError as exc:
        raise click.UsageError(str(exc)) from None


def read_document(path: str) -> dict[str, Any]:
    try:
        return documents.document(read_value(path), path)
    except documents.DocumentError as exc:
        raise click.UsageError(str(exc)) from None


# ---- commands ---------------------------------------------------------------------------------


@click.group()
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="How results are printed.",
)
def main(output: str) -> None:
    """ZQuant Scheduler from the command line. Start with `zq login`."""


@main.command("login")
@click.option("--url", required=True, envvar="ZQ_URL", help="The gateway, e.g. http://127.0.0.1:8080.")
@click.option("--username", "-u", required=True, envvar="ZQ_USERNAME")
@click.password_option("--password", "-p", envvar="ZQ_PASSWORD", confirmation_prompt=False)
@api_command
def login_command(url: str, username: str, password: str) -> None:
    """Log in and keep the token (0600) in the user's config dir."""
    path = login(url, username, password).save()
    click.echo(f"logged in to {url.rstrip('/')} as {username}; token saved in {path}", err=True)


@main.group()
def tasks() -> None:
    """List, show, create, trigger, enable, disable and delete tasks."""


@tasks.command("list")
@click.option("--name", default="", help="Only names containing this (case-insensitive).")
@click.option("--type", "task_type", default="", help="Only this task type.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--skip", type=click.IntRange(0), default=0)
@click.option("--all", "include_children", is_flag=True, help="Include workflows' sub-tasks.")
@api_command
def tasks_list(name: str, task_type: str, limit: int, skip: int, include_children: bool) -> None:
    params: dict[str, Any] = {"limit": limit, "skip": skip, "name": name, "task_type": task_type}
    if include_children:
        params["include_children"] = "true"
    page = api().call("GET", "/tasks", params={key: value for key, value in params.items() if value != ""})
    show(page, page["tasks"], TASK_COLUMNS)


@tasks.command("get")
@click.argument("task_id", type=int)
@api_command
def tasks_get(task_id: int) -> None:
    task = api().call("GET", f"/tasks/{task_id}")
    show(task, [task], TASK_COLUMNS)


@tasks.command("create")
@click.option(
    "-f",
    "--file",
    "path",
    required=True,
    help="A task (JSON or YAML object), or a list of them; - for stdin.",
)
@api_command
def tasks_create(path: str) -> None:
    """Create one task, or up to 1,000 in one transaction (all or none)."""
    value = read_value(path)
    if isinstance(value, list):
        created = api().call("POST", "/tasks:batchCreate", json={"tasks": value})["tasks"]
        show(created, created, TASK_COLUMNS)
    elif isinstance(value, dict):
        task = api().call("POST", "/tasks", json=value)
        show(task, [task], TASK_COLUMNS)
    else:
        raise click.UsageError(f"{path}: a task is an object (or a list of objects)")


def _task_action(action: str, help_text: str) -> None:
    @tasks.command(action, help=help_text)
    @click.argument("task_id", type=int)
    @api_command
    def command(task_id: int) -> None:
        result = api().call("POST", f"/tasks/{task_id}/{action}", json={})
        if action == "trigger":
            show(result, [result], ("execution_id", "message"))
        else:
            show(result, [result], TASK_COLUMNS)


_task_action("trigger", "Run the task once now; prints the new run's id.")
_task_action("enable", "Enable the task's schedule.")
_task_action("disable", "Disable the task's schedule (pending retries are cancelled).")


@tasks.command("delete")
@click.argument("task_id", type=int)
@click.option("--force", is_flag=True, help="Even if a workflow references it or a run is active.")
@api_command
def tasks_delete(task_id: int, force: bool) -> None:
    result = api().call("DELETE", f"/tasks/{task_id}", params={"force": "true"} if force else {})
    show(result, [result], ("message",))


@main.group()
def runs() -> None:
    """List runs and follow one until it ends."""


@runs.command("list")
@click.option("--task", "task_id", type=int, default=0, help="Only this task's runs.")
@click.option("--status", default="", help="Only runs with this status.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--skip", type=click.IntRange(0), default=0)
@api_command
def runs_list(task_id: int, status: str, limit: int, skip: int) -> None:
    params: dict[str, Any] = {"limit": limit, "skip": skip}
    if status:
        params["status"] = status
    path = f"/tasks/{task_id}/executions" if task_id else "/executions"
    page = api().call("GET", path, params=params)
    show(page, page["executions"], RUN_COLUMNS)


@runs.command("watch")
@click.argument("task_id", type=int)
@click.argument("execution_id", type=int)
@api_command
def runs_watch(task_id: int, execution_id: int) -> None:
    """Print the run on every change until it ends; exit 1 unless it succeeded."""
    last: dict[str, Any] = {}
    as_json = click.get_current_context().find_root().params["output"] == "json"
    for event in api().events(f"/tasks/{task_id}/executions/{execution_id}/watch"):
        run = event.get("execution") or {}
        if as_json:
            click.echo(json.dumps(event, ensure_ascii=False))
        elif event.get("event_type") != "heartbeat":
            click.echo(
                f"{event.get('event_type')}: run {run.get('id')} {run.get('status')} {run.get('error_message') or ''}".rstrip()
            )
        last = run
        if event.get("event_type") == "end":
            break
    if last.get("status") not in ENDED:
        raise ApiError(0, f"the stream ended before run {execution_id} did", "STREAM_ENDED")
    if last.get("status") != "success":
        sys.exit(1)


@main.command("export")
@click.option("--file", "-f", "path", default="-", help="Where to write; - (default) for stdout.")
@click.option(
    "--format",
    "syntax",
    type=click.Choice(["json", "yaml"]),
    default=None,
    help="Default: from the file name, else JSON.",
)
@api_command
def export_command(path: str, syntax: str | None) -> None:
    """Write every task and workflow as a document another installation can import."""
    client = api()

    def pages() -> Iterator[list[dict[str, Any]]]:
        after_id = 0
        while True:
            page = client.call("GET", "/tasks:export", params={"after_id": after_id, "limit": EXPORT_PAGE})
            yield page["tasks"]
            after_id = page["next_after_id"]
            if not after_id:
                return

    items: list[dict[str, Any]] = []
    for page in pages():
        items.extend(page)
        if path != "-":
            click.echo(f"\rexported {len(items)} tasks", err=True, nl=False)
    if path != "-":
        click.echo("", err=True)
    yaml_syntax = syntax == "yaml" if syntax else (path != "-" and documents.is_yaml(path))
    text = documents.dump({"version": 1, "tasks": items}, yaml_syntax)
    if path == "-":
        click.echo(text, nl=False)
    else:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)


@main.command("import")
@click.argument("path")
@click.option("--dry-run", is_flag=True, help="Only report what would be created, updated or unchanged.")
@api_command
def import_command(path: str, dry_run: bool) -> None:
    """Upsert a document's tasks by name, all or nothing (JSON or YAML; - for stdin)."""
    body = json.dumps(read_document(path), ensure_ascii=False).encode("utf-8")
    show_progress = sys.stderr.isatty() and len(body) > UPLOAD_CHUNK

    def upload() -> Iterator[bytes]:
        with click.progressbar(
            length=len(body), label="uploading", file=sys.stderr, hidden=not show_progress
        ) as bar:
            for start in range(0, len(body), UPLOAD_CHUNK):
                chunk = body[start : start + UPLOAD_CHUNK]
                bar.update(len(chunk))
                yield chunk
        if show_progress:
            click.echo("waiting for the registry to apply it in one transaction...", err=True)

    result = api().call(
        "POST",
        "/tasks:import",
        params={"dry_run": "true"} if dry_run else {},
        content=upload(),
        headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
    )
    show(result, result["tasks"], IMPORT_COLUMNS)
    verb = "would be" if dry_run else "were"
    click.echo(
        f"{result['created']} {verb} created, {result['updated']} updated, {result['unchanged']} unchanged",
        err=True,
    )


if __name__ == "__main__":
    main()

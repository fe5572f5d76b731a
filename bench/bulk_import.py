"""Bulk import (issue 16: >= 5,000 tasks/s on PostgreSQL): the store's import of N tasks
(`store/transfer.run_import`, what `POST /tasks:import` and `ImportTasks` run in the registry's
worker thread) against the floor of the same rows, on PostgreSQL and on SQLite, in one launcher.

- baseline: the same task rows written with one bare Core executemany in one transaction (no
  checks): what the database takes;
- ours: `run_import` of the documents (every rule of a create checked, names looked up, new tasks
  inserted in bulk), documents of `--document` items (the most one import takes is 20,000).

Each run starts on an empty task table; baseline and ours alternate A-B-A-B (`--pairs`, default 3).
Printed per backend: tasks/s of each, the median ratio ours / baseline of the times, and CPU per
task (this process, plus PostgreSQL's server processes on that backend). The cold start, memory
and list figures at N tasks are `bench/scale.py`'s (it seeds through the same import, end to end).

    python -m bench.bulk_import [--tasks 100000] [--document 20000] [--pairs 3] [--backend ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert

from bench.common import calibrate, postgres_cpu_seconds, print_calibration
from bench.seed import seed_tasks
from services.registry.db import Database, migrate
from services.registry.models import TaskRow
from services.registry.store import task_rules, transfer
from services.registry.store.tasks import TASKS
from tests.conftest import database_url

DEFAULT_TASKS = 100_000
DEFAULT_DOCUMENT = transfer.MAX_IMPORT
GOAL = 5000  # tasks/s on PostgreSQL


def empty(db: Database) -> None:
    with db.session() as session:
        session.execute(delete(TaskRow))


def bare_insert(db: Database, items: list[dict[str, Any]]) -> Callable[[], None]:
    """The floor: the rows a create makes (built here, outside the timing), in one executemany,
    unchecked."""
    now = datetime.now(UTC)
    with db.session() as session:
        rows = [task_rules.new_task(session, item, "bench", "UTC", now) for item in items]
    table = TASKS
    keys = [column.key for column in table.columns if column.key != "id"]
    values = [{key: vars(row).get(key) for key in keys} for row in rows]

    def write() -> None:
        with db.session() as session:
            session.execute(insert(table), values)

    return write


def run_import(db: Database, items: list[dict[str, Any]], document: int) -> Callable[[], None]:
    def write() -> None:
        now = datetime.now(UTC)
        for start in range(0, len(items), document):
            transfer.run_import(db, items[start : start + document], "bench", "UTC", now, dry_run=False)

    return write


def measure(db: Database, write: Callable[[], None], postgres: bool) -> tuple[float, float]:
    """(seconds, CPU seconds of this process and PostgreSQL) of one write into an empty table."""
    empty(db)
    cpu = time.process_time() + (postgres_cpu_seconds() if postgres else 0.0)
    started = time.perf_counter()
    write()
    seconds = time.perf_counter() - started
    return seconds, time.process_time() + (postgres_cpu_seconds() if postgres else 0.0) - cpu


def run(backend: str, count: int, document: int, pairs: int) -> None:
    items = seed_tasks(count, "import")
    with tempfile.TemporaryDirectory() as tmp, database_url(backend, tmp) as url:
        db = Database(url)
        migrate(db.engine)
        postgres = backend == "postgresql"
        floor = bare_insert(db, items)
        ours = run_import(db, items, document)
        results = [(measure(db, floor, postgres), measure(db, ours, postgres)) for _ in range(pairs)]
        empty(db)
        db.dispose()
    base = statistics.median(seconds for (seconds, _), _ in results)
    mine = statistics.median(seconds for _, (seconds, _) in results)
    base_cpu = statistics.median(cpu for (_, cpu), _ in results)
    mine_cpu = statistics.median(cpu for _, (_, cpu) in results)
    ratio = statistics.median(ours_s / base_s for (base_s, _), (ours_s, _) in results)
    cpu_label = "CPU (this process + PostgreSQL)" if postgres else "CPU"
    goal = f" (goal >= {GOAL:,} on PostgreSQL)" if postgres else ""
    print(f"-- {backend}: {count:,} tasks, documents of {document:,} --")
    print(
        f"  bare executemany: {count / base:,.0f} tasks/s, {cpu_label} {base_cpu / count * 1e6:,.0f} us per task"
    )
    print(
        f"  import:           {count / mine:,.0f} tasks/s{goal}, {cpu_label} {mine_cpu / count * 1e6:,.0f} us per task"
    )
    print(f"  import / bare time: {ratio:.2f} (median of {pairs} pairs)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS)
    parser.add_argument("--document", type=int, default=DEFAULT_DOCUMENT, help="items per import")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    args = parser.parse_args(argv)
    print("== bulk import ==")
    print_calibration(calibrate())
    for backend in ("postgresql", "sqlite"):
        if args.backend in (backend, "both"):
            run(backend, args.tasks, args.document, args.pairs)


if __name__ == "__main__":
    main()

"""After a bulk load on PostgreSQL, the tasks table is vacuumed and analysed once the load goes quiet.

A fresh import of 100,000 tasks leaves the table's visibility map empty and its statistics stale
until autovacuum comes by, a minute or more later. Meanwhile the task list's deep `skip` page, an
index-only scan of the primary key, visits every heap page too: 18 ms instead of 10 at 100,000
tasks, and more than the 30 ms goal at its worst. PostgreSQL's documentation advises ANALYZE after
populating a table; VACUUM also sets the visibility map.

Imports and batch creates report the tasks they added (`bulk_written`, on the event loop). One
`VACUUM (ANALYZE)` runs `QUIET_SECONDS` after the last of them, in a worker thread, so a seeding of
many documents costs one pass, and none runs while the load goes on. SQLite needs none: its reads
do not depend on a visibility map, and its planner has no statistics to refresh here.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text

from services.registry.db import Database
from services.registry.models import TaskRow

log = logging.getLogger(__name__)

QUIET_SECONDS = 2.0
# Fewer new tasks than this are left to autovacuum.
MIN_TASKS = 1000


class BulkUpkeep:
    def __init__(
        self, db: Database, quiet_seconds: float = QUIET_SECONDS, min_tasks: int = MIN_TASKS
    ) -> None:
        self._db = db
        self._quiet_seconds = quiet_seconds
        self._min_tasks = min_tasks
        self._added = 0  # tasks added since the last pass began
        self._timer: asyncio.TimerHandle | None = None
        self._pass: asyncio.Task[None] | None = None
        self.passes = 0

    def bulk_written(self, tasks_added: int) -> None:
        """Tasks were added in bulk (committed): a pass follows once such writes go quiet."""
        if self._db.is_sqlite or tasks_added <= 0:
            return
        self._added += tasks_added
        if self._added < self._min_tasks:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._quiet_seconds, self._start_pass)

    async def settled(self) -> None:
        """Waits for the pass under way, if any (what a test waits for)."""
        if self._pass is not None:
            await asyncio.wait({self._pass})

    def _start_pass(self) -> None:
        self._timer = None
        if self._pass is not None and not self._pass.done():  # one at a time: the next follows it
            self._timer = asyncio.get_running_loop().call_later(self._quiet_seconds, self._start_pass)
            return
        self._added = 0
        self._pass = asyncio.get_running_loop().create_task(self._run_pass())

    async def _run_pass(self) -> None:
        try:
            await asyncio.to_thread(self._vacuum)
            self.passes += 1
        except Exception:  # autovacuum still comes by; nothing depends on this pass
            log.exception("vacuuming the tasks table after a bulk load failed")

    def _vacuum(self) -> None:
        # VACUUM cannot run inside a transaction block.
        with self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"VACUUM (ANALYZE) {TaskRow.__tablename__}"))

"""Two transactions at once on PostgreSQL, made deterministic: one is held open while the other runs
in a thread, until PostgreSQL shows the second waiting for a lock on a given table; then the first
commits. A check-then-write that locks nothing does not wait at all, and the wait fails the test.
The `pg` fixture (conftest.py) is a migrated PostgreSQL schema of the module's own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common.errors import DomainError
from services.registry.db import Database


class InThread:
    """`work` in a transaction of its own in another thread; `error` is the DomainError it raised."""

    def __init__(self, db: Database, work: Callable[[Session], object]) -> None:
        self.error: DomainError | None = None

        def run() -> None:
            try:
                with db.session() as session:
                    work(session)
            except DomainError as exc:
                self.error = exc

        self._thread = threading.Thread(target=run)
        self._thread.start()

    def join(self) -> None:
        self._thread.join(30)
        assert not self._thread.is_alive()


def wait_until_waiting_on(db: Database, table: str) -> None:
    """Until a statement naming `table` waits for a lock (other tests may share the server)."""
    waiting = text(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE NOT l.granted AND a.query LIKE :pattern"
    )
    deadline = time.monotonic() + 10
    with db.engine.connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute(waiting, {"pattern": f"%{table}%"}).scalar_one():
                return
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError(f"the second transaction never waited for the first (on {table})")

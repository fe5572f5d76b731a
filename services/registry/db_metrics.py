"""Database metrics: every statement's duration by kind, and the connection pool's use.

Statements run in worker threads (`Database.run`), so the two cursor events below run there too and
cost a clock read and a histogram step each. The pool gauges are read when Prometheus scrapes.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, event

from services.common.metrics import DB_POOL_CONNECTIONS, DB_QUERY_DURATION

_STARTED_KEY = "zq_statement_started"
_OPERATIONS = frozenset({"select", "insert", "update", "delete"})


def operation_of(statement: str) -> str:
    """The `operation` label: the statement's leading keyword when it is one of the four, else other."""
    word = statement.lstrip()[:6].lower()
    return word if word in _OPERATIONS else "other"


def instrument(engine: Engine) -> None:
    """Times `engine`'s statements and exports its pool (the newest instrumented engine's pool)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _started(conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
        # One statement at a time per connection: a single slot, overwritten, never leaks on errors.
        conn.info[_STARTED_KEY] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _ended(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
        started = conn.info.pop(_STARTED_KEY, None)
        if started is not None:
            DB_QUERY_DURATION.labels(operation_of(statement)).observe(time.perf_counter() - started)

    pool: Any = engine.pool
    # QueuePool (PostgreSQL, SQLite files) counts its connections; other pools report none.
    for state, reading in (("in_use", "checkedout"), ("idle", "checkedin"), ("size", "size")):
        count = getattr(pool, reading, None)
        if callable(count):
            DB_POOL_CONNECTIONS.labels(state).set_function(count)

"""The data-sync tables in the target database: SQLAlchemy Core, created by the job if missing.

The target is the scheduler's own database by default (the executor's ``ZQ_DATA_SYNC_URL``, else
``ZQ_DATABASE_URL``), or a task's ``target_url``. These tables are the job's, not the registry's:
no migration owns them, ``create_all`` makes them idempotently on every run (``checkfirst``).

- ``zq_data_stocks`` (symbol): the stock list.
- ``zq_data_daily_bars`` (symbol, trade_date): unadjusted daily bars.
- ``zq_data_trading_sessions`` (calendar, session_date): a calendar's sessions.
- ``zq_data_sync_checkpoints`` (task_id, logical_date, symbol): how far a whole-market sync got.
  A symbol is ``fetching`` (``fetches`` counted up) from just before its provider call and
  ``done`` in the same transaction as its bars, so a run killed at any point leaves either a
  symbol's bars and its ``done`` together or neither; a retry of the same logical date skips the
  ``done`` ones.

Writes are upserts keyed by those columns (``INSERT ... ON CONFLICT DO UPDATE`` on SQLite and
PostgreSQL; an update-then-insert per row elsewhere), so a re-run of a day rewrites the same rows.
Every function blocks: the job calls them from a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    create_engine,
    delete,
    event,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from services.common.db_url import normalize_url
from services.executor.data_sync.providers import DailyBar, Stock

metadata = MetaData()

stocks = Table(
    "zq_data_stocks",
    metadata,
    Column("symbol", String(16), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("exchange", String(8), nullable=False),
    Column("list_date", Date, nullable=True),
    Column("provider", String(32), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

daily_bars = Table(
    "zq_data_daily_bars",
    metadata,
    Column("symbol", String(16), primary_key=True),
    Column("trade_date", Date, primary_key=True),
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("volume", Float, nullable=False),
    Column("amount", Float, nullable=False),
    Column("provider", String(32), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

trading_sessions = Table(
    "zq_data_trading_sessions",
    metadata,
    Column("calendar", String(32), primary_key=True),
    Column("session_date", Date, primary_key=True),
    Column("source", String(32), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

checkpoints = Table(
    "zq_data_sync_checkpoints",
    metadata,
    Column("task_id", BigInteger, primary_key=True, autoincrement=False),
    Column("logical_date", Date, primary_key=True),
    Column("symbol", String(16), primary_key=True),
    # fetching | done | failed
    Column("status", String(16), nullable=False),
    # Provider calls made for this symbol and date (a resumed run does not call again for done ones).
    Column("fetches", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("execution_id", BigInteger, nullable=False),
    Column("error", String(500), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

FETCHING, DONE, FAILED = "fetching", "done", "failed"
# A task's checkpoints older than this (by logical date) are dropped after its next complete run:
# the table holds what a retry or rerun of a recent day needs, not one row per symbol forever.
CHECKPOINT_KEEP_DAYS = 31
_BATCH = 1000


def open_target(url: str) -> Engine:
    """An engine on the target with its tables created (blocks)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        # The target may be the registry's own SQLite file, written by it at the same time.
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    else:
        engine = create_engine(url, pool_size=2, max_overflow=2, pool_pre_ping=True)
    metadata.create_all(engine, checkfirst=True)
    return engine


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Inserts `rows`, or updates the row with the same primary key; returns how many were written."""
    if not rows:
        return 0
    keys = [column.name for column in table.primary_key.columns]
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = sqlite.insert(table) if dialect == "sqlite" else postgresql.insert(table)
        values = {
            column.name: insert.excluded[column.name] for column in table.columns if column.name not in keys
        }
        statement = insert.on_conflict_do_update(index_elements=keys, set_=values)
        for start in range(0, len(rows), _BATCH):
            conn.execute(statement, list(rows[start : start + _BATCH]))
        return len(rows)
    # Any other database: per row, within the caller's transaction.
    for row in rows:
        match = and_(*(table.c[key] == row[key] for key in keys))
        changed = conn.execute(update(table).where(match).values(row)).rowcount
        if not changed:
            conn.execute(table.insert().values(row))
    return len(rows)


def _now() -> datetime:
    return datetime.now(UTC)


def stock_rows(found: Iterable[Stock], provider: str) -> list[dict[str, Any]]:
    now = _now()
    return [
        {
            "symbol": stock.symbol,
            "name": stock.name[:64],
            "exchange": stock.exchange,
            "list_date": stock.list_date,
            "provider": provider,
            "updated_at": now,
        }
        for stock in found
    ]


def bar_rows(bars: Iterable[DailyBar], provider: str) -> list[dict[str, Any]]:
    now = _now()
    return [
        {
            "symbol": bar.symbol,
            "trade_date": bar.trade_date,
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
            "amount": bar.amount,
            "provider": provider,
            "updated_at": now,
        }
        for bar in bars
    ]


def replace_sessions(
    conn: Connection, calendar: str, start: date, end: date, days: Iterable[date], source: str
) -> int:
    """The calendar's sessions from `start` to `end` become exactly `days` (a day that stopped being
    a session, an ad-hoc closure, is removed); returns how many are stored in the range."""
    sessions = sorted(set(days))
    gone = [trading_sessions.c.calendar == calendar, trading_sessions.c.session_date.between(start, end)]
    if sessions:
        gone.append(trading_sessions.c.session_date.not_in(sessions))
    conn.execute(delete(trading_sessions).where(*gone))
    now = _now()
    return upsert(
        conn,
        trading_sessions,
        [
            {"calendar": calendar, "session_date": day, "source": source, "updated_at": now}
            for day in sessions
        ],
    )


def done_symbols(conn: Connection, task_id: int, logical_date: date) -> set[str]:
    rows = conn.execute(
        select(checkpoints.c.symbol).where(
            checkpoints.c.task_id == task_id,
            checkpoints.c.logical_date == logical_date,
            checkpoints.c.status == DONE,
        )
    )
    return {row.symbol for row in rows}


def mark(
    conn: Connection,
    task_id: int,
    logical_date: date,
    symbol: str,
    execution_id: int,
    status: str,
    rows: int = 0,
    error: str = "",
) -> None:
    """Moves a symbol's checkpoint to `status`; `fetching` counts one more provider call."""
    key = {"task_id": task_id, "logical_date": logical_date, "symbol": symbol}
    fetches = conn.execute(
        select(checkpoints.c.fetches).where(*(checkpoints.c[k] == v for k, v in key.items()))
    ).scalar()
    counted = (fetches or 0) + (1 if status == FETCHING else 0)
    upsert(
        conn,
        checkpoints,
        [
            {
                **key,
                "status": status,
                "fetches": counted,
                "rows": rows,
                "execution_id": execution_id,
                "error": error[:500],
                "updated_at": _now(),
            }
        ],
    )


def prune_checkpoints(conn: Connection, task_id: int, logical_date: date) -> int:
    """Drops the task's checkpoints of logical dates over CHECKPOINT_KEEP_DAYS before this one."""
    horizon = logical_date - timedelta(days=CHECKPOINT_KEEP_DAYS)
    gone = conn.execute(
        delete(checkpoints).where(checkpoints.c.task_id == task_id, checkpoints.c.logical_date < horizon)
    )
    return int(gone.rowcount or 0)

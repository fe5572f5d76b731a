"""Engine and sessions. SQLite (WAL) is the embedded default; PostgreSQL via ZQ_DATABASE_URL."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Engine,
    Integer,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from services.common.db_url import normalize_url as normalize_url  # re-exported: callers import it from here
from services.common.errors import Conflict, DomainError, Reason
from services.registry import db_metrics

T = TypeVar("T")
M = TypeVar("M")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the Python side on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def upsert_into(table: Table, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` in the dialect's own form, the one with ON CONFLICT (DO NOTHING or DO
    UPDATE): "postgresql" or "sqlite"."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def draw_ids(session: Session, table: Table, count: int) -> list[int]:
    """PostgreSQL: `count` new ids from the sequence of `table`'s id column, for rows inserted with
    them by one executemany (`among` reads them back)."""
    sequence = func.pg_get_serial_sequence(table.name, "id")
    return list(session.scalars(select(func.nextval(sequence)).select_from(func.generate_series(1, count))))


def among(column: ColumnElement[int], ids: Sequence[int], dialect: str) -> ColumnElement[bool]:
    """`column IN ids`; on PostgreSQL one array parameter (`= ANY`). A statement with a parameter
    per id has a text psycopg parses in Python on every execution (it caches short ones only): on
    the runs' hot path that cost more than the database's work."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=postgresql.ARRAY(Integer)))
    return column.in_(ids)


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # Last in, first out: the connection used last is handed out again, so it is the one known alive.
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_use_lifo=True, pool_recycle=1800)
    _check_idle_connections(engine)
    return engine


# A pooled connection idle for longer than this is checked with a round trip before it is handed
# out. A connection used more recently than that could only have been broken by a database restart
# that took less time, and a transaction begun during the restart would have failed anyway.
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "zq_idle_since"


def _check_idle_connections(engine: Engine) -> None:
    """SQLAlchemy's `pool_pre_ping`, for connections that sat idle only. A ping is a round trip on
    every transaction, a fifth of a short one's time on PostgreSQL (a manual trigger's). A dead
    connection found is replaced (the pool tries another); one broken since its last use, under a
    second ago, fails its transaction, which invalidates the whole pool, as any disconnect does."""

    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since <= PING_AFTER_IDLE_SECONDS:
            return  # new (just connected), or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("a pooled connection died while idle") from exc


# Key of the PostgreSQL advisory lock that serialises migrations (any 64-bit constant of our own).
MIGRATION_LOCK_KEY = 0x5A51_0001


def migrate(engine: Engine) -> None:
    """Brings the schema to the newest Alembic revision (idempotent).

    On PostgreSQL the upgrade runs under a transaction-level advisory lock, so replicas starting at
    once on an empty database take turns: the first creates the schema, the others then find it at
    head (the lock is released when the upgrade's transaction ends; it is per database, so
    migrations of other schemas in the same database wait too, briefly).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class SchemaMismatch(RuntimeError):
    """The database's schema is not the one this release was written for."""


def schema_revisions(engine: Engine) -> tuple[str | None, str]:
    """(the database's Alembic revision, None for an empty database; this release's head)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None  # the migrations exist
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current, head


def check_schema(engine: Engine) -> str:
    """Refuses (SchemaMismatch) a schema this release does not know: one older than its head (run
    the migration step first) or one from a newer release (expand-then-contract means a newer
    release's schema is meant for that release's code; roll the migration back or the code forward).
    Returns the revision."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    scripts = ScriptDirectory.from_config(config)
    current, head = schema_revisions(engine)
    if current == head:
        return head
    if current is None:
        raise SchemaMismatch("the database has no schema: run `python -m services.registry.migrate` first")
    known = {script.revision for script in scripts.walk_revisions()}
    if current not in known:
        raise SchemaMismatch(
            f"the database schema {current} is newer than this release (head {head}): "
            "run the release that migrated it, or downgrade the schema"
        )
    raise SchemaMismatch(
        f"the database schema {current} is older than this release (head {head}): "
        "run `python -m services.registry.migrate` first"
    )


class WriteTurns:
    """Turns at SQLite's single write lock for this process's writers, the leadership's renewal
    first.

    SQLite makes a writer that finds the lock taken sleep and try again (up to 100 ms a nap), so a
    burst's run batches, writing back to back from two threads, took the lock again and again
    while a renewal napped: it missed its deadline and the leader stepped down mid-burst. Writers
    that take a turn here wait in line instead and are handed the turn the moment the lock is free
    (first come, first served), and a renewal waits for no more than the writer that holds it. On
    PostgreSQL (row locks) a turn costs nothing.

    Every writing transaction takes a turn, whoever opens it: `Database` takes one before the first
    statement that takes the lock (`takes_turn`), and gives it back when the connection returns to
    the pool (after its commit or rollback). A writer outside the line would nap while the turn
    goes from one writer in line to the next, for as long as the line is never empty: in a burst,
    for good. Writers that must hold the lock from their first read take it, and so their turn,
    before that read (`serialized` sessions: BEGIN IMMEDIATE; or `turn()`). A thread that holds the
    turn may write again on another connection: turns are counted per thread.
    """

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._lock = threading.Lock()
        self._holder: int | None = None  # the thread whose turn it is
        self._depth = 0  # how many times the holder took it (turns are reentrant)
        # Who waits, in order: (thread, the event that tells it the turn is its own now).
        self._urgent: deque[tuple[int, threading.Event]] = deque()
        self._waiting: deque[tuple[int, threading.Event]] = deque()

    @contextmanager
    def turn(self, *, urgent: bool = False) -> Iterator[None]:
        self.take(urgent=urgent)
        try:
            yield
        finally:
            self.give_back()

    def take(self, *, urgent: bool = False) -> None:
        """Waits for this thread's turn (at once when it holds it already); `give_back` once for
        every `take`."""
        if not self._enabled:
            return
        me = threading.get_ident()
        with self._lock:
            given: threading.Event | None = None
            if self._holder is None or self._holder == me:
                self._holder = me
                self._depth += 1
            else:
                given = threading.Event()
                (self._urgent if urgent else self._waiting).append((me, given))
        if given is not None:
            given.wait()  # the thread before hands the turn over: one wake-up, not one per waiter

    def give_back(self) -> None:
        if not self._enabled:
            return
        with self._lock:
            self._depth -= 1
            if self._depth:
                return
            line = self._urgent or self._waiting
            if line:
                self._holder, next_up = line.popleft()
                self._depth = 1
                next_up.set()
            else:
                self._holder = None


# Marks a pooled connection whose transaction holds a turn.
_HOLDS_TURN = "zq_holds_write_turn"
# The statements before which SQLite's driver begins a transaction (and so takes the write lock at
# once): its own rule, by the first keyword; and a serialized session's BEGIN IMMEDIATE.
_WRITE_KEYWORDS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN IMMEDIATE")


def locked(session: Session, model: type[M], key: int, *, shared: bool = False) -> M | None:
    """Row `key` of `model`, locked until the transaction ends (PostgreSQL: FOR UPDATE, or FOR SHARE
    when `shared`; on SQLite a serialized transaction holds the whole database) and read as it is
    once locked. A row the session read before is overwritten: the ORM would otherwise keep the
    first read's values, and a writer that committed in between would go unseen."""
    return session.get(model, key, with_for_update={"read": True} if shared else True, populate_existing=True)


def takes_turn(statement: str) -> bool:
    """Whether `statement` takes SQLite's write lock, so its transaction must take a turn first."""
    return statement.lstrip()[:15].upper().startswith(_WRITE_KEYWORDS)


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        db_metrics.instrument(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.write_turns = WriteTurns(enabled=self.is_sqlite)
        if self.is_sqlite:
            self._take_turns_for_writes()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def _take_turns_for_writes(self) -> None:
        """Every writing transaction waits for its turn at SQLite's write lock (`WriteTurns`):
        before its first write, and until its connection is back in the pool."""

        @event.listens_for(self.engine, "before_cursor_execute")
        def _before_write(
            conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
        ) -> None:
            record_info = conn.connection.record_info  # lives as long as the pool's connection
            if not record_info.get(_HOLDS_TURN) and takes_turn(statement):
                self.write_turns.take()
                record_info[_HOLDS_TURN] = True

        @event.listens_for(self.engine, "checkin")
        def _after_transaction(_dbapi_conn: Any, connection_record: Any) -> None:
            if connection_record.record_info.pop(_HOLDS_TURN, False):
                self.write_turns.give_back()

    @contextmanager
    def session(self, *, serialized: bool = False) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on an exception.

        `serialized` for a check-then-write that must not interleave with another (a read that
        decides an insert): on SQLite the transaction takes its turn (`WriteTurns`) and the write
        lock at once (BEGIN IMMEDIATE; the driver otherwise begins only at the first write, so the
        read would be outside it). On PostgreSQL the caller locks the rows it decides on (SELECT
        ... FOR UPDATE). Any other transaction takes its turn at its first write.
        """
        with self._sessions() as session, session.begin():
            if serialized and self.is_sqlite:
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield session

    async def run(self, work: Callable[[Session], T], *, serialized: bool = False) -> T:
        """`work` in a transaction of its own in a worker thread: what a servicer calls so that no
        database round trip (or the first compile of a statement) ever runs on its event loop.
        `serialized` as for `session`: for work that decides on rows it reads (and locks on
        PostgreSQL)."""

        def in_transaction() -> T:
            with self.session(serialized=serialized) as session:
                return work(session)

        return await asyncio.to_thread(in_transaction)

    def dispose(self) -> None:
        self.engine.dispose()


# PostgreSQL's SQLSTATEs for a transaction it aborted because another one collided with it:
# deadlock_detected (two saves each locking the row the other holds, e.g. two workflows saved at
# once, each naming the other) and serialization_failure.
_COLLISION_STATES = frozenset({"40P01", "40001"})


def concurrent_change(exc: Exception) -> DomainError | None:
    """A failure the database caused by aborting the transaction in favour of another: answered
    409 CONCURRENT_CHANGE, not an internal error (nothing of it was stored; trying again is
    safe, and then meets the other change). The registry's servers translate errors with this."""
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _COLLISION_STATES:
        return Conflict("与同时保存的另一修改冲突，未保存；请重试", reason=Reason.CONCURRENT_CHANGE)
    return None

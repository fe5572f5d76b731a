"""services.registry.db.WriteTurns: one writer at a time, and a leadership renewal waits only for
the writer that holds the lock, not for the run batches queued behind it; every writing transaction
of a SQLite `Database` waits in that line, whoever opened it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from services.registry.db import Database, WriteTurns, takes_turn


def test_a_renewal_goes_before_the_batches_waiting_and_writers_never_overlap() -> None:
    turns = WriteTurns(enabled=True)
    order: list[str] = []
    inside = 0
    overlapped = False
    holding = threading.Event()
    release = threading.Event()

    def write(name: str, urgent: bool = False, hold: threading.Event | None = None) -> None:
        nonlocal inside, overlapped
        with turns.turn(urgent=urgent):
            inside += 1
            overlapped |= inside > 1
            order.append(name)
            if hold is not None:
                holding.set()
                hold.wait(5)
            time.sleep(0.01)
            inside -= 1

    first = threading.Thread(target=write, args=("batch 1",), kwargs={"hold": release})
    first.start()
    assert holding.wait(5)
    waiting = [threading.Thread(target=write, args=(f"batch {n}",)) for n in (2, 3)]
    for thread in waiting:
        thread.start()
    time.sleep(0.05)  # the batches wait for their turn...
    renewal = threading.Thread(target=write, args=("renewal",), kwargs={"urgent": True})
    renewal.start()
    deadline = time.monotonic() + 5
    while not turns._urgent and time.monotonic() < deadline:  # the renewal waits too
        time.sleep(0.01)
    release.set()  # ...and when the first batch is done, the renewal that came later goes first
    for thread in [first, renewal, *waiting]:
        thread.join(5)
    assert order[:2] == ["batch 1", "renewal"] and sorted(order[2:]) == ["batch 2", "batch 3"]
    assert not overlapped


def test_without_turns_postgresql_writers_are_not_held() -> None:
    turns = WriteTurns(enabled=False)
    with turns.turn(), turns.turn(urgent=True):  # nested: nothing waits
        pass


def test_writers_waiting_get_their_turns_in_the_order_they_came() -> None:
    turns = WriteTurns(enabled=True)
    order: list[int] = []
    release = threading.Event()
    holding = threading.Event()

    def write(n: int) -> None:
        with turns.turn():
            if n == 0:
                holding.set()
                release.wait(5)
            order.append(n)

    threads = [threading.Thread(target=write, args=(0,))]
    threads[0].start()
    assert holding.wait(5)
    for n in range(1, 6):
        threads.append(threading.Thread(target=write, args=(n,)))
        threads[-1].start()
        deadline = time.monotonic() + 5
        while len(turns._waiting) < n and time.monotonic() < deadline:  # in line before the next comes
            time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4, 5]


def test_a_thread_that_holds_the_turn_may_open_another_writing_transaction() -> None:
    turns = WriteTurns(enabled=True)
    done = threading.Event()

    def nested() -> None:
        with turns.turn(), turns.turn(urgent=True), turns.turn():
            done.set()

    thread = threading.Thread(target=nested)
    thread.start()
    thread.join(5)
    assert done.is_set()
    with turns.turn():  # and the turn is free again afterwards
        pass


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path}/turns.db")
    with db.session() as session:
        session.execute(text("CREATE TABLE marks (name TEXT NOT NULL)"))
    yield db
    db.dispose()


def wait_for_line(turns: WriteTurns, length: int) -> None:
    deadline = time.monotonic() + 5
    while len(turns._waiting) < length and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(turns._waiting) == length


def test_a_transaction_that_writes_waits_in_line_for_its_turn_whoever_opened_it(sqlite: Database) -> None:
    # A plain session (no flag) writing while the lock is taken used to nap in SQLite's busy
    # handler, and a writer that came later was handed the turn before it woke.
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with sqlite.session() as session:
            session.execute(text("INSERT INTO marks VALUES ('first')"))
            holding.set()
            release.wait(5)

    def plain() -> None:
        with sqlite.session() as session:
            session.execute(text("INSERT INTO marks VALUES ('plain')"))
            order.append("plain")

    def later() -> None:
        with sqlite.write_turns.turn(), sqlite.session() as session:
            session.execute(text("INSERT INTO marks VALUES ('later')"))
            order.append("later")
            time.sleep(0.2)  # holds the lock long enough for a napping writer to lose its turn

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert holding.wait(5)
    threads.append(threading.Thread(target=plain))
    threads[-1].start()
    wait_for_line(sqlite.write_turns, 1)
    threads.append(threading.Thread(target=later))
    threads[-1].start()
    wait_for_line(sqlite.write_turns, 2)
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["plain", "later"]
    with sqlite.session() as session:
        assert session.execute(text("SELECT count(*) FROM marks")).scalar_one() == 3


def test_a_transaction_that_only_reads_does_not_wait_for_a_turn(sqlite: Database) -> None:
    counted: list[int] = []

    def count() -> None:
        with sqlite.session() as session:
            counted.append(session.execute(text("SELECT count(*) FROM marks")).scalar_one())

    with sqlite.write_turns.turn():  # a writer's turn, held by this thread
        reader = threading.Thread(target=count)
        reader.start()
        reader.join(5)
        assert counted == [0]


def test_a_write_that_fails_gives_its_turn_back(sqlite: Database) -> None:
    with pytest.raises(IntegrityError), sqlite.session() as session:
        session.execute(text("INSERT INTO marks VALUES (NULL)"))
    assert sqlite.write_turns._holder is None
    done = threading.Event()

    def write() -> None:
        with sqlite.session() as session:
            session.execute(text("INSERT INTO marks VALUES ('next')"))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(5)
    assert done.is_set()
    assert sqlite.write_turns._holder is None


def test_a_writing_transaction_in_a_thread_that_holds_the_turn_does_not_wait_for_itself(
    sqlite: Database,
) -> None:
    with sqlite.session(serialized=True) as outer:
        outer.execute(text("INSERT INTO marks VALUES ('outer')"))
        with sqlite.session() as inner:  # another connection of the same thread
            inner.execute(text("SELECT 1"))
    assert sqlite.write_turns._holder is None


@pytest.mark.parametrize(
    ("statement", "writes"),
    [
        ("INSERT INTO marks VALUES ('a')", True),
        ("  update marks SET name = 'b'", True),
        ("DELETE FROM marks", True),
        ("REPLACE INTO marks VALUES ('c')", True),
        ("SELECT * FROM marks", False),
        ("BEGIN IMMEDIATE", True),
        ("BEGIN", False),
        ("PRAGMA busy_timeout=30000", False),
    ],
)
def test_the_statements_that_take_a_turn_are_those_sqlite_begins_a_transaction_for(
    statement: str, writes: bool
) -> None:
    assert takes_turn(statement) is writes

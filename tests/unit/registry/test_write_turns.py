"""services.registry.db.WriteTurns: one writer at a time, and a leadership renewal waits only for
the writer that holds the lock, not for the run batches queued behind it."""

from __future__ import annotations

import threading
import time

from services.registry.db import WriteTurns


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

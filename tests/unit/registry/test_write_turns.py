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
    while not turns._urgent_waiting and time.monotonic() < deadline:  # the renewal waits too
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

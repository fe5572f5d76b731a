"""Scheduler leader election on SQLite and PostgreSQL: one leader, renewal, expiry, release, and when
the term was taken and last renewed (what the lease reaper goes by)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from services.registry.db import Database
from services.registry.store import leadership

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def acquire(db: Database, candidate: str, at: datetime) -> leadership.Leadership:
    with db.session() as session:
        return leadership.acquire(session, candidate, 3, at)


def test_first_candidate_leads_and_the_second_waits(db: Database) -> None:
    first = acquire(db, "a", T0)
    assert (first.leader, first.holder) == (True, "a")
    second = acquire(db, "b", T0 + timedelta(seconds=1))
    assert (second.leader, second.holder, second.term) == (False, "a", first.term)


def test_renewal_keeps_the_leadership_past_the_first_ttl(db: Database) -> None:
    term = acquire(db, "a", T0).term
    assert acquire(db, "a", T0 + timedelta(seconds=2)).leader
    assert not acquire(db, "b", T0 + timedelta(seconds=4)).leader  # renewed at +2 until +5
    assert acquire(db, "a", T0 + timedelta(seconds=4)).term == term


def test_an_expired_leadership_is_taken_over_with_a_new_term(db: Database) -> None:
    term = acquire(db, "a", T0).term
    taken = acquire(db, "b", T0 + timedelta(seconds=3))
    assert (taken.leader, taken.holder, taken.term) == (True, "b", term + 1)
    assert not acquire(db, "a", T0 + timedelta(seconds=3, milliseconds=1)).leader


def test_release_frees_it_at_once(db: Database) -> None:
    acquire(db, "a", T0)
    with db.session() as session:
        leadership.release(session, "b", T0)  # not the holder: no effect
    assert not acquire(db, "b", T0).leader
    with db.session() as session:
        leadership.release(session, "a", T0)
    assert acquire(db, "b", T0 + timedelta(milliseconds=1)).leader


EXECUTOR = {
    "address": "127.0.0.1:50061",
    "reachable": True,
    "capacity": 16,
    "active_runs": 2,
    "draining": False,
}


def test_the_leader_reports_its_executors_and_only_the_holder_is_kept(db: Database) -> None:
    with db.session() as session:
        leadership.acquire(session, "a", 3, T0, [EXECUTOR])
        # A candidate that does not lead changes nothing.
        leadership.acquire(session, "b", 3, T0 + timedelta(seconds=1), [{**EXECUTOR, "active_runs": 9}])
        current = leadership.current_leader(session, T0 + timedelta(seconds=1))
        assert current is not None and current.executors == (EXECUTOR,)
        leadership.release(session, "a", T0 + timedelta(seconds=2))
        # A new leader starts without the previous one's report.
        assert leadership.acquire(session, "b", 3, T0 + timedelta(seconds=2)).leader
        current = leadership.current_leader(session, T0 + timedelta(seconds=2))
        assert current is not None and current.executors == ()


def test_a_holder_late_for_its_own_renewal_keeps_its_term_while_nobody_took_over(db: Database) -> None:
    term = acquire(db, "a", T0).term
    late = acquire(db, "a", T0 + timedelta(seconds=10))
    assert (late.leader, late.term, late.expires_at) == (True, term, T0 + timedelta(seconds=13))


def test_a_term_remembers_when_it_was_taken_and_last_renewed(db: Database) -> None:
    taken = acquire(db, "a", T0)
    assert (taken.taken_at, taken.renewed_at) == (T0, T0)
    renewed = acquire(db, "a", T0 + timedelta(seconds=2))
    assert (renewed.taken_at, renewed.renewed_at) == (T0, T0 + timedelta(seconds=2))
    with db.session() as session:
        current = leadership.current_leader(session, T0 + timedelta(seconds=3))
    assert current is not None and (current.taken_at, current.renewed_at) == (T0, T0 + timedelta(seconds=2))
    # Taken over after it ran out: the new holder's term starts then.
    other = acquire(db, "b", T0 + timedelta(seconds=5))
    assert (other.taken_at, other.renewed_at) == (T0 + timedelta(seconds=5), T0 + timedelta(seconds=5))


def test_a_holder_renewing_after_its_term_ran_out_starts_its_term_afresh(db: Database) -> None:
    acquire(db, "a", T0)
    late = acquire(db, "a", T0 + timedelta(seconds=10))  # stuck for longer than its term
    assert late.taken_at == T0 + timedelta(seconds=10)


def test_candidates_racing_for_a_free_leadership_elect_exactly_one(db: Database) -> None:
    candidates = [f"c{i}" for i in range(8)]
    start = threading.Barrier(len(candidates))

    def race(candidate: str) -> leadership.Leadership:
        start.wait()
        with db.write_turns.turn(urgent=True), db.session() as session:
            return leadership.acquire(session, candidate, 3, T0)

    with ThreadPoolExecutor(len(candidates)) as pool:
        answers = list(pool.map(race, candidates))
    leaders = [answer for answer in answers if answer.leader]
    assert len(leaders) == 1
    assert {answer.holder for answer in answers} == {leaders[0].holder}
    assert {answer.term for answer in answers} == {leaders[0].term}

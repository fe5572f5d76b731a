"""services.registry.live.held_terms: whether a scheduler leads, known from the terms held here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.registry.live.held_terms import HeldTerms

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_a_leader_is_known_while_a_term_held_here_runs() -> None:
    held, hold = HeldTerms(), object()
    assert not held.leader_known(NOW)
    held.renewed(hold, NOW + timedelta(seconds=30))
    assert held.leader_known(NOW) and held.leader_known(NOW + timedelta(seconds=29))
    assert not held.leader_known(NOW + timedelta(seconds=30))  # the term ran out, not renewed


def test_a_hold_that_ends_is_forgotten_and_another_holds_own_term_stays() -> None:
    held, old, new = HeldTerms(), object(), object()
    held.renewed(old, NOW + timedelta(seconds=30))
    held.renewed(new, NOW + timedelta(seconds=30))
    held.ended(old)  # a candidate that reconnected: its old stream ends after the new one renewed
    assert held.leader_known(NOW)
    held.ended(new)
    assert not held.leader_known(NOW)

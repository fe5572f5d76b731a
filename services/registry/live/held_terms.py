"""Terms of scheduler leadership held by a stream on this replica (live/leadership.py), as known
without reading the database.

A hold that renewed its candidate's term records until when the term runs; the hold's end, or an
attempt that found the candidate no longer leading, forgets it. So "a scheduler leads" is known here
for certain while a term held here runs. A caller that finds no term here reads the leader row
(the leader may hold its stream on another replica).
"""

from __future__ import annotations

from datetime import datetime


class HeldTerms:
    def __init__(self) -> None:
        # Per hold (one per stream: a candidate that reconnects has two for a moment).
        self._until: dict[object, datetime] = {}

    def renewed(self, hold: object, expires_at: datetime) -> None:
        self._until[hold] = expires_at

    def ended(self, hold: object) -> None:
        self._until.pop(hold, None)

    def leader_known(self, now: datetime) -> bool:
        """True when a term held here runs at `now`."""
        return any(expires_at > now for expires_at in self._until.values())

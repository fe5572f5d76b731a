"""Who may act now: a token proves who the caller was when it was issued; this says whether that is
still so. A token is honoured only while its user (the same id: a re-created username is another
user) exists, is enabled, still has the token version the token carries, and the token's session
is not revoked; the role is today's, not the token's.

States are cached for `ttl` seconds, so the check costs no query per call. Every change of a user
(password, role, disabled, deleted, a session revoked) drops the cached state here at once, and on
the other registry replicas through the cluster bus (`ClusterBus.user_changed`) within milliseconds;
`ttl` only bounds how stale a replica can be when it misses a notification.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from services.common.auth import TokenSubject
from services.common.errors import Reason, Unauthenticated
from services.registry.db import Database, utcnow
from services.registry.models import SessionRow, UserRow

SESSION_ENDED = "登录已失效，请重新登录"


@dataclass(frozen=True, slots=True)
class UserState:
    user_id: int
    role: str
    disabled: bool
    token_version: int
    revoked_sessions: frozenset[str]


class UserStates:
    def __init__(
        self,
        db: Database,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._ttl = ttl
        self._clock = clock
        self._now = now
        self._states: dict[str, tuple[float, UserState | None]] = {}
        # Called with the username after a change made here (the cluster bus tells the others).
        self.on_change: list[Callable[[str], None]] = []

    def current_role(self, subject: TokenSubject) -> str:
        """The role of the token's user now; Unauthenticated when the token no longer holds."""
        state = self._state(subject.username)
        if state is None or state.user_id != subject.user_id:
            raise Unauthenticated("用户不存在", reason=Reason.TOKEN_INVALID)
        if state.disabled:
            raise Unauthenticated("用户已被禁用", reason=Reason.USER_DISABLED)
        if state.token_version != subject.version or subject.session_id in state.revoked_sessions:
            raise Unauthenticated(SESSION_ENDED, reason=Reason.TOKEN_REVOKED)
        return state.role

    def _state(self, username: str) -> UserState | None:
        now = self._clock()
        cached = self._states.get(username)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self._db.session() as session:
            row = session.execute(
                select(UserRow.id, UserRow.role, UserRow.disabled, UserRow.token_version).where(
                    UserRow.username == username
                )
            ).first()
            revoked: frozenset[str] = frozenset()
            if row is not None:
                revoked = frozenset(
                    session.scalars(
                        select(SessionRow.id).where(
                            SessionRow.user_id == row.id,
                            SessionRow.revoked.is_(True),
                            SessionRow.expires_at > self._now(),
                        )
                    )
                )
        state = (
            UserState(row.id, row.role, bool(row.disabled), row.token_version, revoked)
            if row is not None
            else None
        )
        self._states[username] = (now + self._ttl, state)
        return state

    def changed(self, username: str) -> None:
        """A change made by this replica: drop the state here and tell the other replicas."""
        self.invalidate(username)
        for callback in self.on_change:
            callback(username)

    def invalidate(self, username: str | None) -> None:
        """Drops the cached state of `username` (of everyone when None)."""
        if username is None:
            self._states.clear()
        else:
            self._states.pop(username, None)

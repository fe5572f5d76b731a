"""Who may act now: a token proves who the caller was when it was issued; this says whether that user
still exists, is enabled, and which role they have today. Changes made through this registry apply
at once; changes made through another replica within `ttl` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select

from services.common.errors import Unauthenticated
from services.registry.db import Database
from services.registry.models import UserRow


class UserStates:
    def __init__(self, db: Database, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._ttl = ttl
        self._clock = clock
        self._states: dict[str, tuple[float, str | None, bool]] = {}

    def current_role(self, username: str) -> str:
        """The user's role now; Unauthenticated when the user is gone or disabled."""
        now = self._clock()
        state = self._states.get(username)
        if state is None or state[0] <= now:
            with self._db.session() as session:
                row = session.execute(
                    select(UserRow.role, UserRow.disabled).where(UserRow.username == username)
                ).first()
            state = (now + self._ttl, row.role if row else None, bool(row.disabled) if row else False)
            self._states[username] = state
        _, role, disabled = state
        if role is None:
            raise Unauthenticated("用户不存在")
        if disabled:
            raise Unauthenticated("用户已被禁用")
        return role

    def invalidate(self, username: str) -> None:
        self._states.pop(username, None)

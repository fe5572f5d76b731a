"""What the registry's servicers share: settings, database, tokens, live events, progress, clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from services.common.auth import TokenService
from services.registry.db import Database, utcnow
from services.registry.events import EventHub
from services.registry.list_cache import TaskListCache
from services.registry.progress import ProgressBuffer
from services.registry.settings import RegistrySettings
from services.registry.user_states import UserStates


@dataclass(frozen=True, slots=True)
class RegistryApp:
    settings: RegistrySettings
    db: Database
    tokens: TokenService
    events: EventHub
    progress: ProgressBuffer
    list_cache: TaskListCache
    users: UserStates
    clock: Callable[[], datetime] = field(default=utcnow)

    @classmethod
    def create(
        cls,
        settings: RegistrySettings,
        db: Database,
        tokens: TokenService,
        clock: Callable[[], datetime] = utcnow,
    ) -> RegistryApp:
        events = EventHub()
        list_cache = TaskListCache()
        events.on_change.append(list_cache.invalidate)
        return cls(
            settings=settings,
            db=db,
            tokens=tokens,
            events=events,
            progress=ProgressBuffer(db, events, settings.progress_flush_seconds),
            list_cache=list_cache,
            users=UserStates(db),
            clock=clock,
        )

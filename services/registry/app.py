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


@dataclass(frozen=True, slots=True)
class RegistryApp:
    settings: RegistrySettings
    db: Database
    tokens: TokenService
    events: EventHub
    progress: ProgressBuffer
    list_cache: TaskListCache
    clock: Callable[[], datetime] = field(default=utcnow)

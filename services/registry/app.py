"""What the registry's servicers share: settings, database, tokens, live events, progress, the
cluster bus (PostgreSQL), caches, the line of task creates, trigger offers, clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from services.common.auth import TokenService
from services.registry.alerts.secrets import SecretBox
from services.registry.bulk_upkeep import BulkUpkeep
from services.registry.db import Database, utcnow
from services.registry.live.cluster import ClusterBus
from services.registry.live.events import EventHub
from services.registry.live.held_terms import HeldTerms
from services.registry.live.list_cache import TaskListCache
from services.registry.live.name_cache import TaskNameCache
from services.registry.live.progress import ProgressBuffer
from services.registry.live.trigger_offers import TriggerOffers
from services.registry.passwords import PasswordPool
from services.registry.settings import RegistrySettings
from services.registry.task_creates import TaskCreates
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
    task_names: TaskNameCache
    # Password hashing and verification, off the event loop.
    passwords: PasswordPool
    # Vacuums the tasks table after bulk loads (PostgreSQL).
    upkeep: BulkUpkeep
    # Single task creates, those that arrive together in one transaction.
    creates: TaskCreates
    # Manual triggers waiting for the scheduler to name an executor.
    trigger_offers: TriggerOffers
    # Shares events with the other registry replicas; None when this is the only one (SQLite, or
    # ZQ_CLUSTER_EVENTS off).
    cluster: ClusterBus | None = None
    # Encrypts and decrypts alert channels' secrets (ZQ_ALERT_KEY).
    secrets: SecretBox = field(default_factory=lambda: SecretBox(""))
    # Leadership terms held by a stream on this replica: whether a scheduler leads, without a read.
    held_terms: HeldTerms = field(default_factory=HeldTerms)
    clock: Callable[[], datetime] = field(default=utcnow)

    @classmethod
    def create(
        cls,
        settings: RegistrySettings,
        db: Database,
        tokens: TokenService,
        clock: Callable[[], datetime] = utcnow,
        passwords: PasswordPool | None = None,
    ) -> RegistryApp:
        events = EventHub()
        list_cache = TaskListCache()
        events.on_task_change.append(list_cache.task_changed)
        events.on_run_change.append(list_cache.run_changed)
        task_names = TaskNameCache()
        events.on_task_change.append(task_names.invalidate)
        # A run's bare heartbeats go to the other replicas at most every lease / 5 seconds: few
        # messages, yet their leases are renewed well in time.
        progress = ProgressBuffer(
            db,
            events,
            settings.progress_flush_seconds,
            heartbeat_relay_seconds=settings.lease_seconds / 5,
        )
        cluster = ClusterBus(db, events, progress, clock) if settings.cluster_events else None
        users = UserStates(db, now=clock)
        if cluster is not None:
            users.on_change.append(cluster.user_changed)
            cluster.on_user_change.append(users.invalidate)
        return cls(
            settings=settings,
            db=db,
            tokens=tokens,
            events=events,
            progress=progress,
            list_cache=list_cache,
            users=users,
            task_names=task_names,
            passwords=passwords or PasswordPool(),
            upkeep=BulkUpkeep(db),
            creates=TaskCreates(db, settings, clock),
            trigger_offers=TriggerOffers(events),
            cluster=cluster,
            secrets=SecretBox(settings.alert_key),
            clock=clock,
        )

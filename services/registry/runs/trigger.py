"""A manual trigger, from the user's call to the scheduler: the offer, the transaction, the news.

The trigger offers itself to the scheduler first (`live/trigger_offers.py`), so the executor is
chosen while the task is locked and the trigger checked; its transaction then creates the run
already running on that executor (the scheduler's answer gets the run once it committed), or
pending when the offer was declined or not answered in time (the scheduler then hears of it as
execution_ready, and claims it as it claims any pending run).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from services.common.errors import DomainError
from services.common.vocabulary import ExecutionStatus
from services.registry.app import RegistryApp
from services.registry.convert import execution_to_proto, scheduling_task_to_proto
from services.registry.live.trigger_offers import Offer
from services.registry.models import TaskRow
from services.registry.runs.model import Started
from services.registry.runs.shielded import to_the_end
from services.registry.store import audit, manual_runs
from services.registry.store.audit import Action, Actor, Target
from services.registry.store.executions import Claim
from services.registry.store.leadership import current_leader
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

Event = internal_pb2.WatchSchedulerEventsResponse


@dataclass(frozen=True, slots=True)
class ManualTrigger:
    task_id: int
    now: datetime
    actor: Actor
    params: dict[str, Any] | None
    logical_date: date | None
    traceparent: str


@dataclass(frozen=True, slots=True)
class TriggerResult:
    execution_id: int
    # Whether a scheduler leads (else the run waits for one).
    scheduler_up: bool


async def record_trigger(app: RegistryApp, request: ManualTrigger) -> TriggerResult:
    """Records the manual run (audited) and hands it to the scheduler, to the end even when the
    caller goes away meanwhile (else a run created running would wait for a dispatch that never
    comes)."""
    return await to_the_end(_record(app, request))


async def _record(app: RegistryApp, request: ManualTrigger) -> TriggerResult:
    offer = app.trigger_offers.open(request.task_id)
    try:
        (row, task), scheduler_up = await asyncio.to_thread(_transaction, app, request, offer)
    except Exception as exc:
        app.trigger_offers.settle(offer, exc if isinstance(exc, DomainError) else None)
        raise
    if row.status == ExecutionStatus.RUNNING:  # on the executor the scheduler named
        assert offer is not None
        execution = execution_to_proto(row, task.name)
        # The scheduler first: its answer sends the run to the executor.
        app.trigger_offers.settle(
            offer, Started(execution, row.attempt, scheduling_task_to_proto(cast(TaskRow, task)))
        )
        app.progress.track(execution, row.attempt)  # the lease reaper follows it from now on
        app.events.publish_execution(execution, row.attempt)
        return TriggerResult(row.id, scheduler_up=True)
    app.trigger_offers.settle(offer, None)
    app.events.publish_scheduler(
        Event(type=Event.EVENT_TYPE_EXECUTION_READY, execution=execution_to_proto(row))
    )
    return TriggerResult(row.id, scheduler_up)


def _transaction(
    app: RegistryApp, request: ManualTrigger, offer: Offer | None
) -> tuple[manual_runs.Triggered, bool]:
    """The run and its audit entry, in one transaction (blocking)."""

    def start() -> Claim | None:
        """The executor the scheduler named meanwhile, if any."""
        choice = offer.wait() if offer is not None else None
        if choice is None:
            return None
        return Claim(
            choice.executor, choice.at + app.settings.lease(choice.lease_seconds), started_at=choice.at
        )

    # Serialized: the forbid check and the insert cannot race another trigger.
    with app.db.session(serialized=True) as session:
        triggered = manual_runs.trigger_execution(
            session,
            request.task_id,
            request.now,
            request.params,
            request.logical_date,
            actor=request.actor.username,
            traceparent=request.traceparent,
            start=start,
        )
        audit.record(
            session,
            audit.entry(
                request.actor,
                Action.TASK_TRIGGER,
                Target.TASK,
                request.task_id,
                request.now,
                name=triggered.task.name,
                changes={"execution_id": triggered.run.id},
            ),
        )
        # A term held here says a scheduler leads; else the leader row (held elsewhere).
        known = app.held_terms.leader_known(request.now)
        return triggered, known or current_leader(session, request.now) is not None

"""Trigger offers: a manual run started on an executor in its trigger's own transaction.

Without an offer, a manual run takes two transactions and two messages, one after the other: the
trigger commits it pending and announces it to the scheduler, and the scheduler's claim for an
executor is a second transaction. With one, the trigger announces itself *before* its transaction
(`TriggerOffers.open`, a trigger_offer event on the feeds that take offers), and the scheduler
picks an executor while the registry locks the task and checks the trigger. The trigger waits for
that choice just before its insert (`Offer.wait`, in its worker thread, at most
OFFER_WAIT_SECONDS) and creates the run already running there, as a fire's run is created. The
scheduler's answer is answered in turn once the trigger is over (`settle`): with the run, or with
the trigger's error. A trigger whose offer was declined (no executor has room, a workflow) or not
answered in time makes its run pending, as without an offer; a late answer finds the offer gone.

The executor's choice stays the scheduler's (its load, health and cool-downs): the registry only
waits for it. Offers belong to this process: the scheduler answers on the stream of the connection
its feed is on, so the answer reaches the registry that waits (another finds no such offer).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime

from services.common.errors import DomainError, NotFound, Reason
from services.common.metrics import TRIGGER_OFFERS
from services.registry.live.events import EventHub
from services.registry.runs.model import OfferAnswer, Started
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

# How long a trigger holding its task locked waits for the scheduler's choice. An idle scheduler
# answers in 1-3 ms; one that takes longer is busy, and the run is better queued pending than the
# trigger kept waiting.
OFFER_WAIT_SECONDS = 0.025
# How long an answer that came before its trigger waited (the trigger still waits for the task's
# lock, or for SQLite's write turn) stays on offer: then it is withdrawn, and the run is created
# pending. The scheduler's run stream must not wait on a trigger stuck behind a lock.
ANSWER_HELD_SECONDS = 1.0

Event = internal_pb2.WatchSchedulerEventsResponse


@dataclass(frozen=True, slots=True)
class Choice:
    """The executor the scheduler named for the run, and when its answer came (the run's start)."""

    executor: str
    lease_seconds: float
    at: datetime


def offer_gone(offer_id: int) -> NotFound:
    return NotFound(f"触发请求 {offer_id} 已不再等待执行器", reason=Reason.TRIGGER_OFFER_GONE)


class Offer:
    """One trigger's offer: answered at most once, from the event loop, while its trigger still
    waits; taken (or found unanswered) by the trigger's worker thread."""

    def __init__(self, offer_id: int, task_id: int) -> None:
        self.offer_id = offer_id
        self.task_id = task_id
        self._lock = threading.Lock()
        self._answered = threading.Event()
        self._closed = False  # the trigger no longer waits: any answer now is too late
        self._choice: Choice | None = None
        # Set when an executor was named: the answer's own answer, once the trigger is over.
        self._outcome: asyncio.Future[Started] | None = None

    def wait(self) -> Choice | None:
        """In the trigger's worker thread, just before its insert: the executor named within
        OFFER_WAIT_SECONDS, or None (declined, or not answered in time: the offer is closed, so a
        late answer finds it gone)."""
        self._answered.wait(OFFER_WAIT_SECONDS)
        with self._lock:
            if not self._answered.is_set():
                TRIGGER_OFFERS.labels("expired").inc()
            self._closed = True
            return self._choice

    def withdraw(self) -> bool:
        """On the event loop: takes back an executor the trigger has not taken yet (it then creates
        its run pending); False when it already has (its outcome follows)."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            self._choice = None
        TRIGGER_OFFERS.labels("withdrawn").inc()
        return True

    def answer(self, choice: Choice | None) -> asyncio.Future[Started] | None:
        """On the event loop: the scheduler's choice (None declines). The future of the trigger's
        outcome when an executor was named; None for a decline. Raises offer_gone when the trigger
        no longer waits or the offer was answered before."""
        with self._lock:
            if self._closed or self._answered.is_set():
                raise offer_gone(self.offer_id)
            self._choice = choice
            if choice is not None:
                self._outcome = asyncio.get_running_loop().create_future()
            self._answered.set()
            TRIGGER_OFFERS.labels("accepted" if choice is not None else "declined").inc()
            return self._outcome

    def settle(self, outcome: Started | DomainError | None) -> None:
        """On the event loop, once the trigger is over: the scheduler's answer gets `outcome` (the
        run started on its executor, or the trigger's error; None when the run was made pending)."""
        with self._lock:
            self._closed = True
            waiting = self._outcome
        if waiting is None or waiting.done():
            return
        if isinstance(outcome, Started):
            waiting.set_result(outcome)
        else:
            waiting.set_exception(outcome or offer_gone(self.offer_id))


class TriggerOffers:
    """The offers of this registry's triggers under way."""

    def __init__(self, events: EventHub) -> None:
        self._events = events
        self._open: dict[int, Offer] = {}

    def open(self, task_id: int) -> Offer | None:
        """An offer for a trigger of the task, sent to the feeds that take offers; None when none
        does (no scheduler follows this registry, or an older one)."""
        if not self._events.offer_takers:
            return None
        offer = Offer(secrets.randbits(63), task_id)
        self._open[offer.offer_id] = offer
        self._events.publish_offer(
            Event(
                type=Event.EVENT_TYPE_TRIGGER_OFFER,
                trigger_offer=internal_pb2.TriggerOffer(offer_id=offer.offer_id, task_id=task_id),
            )
        )
        return offer

    async def answer(self, answer: OfferAnswer, now: datetime) -> Started | None:
        """The scheduler's answer, answered once the trigger is over: the run started on the named
        executor (the trigger's error is raised), or None for a decline. offer_gone when no
        trigger here waits for it."""
        offer = self._open.get(answer.offer_id)
        if offer is None:
            raise offer_gone(answer.offer_id)
        choice = Choice(answer.executor, answer.lease_seconds, now) if answer.executor else None
        outcome = offer.answer(choice)
        if outcome is None:
            return None
        try:
            async with asyncio.timeout(ANSWER_HELD_SECONDS):
                return await asyncio.shield(outcome)
        except TimeoutError:
            if offer.withdraw():
                raise offer_gone(answer.offer_id) from None
        return await outcome  # the trigger took it meanwhile: its outcome follows

    def settle(self, offer: Offer | None, outcome: Started | DomainError | None) -> None:
        """The trigger is over (see Offer.settle); nothing to do for a trigger that made no offer."""
        if offer is None:
            return
        self._open.pop(offer.offer_id, None)
        offer.settle(outcome)

"""Scheduler leadership held by a stream (HoldLeadership, registry_internal_service.proto).

Why a stream: the leadership used to be a unary renewal every second from each scheduler, for a
3 s term. On an idle stack those calls were half of all CPU (each woke the scheduler, the
registry, their gRPC threads and a database write), and a killed leader left no scheduler until
its term ran out. Held by a stream, the registry renews the term in the database every
renew_seconds for ttl_seconds (the scheduler asks for 10 and 30 s), and the stream's end releases
it at once: a standby, or the killed leader's own restart, leads within moments.

A hold, for one candidate, repeats:
- one attempt (acquire or renew: one atomic statement, store/leadership.py), whose state it sends;
- then it waits for the candidate to acknowledge that state. A candidate whose loop is stuck does
  not acknowledge: its term is not renewed and runs out, and a standby takes over;
- then, leading, until renew_seconds after the last attempt (at once when the acknowledgement
  carries executors that changed: the renewal stores them for the status page); standing by, until
  the holder's term ends or the leadership is released on this replica or another (the cluster bus
  tells them).
While it leads, the leader's housekeeping runs (housekeeping.py): every housekeeping_seconds
while there is work (the last pass did something), and otherwise once a task or run changes on any
replica, when the next pending alert delivery (a retry) falls due, or after
QUIET_HOUSEKEEPING_SECONDS (purges and digests are due by the clock): an idle registry does not
query the outbox every few seconds.
An attempt that fails (the database out of reach) is made again a second later, the stream kept:
its end would stop the leader's engine at once, while the leader can ride out a short outage.
When the hold ends (the stream closed or broke) it releases the leadership, if the term it renewed
last is still current: a newer hold of the same candidate, reconnected through another replica,
keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from services.common.errors import InvalidArgument, Reason
from services.registry.app import RegistryApp
from services.registry.housekeeping import Housekeeping, PassResult
from services.registry.store import leadership
from services.registry.store.leadership import Leadership

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 15
# A standby tries a little after the holder's term ends, not at the very instant.
TAKEOVER_MARGIN_SECONDS = 0.05
# A failed attempt (the database out of reach) is made again after this pause.
ATTEMPT_RETRY_SECONDS = 1.0
# The longest pause between two housekeeping passes while nothing changes.
QUIET_HOUSEKEEPING_SECONDS = 60.0

Executors = list[dict[str, Any]]
# The executors of the candidate's next acknowledgement; None when its stream has ended.
Acknowledgement = Callable[[], Awaitable[Executors | None]]


@dataclass(frozen=True, slots=True)
class HoldTerms:
    candidate: str
    ttl_seconds: int
    renew_seconds: float

    @classmethod
    def of(cls, candidate: str, ttl_seconds: int, renew_seconds: float) -> HoldTerms:
        """The terms a candidate asks for, with the defaults (15 s, renewed every third of it)."""
        ttl = ttl_seconds or DEFAULT_TTL_SECONDS
        renew = renew_seconds or ttl / 3
        if not 1 <= ttl <= 3600 or not 0.1 <= renew < ttl:
            raise InvalidArgument(
                "ttl_seconds 须在1到3600之间，renew_seconds 须不小于0.1且小于 ttl_seconds",
                reason=Reason.LEADERSHIP_INVALID,
            )
        return cls(candidate, ttl, renew)


class LeadershipHolds:
    def __init__(self, app: RegistryApp, housekeeping: Housekeeping, housekeeping_seconds: float) -> None:
        self._app = app
        self._housekeeping = housekeeping
        self._housekeeping_seconds = housekeeping_seconds
        # Attempts get a thread of their own: in the shared worker threads they would queue behind
        # a burst's run batches, miss the leader's deadline, and it would step down mid-burst.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadership")
        self._released = asyncio.Event()
        # Set by any change of a task or a run (here or heard from another replica).
        self._changes = asyncio.Event()
        app.events.on_change.append(self._changes.set)
        self._background: set[asyncio.Task[Any]] = set()
        # Told when this replica released the leadership (the cluster bus tells the others).
        self.on_release: list[Callable[[], None]] = []

    def released(self) -> None:
        """The leadership was released, here or on another replica: standbys try at once."""
        self._released.set()
        self._released = asyncio.Event()

    async def acquire(self, candidate: str, ttl_seconds: int, executors: Executors) -> Leadership:
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, functools.partial(self._acquire, candidate, ttl_seconds, executors)
        )

    async def release(self, candidate: str, renewed_until: datetime | None = None) -> bool:
        """Frees the leadership if `candidate` holds it (and its term still ends at
        `renewed_until`, when given); True when it did."""
        try:
            freed = await asyncio.to_thread(self._release, candidate, renewed_until)
        except SQLAlchemyError:
            log.warning("could not release the leadership; its term runs out by itself", exc_info=True)
            return False
        if freed:
            self.released()
            for callback in self.on_release:
                callback()
        return freed

    async def hold(
        self, terms: HoldTerms, executors: Executors, acknowledged: Acknowledgement
    ) -> AsyncGenerator[Leadership, None]:
        """The states to send the candidate, for as long as its stream lasts (it ends when the
        stream does, or is closed)."""
        renewed_until: datetime | None = None
        housekeeping: tuple[int, asyncio.Task[None]] | None = None
        attempt: asyncio.Task[Leadership] | None = None
        held = self._app.held_terms
        hold = object()  # this stream's, in `held`
        try:
            while True:
                attempted = time.monotonic()
                released = self._released  # a release during the attempt wakes the wait below
                attempt = self._spawn(self.acquire(terms.candidate, terms.ttl_seconds, executors))
                try:
                    # Shielded: the statement runs on in its thread when the stream ends meanwhile,
                    # and may make the candidate leader (the `finally` below frees it then).
                    state = await asyncio.shield(attempt)
                except SQLAlchemyError:
                    # The database is out of reach: try again soon, the stream stays. The leader
                    # goes on leading until its term could have passed (leader.py), as it would
                    # through any other registry; a stream ended here would stop its engine at once.
                    log.warning("leadership attempt failed; trying again", exc_info=True)
                    attempt = None  # it took nothing
                    await asyncio.sleep(ATTEMPT_RETRY_SECONDS)
                    continue
                attempt = None
                renewed_until = state.expires_at if state.leader else None
                if renewed_until is not None:
                    held.renewed(hold, renewed_until)
                else:
                    held.ended(hold)
                if housekeeping is not None and (not state.leader or housekeeping[0] != state.term):
                    housekeeping[1].cancel()
                    housekeeping = None
                if state.leader and housekeeping is None:
                    housekeeping = (state.term, self._spawn(self._housekeep(terms.candidate, state.term)))
                yield state
                acknowledgement = await acknowledged()
                if acknowledgement is None:
                    return
                changed, executors = acknowledgement != executors, acknowledgement
                if state.leader and changed:
                    continue  # stored now: the status page shows the leader's executors as they are
                if state.leader:
                    await asyncio.sleep(max(0.0, attempted + terms.renew_seconds - time.monotonic()))
                else:
                    await self._until_free(state, released, terms.ttl_seconds)
        finally:
            held.ended(hold)
            if housekeeping is not None:
                housekeeping[1].cancel()
            if attempt is not None:  # ended during an attempt, which may take the leadership yet
                self._spawn(self._release_if_taken(terms.candidate, attempt))
            elif renewed_until is not None:
                # In the background: this hold may be ending because its task is being cancelled,
                # or closed by the generator's finalizer.
                self._spawn(self.release(terms.candidate, renewed_until))

    async def _release_if_taken(self, candidate: str, attempt: asyncio.Task[Leadership]) -> None:
        """Once an attempt of a hold that has ended is done: frees the term it took, if it took one
        (else the leadership would wait a whole term for a candidate that is gone)."""
        try:
            state = await attempt
        except SQLAlchemyError:
            return  # took nothing
        if state.leader:
            await self.release(candidate, state.expires_at)

    async def _until_free(self, state: Leadership, released: asyncio.Event, ttl_seconds: int) -> None:
        """Until the holder's term ends, or a release anywhere, whichever comes first."""
        remaining = (state.expires_at - self._app.clock()).total_seconds() + TAKEOVER_MARGIN_SECONDS
        try:
            async with asyncio.timeout(min(max(remaining, TAKEOVER_MARGIN_SECONDS), ttl_seconds)):
                await released.wait()
        except TimeoutError:
            pass

    async def _housekeep(self, candidate: str, term: int) -> None:
        while True:
            self._changes.clear()
            result: PassResult | None = None
            try:
                # A worker thread: alert sends wait on networks and mail servers.
                result = await asyncio.to_thread(self._housekeeping.run_pass, candidate, term)
            except Exception:
                log.exception("housekeeping pass failed")
            passed = time.monotonic()
            await asyncio.sleep(self._housekeeping_seconds)
            if result is not None and not result.busy:
                deadline = passed + QUIET_HOUSEKEEPING_SECONDS
                if result.alerts.next_due_at is not None:  # a retry falls due
                    due_in = (result.alerts.next_due_at - self._app.clock()).total_seconds()
                    deadline = min(deadline, time.monotonic() + due_in)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        await self._changes.wait()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _acquire(self, candidate: str, ttl_seconds: int, executors: Executors) -> Leadership:
        db = self._app.db
        with db.write_turns.turn(urgent=True), db.session() as session:  # ahead of the run batches
            return leadership.acquire(session, candidate, ttl_seconds, self._app.clock(), executors)

    def _release(self, candidate: str, renewed_until: datetime | None) -> bool:
        with self._app.db.session() as session:
            return leadership.release(session, candidate, self._app.clock(), renewed_until)

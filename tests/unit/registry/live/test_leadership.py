"""Leadership held by a stream (HoldLeadership), over a real in-process registry on SQLite: the
leader is renewed while it acknowledges, a standby takes over as soon as the leader's stream ends
(not a term later), a leader that stops acknowledging loses the leadership when its term runs out,
an ended stream does not free a term that a newer stream of the same candidate renewed, and a
stream that ends while its attempt takes the leadership frees it.

The leader's housekeeping (both backends), run by the registry that holds its stream: while idle it
waits for a change or a retry that falls due instead of passing every few seconds."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from services.common.auth import TokenService, load_or_create_keys
from services.common.errors import Reason, reason_of
from services.registry.alerts import delivery
from services.registry.app import RegistryApp
from services.registry.db import Database
from services.registry.housekeeping import Housekeeping, PassResult
from services.registry.live import leadership as live_leadership
from services.registry.live.leadership import HoldTerms
from services.registry.server import RegistryServer, create_server
from services.registry.settings import RegistrySettings
from services.registry.store.leadership import Leadership
from tests.waiting import eventually
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2
from zquant.scheduler.v1 import registry_internal_service_pb2_grpc as pb2_grpc

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOKEN = "test-service-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
TASK_DELETE = pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TASK_DELETE
# Long enough that a takeover within it can only come from the release, not from the term's end.
LONG_TERM = 60


class Candidate:
    """One scheduler's side of a HoldLeadership stream."""

    def __init__(self, stub: pb2_grpc.RegistryInternalServiceStub, name: str) -> None:
        self.name = name
        self.call: Any = stub.HoldLeadership(metadata=AUTH)

    async def open(
        self, ttl_seconds: int = LONG_TERM, renew_seconds: float = 0.0
    ) -> pb2.HoldLeadershipResponse:
        await self.call.write(
            pb2.HoldLeadershipRequest(
                candidate=self.name, ttl_seconds=ttl_seconds, renew_seconds=renew_seconds
            )
        )
        return await self.state()

    async def state(self, within: float = 10.0) -> pb2.HoldLeadershipResponse:
        async with asyncio.timeout(within):
            state = await self.call.read()
        assert isinstance(state, pb2.HoldLeadershipResponse), state
        return state

    async def acknowledge(self) -> None:
        await self.call.write(pb2.HoldLeadershipRequest())

    def close(self) -> None:
        self.call.cancel()


@pytest_asyncio.fixture(loop_scope="session")
async def registry(tmp_path: Path) -> AsyncIterator[RegistryServer]:
    settings = RegistrySettings.from_env(
        {"ZQ_SERVICE_TOKEN": TOKEN, "ZQ_DATA_DIR": str(tmp_path), "ZQ_REGISTRY_PORT": "0"}
    )
    server = await create_server(settings)
    yield server
    await server.stop(0)


@pytest_asyncio.fixture(loop_scope="session")
async def stub(registry: RegistryServer) -> AsyncIterator[pb2_grpc.RegistryInternalServiceStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{registry.port}")
    yield pb2_grpc.RegistryInternalServiceStub(channel)
    await channel.close(grace=None)


def holder(registry: RegistryServer) -> str:
    with registry.app.db.session() as session:
        return str(
            session.execute(text("SELECT holder FROM zq_task_scheduler_leader WHERE id = 1")).scalar_one()
        )


async def test_a_lone_candidate_leads_at_once_and_is_renewed_while_it_acknowledges(
    stub: pb2_grpc.RegistryInternalServiceStub,
) -> None:
    leader = Candidate(stub, "lone")
    try:
        first = await leader.open(ttl_seconds=3, renew_seconds=0.2)
        assert first.leader and first.holder == "lone"
        await leader.acknowledge()
        second = await leader.state(within=2)
        assert second.leader and second.term == first.term
        assert second.expires_at.ToDatetime() > first.expires_at.ToDatetime()
    finally:
        leader.close()


async def test_the_registry_knows_a_leader_holds_its_term_here_until_the_stream_ends(
    registry: RegistryServer, stub: pb2_grpc.RegistryInternalServiceStub
) -> None:
    held = registry.app.held_terms
    leader = Candidate(stub, "here")
    try:
        assert not held.leader_known(registry.app.clock())
        await leader.open()
        await leader.acknowledge()
        assert held.leader_known(registry.app.clock())
    finally:
        leader.close()
    # Well before the term's end: the stream's end releases the term, and forgot it here first.
    await eventually(lambda: holder(registry) == "", "the term released", LONG_TERM / 4)
    assert not held.leader_known(registry.app.clock())


async def test_a_standby_takes_over_as_soon_as_the_leaders_stream_ends(
    registry: RegistryServer, stub: pb2_grpc.RegistryInternalServiceStub
) -> None:
    leader, standby = Candidate(stub, "first"), Candidate(stub, "second")
    try:
        leading = await leader.open()
        await leader.acknowledge()
        waiting = await standby.open()
        assert leading.leader and not waiting.leader and waiting.holder == "first"
        await standby.acknowledge()
        leader.close()
        ended = time.monotonic()
        taken = await standby.state(within=LONG_TERM / 4)
        assert taken.leader and taken.term == leading.term + 1
        assert time.monotonic() - ended < LONG_TERM / 4
        assert holder(registry) == "second"
    finally:
        leader.close()
        standby.close()


async def test_a_leader_that_stops_acknowledging_loses_the_leadership_when_its_term_ends(
    stub: pb2_grpc.RegistryInternalServiceStub,
) -> None:
    stuck, standby = Candidate(stub, "stuck"), Candidate(stub, "patient")
    try:
        leading = await stuck.open(ttl_seconds=2, renew_seconds=0.2)
        assert leading.leader  # and never acknowledged: its loop is stuck
        waiting = await standby.open(ttl_seconds=2, renew_seconds=0.2)
        assert not waiting.leader
        await standby.acknowledge()
        started = time.monotonic()
        taken = await standby.state(within=10)
        assert taken.leader and taken.holder == "patient"
        assert time.monotonic() - started >= 1.0  # the stuck leader's term ran out first
    finally:
        stuck.close()
        standby.close()


async def test_an_ended_stream_does_not_free_a_term_a_newer_stream_of_the_candidate_renewed(
    registry: RegistryServer, stub: pb2_grpc.RegistryInternalServiceStub
) -> None:
    # A scheduler cut off from its stream opens another (in a cluster, through another registry)
    # and goes on leading; the old stream, ending later, must not hand the leadership to a standby.
    old, new, standby = Candidate(stub, "same"), Candidate(stub, "same"), Candidate(stub, "other")
    try:
        first = await old.open()
        assert first.leader
        renewed = await new.open()
        assert renewed.leader and renewed.term == first.term
        await new.acknowledge()
        waiting = await standby.open()
        assert not waiting.leader
        await standby.acknowledge()
        old.close()
        await asyncio.sleep(1.0)
        assert holder(registry) == "same"
        new.close()  # the current stream's end does free it
        taken = await standby.state(within=LONG_TERM / 4)
        assert taken.leader
    finally:
        for candidate in (old, new, standby):
            candidate.close()


async def test_a_stream_that_ends_while_its_attempt_takes_the_leadership_frees_it(
    registry: RegistryServer, stub: pb2_grpc.RegistryInternalServiceStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A standby's stream ends (its scheduler stops) just as a release wakes it: its attempt, already
    # in the database, makes it leader. Nobody is left to renew or release that term.
    slow, entered, finish = threading.Event(), threading.Event(), threading.Event()
    acquire = live_leadership.LeadershipHolds._acquire

    def slowed(holds: live_leadership.LeadershipHolds, candidate: str, *args: Any) -> Leadership:
        if candidate == "leaving" and slow.is_set():
            entered.set()
            finish.wait(10)
        return acquire(holds, candidate, *args)

    monkeypatch.setattr(live_leadership.LeadershipHolds, "_acquire", slowed)
    leader, leaving, standby = Candidate(stub, "staying"), Candidate(stub, "leaving"), Candidate(stub, "next")
    try:
        assert (await leader.open()).leader
        await leader.acknowledge()
        assert not (await leaving.open()).leader
        await leaving.acknowledge()
        slow.set()
        leader.close()  # released: the standby's attempt starts, and waits in the database call
        assert await asyncio.to_thread(entered.wait, 10)
        leaving.close()
        await asyncio.sleep(0.2)  # the registry sees the stream end first
        finish.set()  # then the attempt takes the leadership, for a stream that is gone
        waiting = await standby.open()
        if not waiting.leader:
            await standby.acknowledge()
            waiting = await standby.state(within=LONG_TERM / 4)  # not the 60 s term
        assert waiting.leader and holder(registry) == "next"
    finally:
        finish.set()
        for candidate in (leader, leaving, standby):
            candidate.close()


@pytest.mark.parametrize(
    "request_",
    [
        pb2.HoldLeadershipRequest(candidate="", ttl_seconds=10),
        pb2.HoldLeadershipRequest(candidate="x" * 201, ttl_seconds=10),
        pb2.HoldLeadershipRequest(candidate="renews-too-late", ttl_seconds=10, renew_seconds=10),
        pb2.HoldLeadershipRequest(candidate="endless", ttl_seconds=100_000),
    ],
)
async def test_bad_terms_are_refused_with_their_reason(
    stub: pb2_grpc.RegistryInternalServiceStub, request_: pb2.HoldLeadershipRequest
) -> None:
    call: Any = stub.HoldLeadership(metadata=AUTH)
    await call.write(request_)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call.read()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == Reason.LEADERSHIP_INVALID


async def test_a_stream_without_the_service_token_is_refused(registry: RegistryServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{registry.port}") as channel:
        call: Any = pb2_grpc.RegistryInternalServiceStub(channel).HoldLeadership()
        # Refused when the stream opens, before any message: a message written meanwhile could fail
        # to send, and grpc would then report its own INTERNAL instead of the server's refusal.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async with asyncio.timeout(10):
                await call.read()
    assert refused.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


# ---- the leader's housekeeping, in the registry that holds the leader's stream -------------------


class CountedHousekeeping(Housekeeping):
    """The real pass's place taken by one that counts its calls and says what it was told to."""

    def __init__(self, app: RegistryApp) -> None:
        super().__init__(app)
        self.passes = 0
        self.next_result = PassResult(alerts=delivery.PassResult(), runs_purged=0)
        self._passed = threading.Condition()

    def run_pass(self, candidate: str, term: int) -> PassResult | None:
        with self._passed:
            self.passes += 1
            self._passed.notify_all()
        return self.next_result

    async def passed(self, count: int, within: float) -> bool:
        """Whether `count` passes have run, waiting up to `within` seconds for them."""

        def wait() -> bool:
            with self._passed:
                return self._passed.wait_for(lambda: self.passes >= count, within)

        return await asyncio.to_thread(wait)


@dataclass
class Leader:
    app: RegistryApp
    housekeeping: CountedHousekeeping
    holding: AsyncGenerator[Leadership, None] | None = None

    async def lead(self) -> None:
        """Holds the leadership, never acknowledging (the term outlasts the test)."""
        holds = live_leadership.LeadershipHolds(self.app, self.housekeeping, housekeeping_seconds=0.05)

        async def never_acknowledged() -> list[dict[str, Any]] | None:
            await asyncio.Event().wait()
            return None

        self.holding = holds.hold(HoldTerms.of("keeper", 60, 20), [], never_acknowledged)
        assert (await anext(self.holding)).leader


@pytest_asyncio.fixture(loop_scope="session")
async def leader(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Leader]:
    monkeypatch.setattr(live_leadership, "QUIET_HOUSEKEEPING_SECONDS", 30.0)
    settings = RegistrySettings.from_env({"ZQ_SERVICE_TOKEN": TOKEN, "ZQ_DATA_DIR": str(tmp_path)})
    keys = load_or_create_keys(settings.jwt_key_path, settings.jwks_path)
    app = RegistryApp.create(settings, db, TokenService(keys, 3600, 3600))
    leader = Leader(app, CountedHousekeeping(app))
    yield leader
    if leader.holding is not None:
        await leader.holding.aclose()


async def test_an_idle_leaders_housekeeping_waits_for_a_change_instead_of_polling(leader: Leader) -> None:
    await leader.lead()
    assert await leader.housekeeping.passed(1, 5)
    await asyncio.sleep(1.0)  # 20 periods of 0.05 s: nothing changed, nothing was due
    assert leader.housekeeping.passes == 1
    leader.app.events.deliver_scheduler(pb2.WatchSchedulerEventsResponse(type=TASK_DELETE, task_id=1))
    assert await leader.housekeeping.passed(2, 5)


async def test_a_busy_pass_is_followed_by_the_next_one_period_later(leader: Leader) -> None:
    leader.housekeeping.next_result = PassResult(alerts=delivery.PassResult(sent=1), runs_purged=0)
    await leader.lead()
    assert await leader.housekeeping.passed(5, 5)


async def test_an_idle_pass_comes_back_when_a_retry_falls_due(leader: Leader) -> None:
    due = leader.app.clock() + timedelta(seconds=1)
    leader.housekeeping.next_result = PassResult(alerts=delivery.PassResult(next_due_at=due), runs_purged=0)
    await leader.lead()
    assert await leader.housekeeping.passed(2, 10)
    assert leader.app.clock() >= due - timedelta(milliseconds=20)  # the loop's and the wall clock


async def test_a_renewal_that_fails_is_made_again_and_the_stream_stays(
    leader: Leader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_leadership, "ATTEMPT_RETRY_SECONDS", 0.05)
    holds = live_leadership.LeadershipHolds(leader.app, leader.housekeeping, housekeeping_seconds=60)
    attempts = 0
    acquire = holds._acquire

    def second_attempt_fails(candidate: str, ttl_seconds: int, executors: list[dict[str, Any]]) -> Leadership:
        nonlocal attempts
        attempts += 1
        if attempts == 2:
            raise OperationalError("UPDATE zq_task_scheduler_leader", {}, Exception("connection lost"))
        return acquire(candidate, ttl_seconds, executors)

    monkeypatch.setattr(holds, "_acquire", second_attempt_fails)
    acknowledgements: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue()
    leader.holding = holds.hold(HoldTerms.of("steady", 60, 0.1), [], acknowledgements.get)
    first = await anext(leader.holding)
    acknowledgements.put_nowait([])
    async with asyncio.timeout(5):
        renewed = await anext(leader.holding)
    assert first.leader and renewed.leader and renewed.term == first.term
    assert renewed.expires_at > first.expires_at and attempts == 3

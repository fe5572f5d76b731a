"""A manual trigger and its offer, over a real in-process registry: the scheduler's feed (asking for
offers) and its run stream on one connection, the trigger through TaskService. A trigger whose
offer names an executor creates its run running there in its own transaction, and the answer gets
the run; a declined offer, or one not answered in time, makes the run pending and announces it as
execution_ready, and a late answer finds the offer gone; a refused trigger refuses the answer with
its own reason; a trigger whose caller went away still answers the scheduler with its run, and an
answer its trigger cannot take for a while (stuck behind another writer) is withdrawn; a feed that
did not ask gets no offer, and an answer must travel alone."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from sqlalchemy import select

from services.common.errors import Reason, reason_of
from services.registry.live import trigger_offers
from services.registry.models import ExecutionRow
from services.registry.server import RegistryServer, create_server
from services.registry.settings import RegistrySettings
from services.registry.store import tasks as task_store
from services.scheduler.clients import RegistryClient
from services.scheduler.record_stream import RecordStream
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2
from zquant.scheduler.v1 import task_service_pb2

pytestmark = pytest.mark.asyncio(loop_scope="function")

TOKEN = "test-service-token"
EXECUTOR = "10.0.0.7:50052"
Feed = pb2.WatchSchedulerEventsResponse


@dataclass
class Env:
    registry: RegistryServer
    client: RegistryClient
    stream: RecordStream

    def task(self, name: str, policy: str = "allow") -> int:
        fields = {
            "name": name,
            "task_type": "manual_task",
            "config": {"command": "true"},
            "concurrency_policy": policy,
        }
        with self.registry.app.db.session() as session:
            return task_store.create_task(session, fields, "admin", "UTC", datetime.now(UTC)).id

    async def feed(self, offers: bool = True) -> Any:
        """A scheduler's feed, read past its snapshot."""
        call = self.client.internal.WatchSchedulerEvents(
            pb2.WatchSchedulerEventsRequest(snapshot_pages=True, trigger_offers=offers),
            metadata=self.client.metadata,
        )
        while (await call.read()).type != Feed.EVENT_TYPE_SNAPSHOT_DONE:
            pass
        return call

    def trigger(self, task_id: int) -> asyncio.Task[task_service_pb2.TriggerTaskResponse]:
        call = self.client.tasks.TriggerTask(
            task_service_pb2.TriggerTaskRequest(task_id=task_id), metadata=self.client.metadata
        )
        return asyncio.ensure_future(call)

    async def answer(self, offer_id: int, executor: str) -> pb2.RunUpdateResult:
        answer = pb2.OfferAnswer(offer_id=offer_id, executor=executor)
        (result,) = await self.stream.record([pb2.RunUpdate(offer_answer=answer)])
        return result

    def row(self, execution_id: int) -> ExecutionRow:
        with self.registry.app.db.session() as session:
            row = session.scalar(select(ExecutionRow).where(ExecutionRow.id == execution_id))
            assert row is not None
            session.expunge(row)
            return row


@pytest_asyncio.fixture(loop_scope="function")
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    # A trigger waits for its answer as long as a test may take to give it (the test that lets it
    # expire shortens the wait): a busy machine must not turn an answer into a late one.
    monkeypatch.setattr(trigger_offers, "OFFER_WAIT_SECONDS", 30.0)
    settings = RegistrySettings.from_env(
        {"ZQ_SERVICE_TOKEN": TOKEN, "ZQ_DATA_DIR": str(tmp_path), "ZQ_REGISTRY_PORT": "0"}
    )
    registry = await create_server(settings)
    client = RegistryClient(f"127.0.0.1:{registry.port}", TOKEN)
    stream = RecordStream(client, answer_within=30)
    yield Env(registry, client, stream)
    await stream.close()
    await client.close()
    await registry.stop(0)


def offers(outcome: str) -> float:
    return REGISTRY.get_sample_value("zq_registry_trigger_offers_total", {"outcome": outcome}) or 0.0


async def next_event(feed: Any, within: float = 5.0) -> Feed:
    event: Feed = await asyncio.wait_for(feed.read(), within)
    return event


async def test_an_offer_naming_an_executor_creates_the_run_running_there_and_answers_with_it(
    env: Env,
) -> None:
    task_id = env.task("offered")
    feed = await env.feed()
    accepted_before = offers("accepted")
    triggered = env.trigger(task_id)
    offer = await next_event(feed)
    assert offer.type == Feed.EVENT_TYPE_TRIGGER_OFFER and offer.trigger_offer.task_id == task_id

    result = await env.answer(offer.trigger_offer.offer_id, EXECUTOR)
    response = await triggered

    assert result.code == 0 and result.HasField("start")
    started = result.start
    assert started.execution.id == response.execution_id and response.scheduler_up
    assert (started.attempt, started.execution.status, started.execution.executor) == (1, "running", EXECUTOR)
    assert (started.task.id, started.task.name, started.task.task_type) == (task_id, "offered", "manual_task")
    row = env.row(response.execution_id)
    assert (row.status, row.executor, row.attempt, row.trigger) == ("running", EXECUTOR, 1, "manual")
    assert row.start_time is not None and row.lease_expires_at is not None
    assert row.created_at <= row.start_time < row.lease_expires_at
    assert env.registry.app.progress.get(row.id) is not None  # the lease reaper follows it
    assert offers("accepted") == accepted_before + 1
    with pytest.raises(TimeoutError):  # the scheduler has the run from its answer: no execution_ready
        await next_event(feed, within=0.3)
    feed.cancel()


async def test_a_declined_offer_makes_the_run_pending_and_announces_it_ready(env: Env) -> None:
    task_id = env.task("declined")
    feed = await env.feed()
    triggered = env.trigger(task_id)
    offer = await next_event(feed)

    result = await env.answer(offer.trigger_offer.offer_id, "")
    response = await triggered

    assert result.code == 0 and result.WhichOneof("response") is None
    ready = await next_event(feed)
    assert ready.type == Feed.EVENT_TYPE_EXECUTION_READY and ready.execution.id == response.execution_id
    row = env.row(response.execution_id)
    assert (row.status, row.executor, row.attempt, row.start_time) == ("pending", None, 0, None)
    feed.cancel()


async def test_an_offer_not_answered_in_time_makes_the_run_pending_and_a_late_answer_finds_it_gone(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trigger_offers, "OFFER_WAIT_SECONDS", 0.05)
    task_id = env.task("unanswered")
    feed = await env.feed()
    expired_before = offers("expired")
    triggered = env.trigger(task_id)
    offer = await next_event(feed)

    response = await triggered  # after its wait
    ready = await next_event(feed)
    late = await env.answer(offer.trigger_offer.offer_id, EXECUTOR)

    assert ready.type == Feed.EVENT_TYPE_EXECUTION_READY and ready.execution.id == response.execution_id
    assert env.row(response.execution_id).status == "pending"
    assert (late.code, late.reason) == (grpc.StatusCode.NOT_FOUND.value[0], Reason.TRIGGER_OFFER_GONE)
    assert offers("expired") == expired_before + 1
    feed.cancel()


async def test_a_refused_trigger_refuses_the_answer_with_its_reason(env: Env) -> None:
    task_id = env.task("forbidden", policy="forbid")
    feed = await env.feed(offers=False)
    first = await env.trigger(task_id)  # no offer: pending, so live
    feed.cancel()
    feed = await env.feed()
    triggered = env.trigger(task_id)
    offer = await next_event(feed)

    result = await env.answer(offer.trigger_offer.offer_id, EXECUTOR)

    assert result.reason == Reason.RUN_ALREADY_ACTIVE and str(first.execution_id) in result.message
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await triggered
    assert reason_of(refused.value) == Reason.RUN_ALREADY_ACTIVE
    feed.cancel()


async def test_a_feed_that_did_not_ask_gets_no_offer_and_the_run_arrives_pending(env: Env) -> None:
    task_id = env.task("plain")
    feed = await env.feed(offers=False)
    response = await env.trigger(task_id)
    ready = await next_event(feed)
    assert ready.type == Feed.EVENT_TYPE_EXECUTION_READY and ready.execution.id == response.execution_id
    assert env.row(response.execution_id).status == "pending"
    feed.cancel()


async def test_an_answer_to_no_offer_is_gone_and_one_with_other_updates_is_refused(env: Env) -> None:
    task_id = env.task("batched")
    stray = await env.answer(12345, EXECUTOR)
    assert stray.reason == Reason.TRIGGER_OFFER_GONE
    answer = pb2.RunUpdate(offer_answer=pb2.OfferAnswer(offer_id=1, executor=EXECUTOR))
    create = pb2.RunUpdate(create=pb2.CreateExecutionRequest(task_id=task_id, trigger="schedule"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await env.stream.record([answer, create])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == Reason.RUN_UPDATE_INVALID


async def test_a_trigger_whose_caller_went_away_still_creates_its_run_and_answers_the_scheduler(
    env: Env,
) -> None:
    task_id = env.task("abandoned")
    feed = await env.feed()
    triggered = env.trigger(task_id)
    offer = await next_event(feed)
    triggered.cancel()
    await asyncio.sleep(0.3)  # the registry sees the call cancelled

    result = await asyncio.wait_for(env.answer(offer.trigger_offer.offer_id, EXECUTOR), 5)

    assert result.HasField("start") and result.start.attempt == 1
    row = env.row(result.start.execution.id)
    assert (row.status, row.executor) == ("running", EXECUTOR)
    assert env.registry.app.progress.get(row.id) is not None
    feed.cancel()


async def test_an_answer_to_a_trigger_stuck_behind_another_writer_is_withdrawn_and_the_run_made_pending(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trigger_offers, "ANSWER_HELD_SECONDS", 0.2)
    task_id = env.task("stuck")
    feed = await env.feed()
    other = sqlite3.connect(env.registry.app.db.url.split("///", 1)[1], isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # SQLite's write lock: the trigger waits for it
        triggered = env.trigger(task_id)
        offer = await next_event(feed)
        result = await asyncio.wait_for(env.answer(offer.trigger_offer.offer_id, EXECUTOR), 5)
        other.execute("COMMIT")
    finally:
        other.close()
    response = await triggered

    assert (result.code, result.reason) == (grpc.StatusCode.NOT_FOUND.value[0], Reason.TRIGGER_OFFER_GONE)
    assert env.row(response.execution_id).status == "pending"
    ready = await next_event(feed)
    assert ready.type == Feed.EVENT_TYPE_EXECUTION_READY and ready.execution.id == response.execution_id
    feed.cancel()

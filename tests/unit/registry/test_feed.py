"""The scheduler's change feed (both backends): a snapshot of several pages delivers every task once,
with its newest planned time, and what changes while it streams follows it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import timedelta
from pathlib import Path

import pytest

from services.common.auth import TokenService, load_or_create_keys
from services.registry import feed
from services.registry.app import RegistryApp
from services.registry.convert import task_event
from services.registry.db import Database, utcnow
from services.registry.models import TaskRow
from services.registry.settings import RegistrySettings
from services.registry.store import executions as exec_store
from services.registry.store import tasks as task_store
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

Event = internal_pb2.WatchSchedulerEventsResponse


@pytest.fixture
def app(db: Database, tmp_path: Path) -> RegistryApp:
    settings = RegistrySettings.from_env({"ZQ_SERVICE_TOKEN": "t", "ZQ_DATA_DIR": str(tmp_path)})
    keys = load_or_create_keys(settings.jwt_key_path, settings.jwks_path)
    return RegistryApp.create(settings, db, TokenService(keys, 3600, 3600))


def create_tasks(db: Database, count: int) -> list[TaskRow]:
    now = utcnow()
    with db.session() as session:
        return [
            task_store.create_task(
                session,
                {"name": f"feed_{index}", "task_type": "example_task", "interval_seconds": 60},
                "admin",
                "UTC",
                now,
            )
            for index in range(count)
        ]


async def until_snapshot_done(events: AsyncGenerator[Event, None]) -> list[Event]:
    snapshot: list[Event] = []
    async for event in events:
        if event.type == Event.EVENT_TYPE_SNAPSHOT_DONE:
            return snapshot
        snapshot.append(event)
    raise AssertionError("the feed ended before its snapshot did")


async def test_a_snapshot_of_several_pages_delivers_every_task_once(app: RegistryApp, db: Database) -> None:
    tasks = create_tasks(db, 25)
    planned = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    with db.session() as session:
        for task in tasks[::4]:  # a page's planned times come from that page's tasks only
            exec_store.create_execution(
                session,
                exec_store.NewExecution(task_id=task.id, trigger="schedule", scheduled_time=planned),
                utcnow(),
            )
    events = feed.scheduler_feed(app, page_size=10)
    snapshot = await until_snapshot_done(events)
    await events.aclose()
    assert [event.task.id for event in snapshot] == [task.id for task in tasks]
    assert all(event.type == Event.EVENT_TYPE_TASK_UPSERT for event in snapshot)
    with_planned = {event.task.id for event in snapshot if event.HasField("last_scheduled_time")}
    assert with_planned == {task.id for task in tasks[::4]}
    assert all(
        event.last_scheduled_time.ToDatetime().replace(microsecond=0) == planned.replace(tzinfo=None)
        for event in snapshot
        if event.task.id in with_planned
    )


async def test_a_snapshot_in_pages_carries_each_task_once_without_the_display_fields(
    app: RegistryApp, db: Database
) -> None:
    tasks = create_tasks(db, 25)
    events = feed.scheduler_feed(app, page_size=10, pages=True)
    pages = await until_snapshot_done(events)
    await events.aclose()
    assert [page.type for page in pages] == [Event.EVENT_TYPE_SNAPSHOT_PAGE] * 3
    assert [len(page.snapshot_tasks) for page in pages] == [10, 10, 5]
    upserts = [upsert for page in pages for upsert in page.snapshot_tasks]
    assert [upsert.task.id for upsert in upserts] == [task.id for task in tasks]
    assert all(upsert.type == Event.EVENT_TYPE_TASK_UPSERT for upsert in upserts)
    assert all(upsert.HasField("schedule_anchor") for upsert in upserts)
    # The scheduler computes its own fire times: the list's next_run_time is not worked out for it.
    assert not any(upsert.task.HasField("next_run_time") for upsert in upserts)


# What only people read: the snapshot leaves it out (the live events carry the whole task).
FOR_PEOPLE = (
    "description",
    "created_at",
    "created_by",
    "updated_by",
    "retention_days",
    "tags",
    "next_run_time",
    "schedule_status",
    "latest_execution_time",
    "latest_execution_status",
)


async def test_a_snapshots_task_is_the_live_events_task_without_what_only_people_read(
    app: RegistryApp, db: Database
) -> None:
    now = utcnow()
    with db.session() as session:
        row = task_store.create_task(
            session,
            {
                "name": "feed_rich",
                "task_type": "example_task",
                "cron_expression": "30 18 * * 1-5",
                "timezone": "Asia/Shanghai",
                "description": "收盘后同步",
                "config": {"steps": 3, "symbols": ["600000.SH"]},
                "tags": ["daily"],
                "max_retries": 2,
                "retry_interval": 30,
                "timeout_seconds": 600,
                "concurrency_policy": "allow",
                "misfire_policy": "skip",
                "misfire_grace_seconds": 120,
                "calendar": "XSHG",
                "calendar_shift": -1,
                "retention_days": 7,
            },
            "admin",
            "UTC",
            now,
        )
    events = feed.scheduler_feed(app, pages=True)
    [page] = await until_snapshot_done(events)
    await events.aclose()
    [sent] = page.snapshot_tasks
    live = task_event(row, now).task
    assert live.description and live.tags and live.created_by  # there is something left out
    for name in FOR_PEOPLE:
        live.ClearField(name)
    assert sent.task == live


async def test_a_snapshot_that_fills_its_last_page_exactly_ends(app: RegistryApp, db: Database) -> None:
    tasks = create_tasks(db, 20)
    events = feed.scheduler_feed(app, page_size=10)
    snapshot = await until_snapshot_done(events)
    await events.aclose()
    assert [event.task.id for event in snapshot] == [task.id for task in tasks]


async def test_a_snapshot_closed_after_its_first_page_ends_quietly_and_reads_no_further(
    app: RegistryApp, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_tasks(db, 30)
    read: list[int] = []
    read_page = feed.snapshot_page

    def counted(app: RegistryApp, after_id: int, size: int) -> list[Event]:
        read.append(after_id)
        return read_page(app, after_id, size)

    monkeypatch.setattr(feed, "snapshot_page", counted)
    pages = feed.snapshot(app, page_size=10)
    first = await anext(pages)
    await pages.aclose()
    await asyncio.sleep(0.2)  # a page read ahead has had time to finish
    assert len(first) == 10
    # At most the page after it was read (ahead, while the first was on its way); none after that.
    assert read in ([0], [0, first[-1].task.id])


async def test_a_change_published_while_the_snapshot_streams_follows_it(
    app: RegistryApp, db: Database
) -> None:
    tasks = create_tasks(db, 15)
    events = feed.scheduler_feed(app, page_size=10)
    first = await anext(events)  # the feed is subscribed, its first page read
    assert first.task.id == tasks[0].id
    app.events.publish_scheduler(task_event(tasks[3], utcnow()))
    app.events.publish_scheduler(Event(type=Event.EVENT_TYPE_TASK_DELETE, task_id=tasks[14].id))
    rest = await until_snapshot_done(events)
    assert [event.task.id for event in [first, *rest]] == [task.id for task in tasks]
    changed = await asyncio.wait_for(anext(events), 5)
    deleted = await asyncio.wait_for(anext(events), 5)
    await events.aclose()
    assert changed.type == Event.EVENT_TYPE_TASK_UPSERT and changed.task.id == tasks[3].id
    assert deleted.type == Event.EVENT_TYPE_TASK_DELETE and deleted.task_id == tasks[14].id


async def test_a_quiet_feed_sends_heartbeats_and_a_change_between_them_at_once(
    app: RegistryApp, db: Database
) -> None:
    events = feed.scheduler_feed(app, heartbeat_seconds=0.5)
    await until_snapshot_done(events)
    assert (await anext(events)).type == Event.EVENT_TYPE_HEARTBEAT
    (task,) = create_tasks(db, 1)
    loop = asyncio.get_running_loop()
    published = loop.time()
    loop.call_soon(app.events.publish_scheduler, task_event(task, utcnow()))
    changed = await anext(events)
    assert changed.type == Event.EVENT_TYPE_TASK_UPSERT and changed.task.id == task.id
    assert loop.time() - published < 0.4  # not held until the next heartbeat
    assert (await anext(events)).type == Event.EVENT_TYPE_HEARTBEAT
    await events.aclose()


async def test_a_feed_that_reads_batches_gets_the_events_queued_together_as_one_message(
    app: RegistryApp, db: Database
) -> None:
    tasks = create_tasks(db, 3)
    batched = feed.scheduler_feed(app, batches=True)
    one_by_one = feed.scheduler_feed(app)
    await until_snapshot_done(batched)
    await until_snapshot_done(one_by_one)
    published = [
        task_event(tasks[0], utcnow()),
        Event(type=Event.EVENT_TYPE_TASK_DELETE, task_id=tasks[1].id),
        task_event(tasks[2], utcnow()),
    ]
    for event in published:  # as a group of creates is published: in one turn of the loop
        app.events.publish_scheduler(event)
    message = await asyncio.wait_for(anext(batched), 5)
    assert [message.task.id, message.then[0].task_id, message.then[1].task.id] == [
        tasks[0].id,
        tasks[1].id,
        tasks[2].id,
    ]
    assert [event.type for event in (message, *message.then)] == [event.type for event in published]
    assert not any(event.then for event in message.then)
    # The other feed reads them one per message, from events the batch left as they were.
    alone = [await asyncio.wait_for(anext(one_by_one), 5) for _ in published]
    assert alone == published and not any(event.then for event in alone)
    await batched.aclose()
    await one_by_one.aclose()


async def test_a_lone_event_goes_as_it_is_and_a_batch_stops_at_its_bounds(
    app: RegistryApp, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = create_tasks(db, 1)
    events = feed.scheduler_feed(app, batches=True)
    await until_snapshot_done(events)
    event = task_event(tasks[0], utcnow())
    app.events.publish_scheduler(event)
    assert await asyncio.wait_for(anext(events), 5) is event
    for _ in range(feed.BATCH_EVENTS + 5):
        app.events.publish_scheduler(event)
    full = await asyncio.wait_for(anext(events), 5)
    rest = await asyncio.wait_for(anext(events), 5)
    assert (1 + len(full.then), 1 + len(rest.then)) == (feed.BATCH_EVENTS, 5)
    # By size: a batch stops growing once it holds BATCH_BYTES.
    monkeypatch.setattr(feed, "BATCH_BYTES", event.ByteSize() * 5 // 2)
    for _ in range(5):
        app.events.publish_scheduler(event)
    sizes = [1 + len((await asyncio.wait_for(anext(events), 5)).then) for _ in range(2)]
    assert sizes == [3, 2]
    await events.aclose()


async def test_a_batch_queued_before_the_hub_ends_the_feed_is_sent_and_then_the_feed_ends(
    app: RegistryApp, db: Database
) -> None:
    tasks = create_tasks(db, 2)
    events = feed.scheduler_feed(app, batches=True)
    await until_snapshot_done(events)
    for task in tasks:
        app.events.publish_scheduler(task_event(task, utcnow()))
    app.events.end_scheduler_feeds()  # e.g. it fell behind: it must subscribe again
    message = await asyncio.wait_for(anext(events), 5)
    assert [event.task.id for event in (message, *message.then)] == [task.id for task in tasks]
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(events), 5)

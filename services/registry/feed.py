"""The scheduler's change feed: a snapshot of every task, then what changes, with heartbeats.

The snapshot grows with the number of tasks, so it never runs on the event loop: it streams in pages
of `SNAPSHOT_PAGE` tasks, keyset by id, each read in a worker thread from Core rows (no ORM objects)
together with the newest recorded planned time of that page's tasks only (for catch-up), and sent
before the next page is read. The feed is subscribed before the first page is read, so whatever
changes while the snapshot streams is queued and follows it (a task changed meanwhile may arrive in
its page and again as an event: the scheduler applies an unchanged schedule as a no-op). A page
carries what scheduling needs of a task (`store.tasks.SCHEDULING_COLUMNS`), not what only people read.
A feed that asks for them also carries this registry's trigger offers once its snapshot is sent
(`live/trigger_offers.py`): before that its scheduler could not answer them in time.

A feed that asks for batches gets the live events that are queued together as one message (the
first event, the rest in its `then`): a group of creates committed at once (`task_creates.py`) is
one message to the scheduler, not one per task. A gRPC message costs both ends more than the event
it carries. Nothing waits for a batch to fill: a batch is what was queued when the feed writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import cast

from sqlalchemy import select

from services.registry.app import RegistryApp
from services.registry.convert import snapshot_event
from services.registry.live.events import RESUBSCRIBE
from services.registry.models import TaskRow
from services.registry.store.calendars import DEFINITIONS
from services.registry.store.run_history import last_scheduled_times
from services.registry.store.tasks import SCHEDULING_COLUMNS, TASKS
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

log = logging.getLogger(__name__)

SNAPSHOT_PAGE = 1000
# A quiet feed's sign of life: its writes fail once the scheduler is gone. Rare: each wakes both.
FEED_HEARTBEAT_SECONDS = 30.0
Event = internal_pb2.WatchSchedulerEventsResponse
# A batch of live events holds this many at the most, and stops growing past about BATCH_BYTES (a
# task's config may be 64 KiB; a gRPC message may not pass 4 MiB).
BATCH_EVENTS = 64
BATCH_BYTES = 1024 * 1024
SNAPSHOT_COLUMNS = [TASKS.c[name] for name in SCHEDULING_COLUMNS]


def snapshot_page(app: RegistryApp, after_id: int, size: int) -> list[Event]:
    """The task events of up to `size` tasks with an id above `after_id`, in id order (blocking)."""
    with app.db.session() as session:
        if after_id == 0:  # custom calendars as of this snapshot, for the events' definitions
            DEFINITIONS.reload(session)
        rows = session.execute(
            select(*SNAPSHOT_COLUMNS).where(TASKS.c.id > after_id).order_by(TASKS.c.id).limit(size)
        ).all()
        last_planned = last_scheduled_times(session, [row.id for row in rows])
    # A Core row has the attributes of a TaskRow that the conversion reads (SCHEDULING_COLUMNS).
    return [snapshot_event(cast(TaskRow, row), last_planned.get(row.id)) for row in rows]


async def snapshot(app: RegistryApp, page_size: int = SNAPSHOT_PAGE) -> AsyncGenerator[list[Event], None]:
    """Every task's event, page by page, each page built in a worker thread while the one before
    is on its way (so the scheduler applies a page while the next is read)."""
    following = asyncio.ensure_future(asyncio.to_thread(snapshot_page, app, 0, page_size))
    try:
        while True:
            page = await following
            full = len(page) == page_size
            if full:
                following = asyncio.ensure_future(
                    asyncio.to_thread(snapshot_page, app, page[-1].task.id, page_size)
                )
            if page:
                yield page
            if not full:
                return
    finally:  # the feed may end early: the page being read is not wanted, nor its error
        if not following.done():
            following.cancel()
        elif not following.cancelled():
            following.exception()


async def scheduler_feed(
    app: RegistryApp,
    page_size: int = SNAPSHOT_PAGE,
    heartbeat_seconds: float = FEED_HEARTBEAT_SECONDS,
    pages: bool = False,
    takes_offers: bool = False,
    batches: bool = False,
) -> AsyncGenerator[Event, None]:
    """The snapshot (a snapshot_page event per page with `pages`, else an event per task), its end
    marker, then live events until the hub ends the feed (RESUBSCRIBE); with `takes_offers`, the
    trigger offers of this registry too, once the snapshot is sent (a scheduler answers them only
    when it is ready); with `batches`, the live events queued together as one (`batched`)."""
    with app.events.scheduler_feed() as feed:
        async for page in snapshot(app, page_size):
            if pages:
                yield Event(type=Event.EVENT_TYPE_SNAPSHOT_PAGE, snapshot_tasks=page)
            else:
                for event in page:
                    yield event
        yield Event(type=Event.EVENT_TYPE_SNAPSHOT_DONE)
        with app.events.offers_to(feed) if takes_offers else contextlib.nullcontext():
            while True:
                try:
                    # A timeout scope, not wait_for: no task of its own per event.
                    async with asyncio.timeout(heartbeat_seconds):
                        event = await feed.get()
                except TimeoutError:
                    yield Event(type=Event.EVENT_TYPE_HEARTBEAT)
                    continue
                ending = event is RESUBSCRIBE
                if not ending:
                    if batches:
                        event, ending = batched(event, feed)
                    yield event
                if ending:
                    log.info("ending a scheduler feed that may have missed events; it subscribes again")
                    return


def batched(first: Event, feed: asyncio.Queue[Event]) -> tuple[Event, bool]:
    """`first` with the events queued behind it in its `then` (up to BATCH_EVENTS, about
    BATCH_BYTES), and whether the feed's end (RESUBSCRIBE) was among them. A lone event is sent as
    it is; a batch is a copy (an event is shared by every feed it was published to)."""
    if feed.empty():
        return first, False
    following: list[Event] = []
    size = first.ByteSize()
    ending = False
    while len(following) < BATCH_EVENTS - 1 and size < BATCH_BYTES and not feed.empty():
        event = feed.get_nowait()
        if event is RESUBSCRIBE:
            ending = True
            break
        following.append(event)
        size += event.ByteSize()
    if not following:
        return first, ending
    batch = Event()
    batch.CopyFrom(first)
    batch.then.extend(following)
    return batch, ending

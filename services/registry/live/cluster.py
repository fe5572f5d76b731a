"""Cluster bus: registry replicas on one PostgreSQL database share their live events.

Each replica's EventHub reaches only its own subscribers; this bus carries what one replica
publishes to the others with NOTIFY and applies what it hears (LISTEN) locally, so every replica
has the same view:

- scheduler-feed events (task changes, `execution_ready`, `terminate_requested`) reach the
  scheduler whichever replica its feed is connected to;
- execution state changes reach watchers, drop task-list caches, and start or stop tracking the
  run in the ProgressBuffer;
- progress snapshots and heartbeats reach watchers and renew the run's lease, so every replica
  may serve a run's watchers and reap it when it goes silent.

Channel: `zq_events`, plus `.<schema>` when the database URL selects another schema than
`public` (channels are per database, not per schema: deployments or test runs in other schemas of
the same database must not hear each other).

Payload: JSON `{"o": <replica id>, "m": [message, ...]}`. A message is `{"k": kind, ...}` with
protobuf messages as base64 of their binary encoding (compact and exact):
  `s` scheduler event (`e`) · `x` execution state change (`e`, attempt `a`) · `p` report of a
  running execution (`i`, `a`, and its snapshot `e` unless it is a bare heartbeat) · `t` / `X` a
  task change / an execution state change too big to send: receivers read the row themselves ·
  `u` a user changed (`n`): receivers drop its cached state (user_states.py) · `l` the scheduler
  leadership was released: receivers' standbys try at once (live/leadership.py).
Receivers ignore their own notifications (`o`): the listening connection hears everything.

Size: PostgreSQL refuses payloads of 8000 bytes or more. A snapshot that does not fit is sent
without its `steps` list (the guide's per-step log; it grows with the run, the counters and message
stay); if it still does not fit, a progress report goes as a bare heartbeat (receivers keep their
last snapshot and get the final result with the state change) and a state change as `X`. A
scheduler event that does not fit goes as `t` (task_upsert) or without the execution's result
(which the scheduler does not read).

Sending never blocks a publisher: messages are queued (the newest report of a run replaces a
queued older one) and a sender task packs them into as few payloads as fit and sends them with one
statement on its own autocommit connection. Delivery keeps the publishing order.

After its connection is lost, the listener reconnects with backoff and resynchronises from the
database: running rows are tracked afresh with a new lease, watchers get their execution's current
row, caches are dropped and scheduler feeds end (the scheduler subscribes again and gets a
snapshot, including pending runs). While it is disconnected the reaper pauses: other replicas'
heartbeats cannot arrive, so silence would mean nothing, and the replica reports itself not ready
(`on_listening`, wired to the server's readiness in services/registry/server.py): Envoy and the
kubelet stop sending it requests until it listens again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from google.protobuf.message import Message as ProtoMessage
from psycopg import sql
from sqlalchemy import select

from services.registry.convert import execution_to_proto, task_event
from services.registry.db import Database
from services.registry.live.events import EventHub
from services.registry.live.progress import ProgressBuffer
from services.registry.models import ExecutionRow, TaskRow
from services.registry.store.calendars import DEFINITIONS
from services.registry.store.run_history import task_names
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

log = logging.getLogger(__name__)

CHANNEL = "zq_events"
_MAX_IDENTIFIER = 63
# PostgreSQL's limit is < 8000 bytes; the room left covers the envelope around the messages.
MAX_PAYLOAD = 7900
MAX_MESSAGE = MAX_PAYLOAD - 64
# Messages per NOTIFY statement (packed into payloads of up to MAX_PAYLOAD bytes each).
BATCH_MESSAGES = 500
# Queued messages kept while the database cannot be reached; older ones are dropped beyond this
# (the receivers resynchronise when they reconnect).
MAX_PENDING = 10_000
# start() waits this long for the first LISTEN; stop() this long for queued events to go out.
START_WAIT_SECONDS = 10.0
DRAIN_SECONDS = 2.0
RECONNECT_MIN_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 5.0
# libpq options (unless the URL sets them): a connection to a vanished server fails within ~25 s
# instead of hanging; so does connecting.
_CONNECTION_DEFAULTS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
# The listener runs a query after this long without notifications.
IDLE_CHECK_SECONDS = 30.0
# The payloads go as one JSON array: psycopg dumps a text[] parameter in Python, escaping each
# character (2.5 ms of the event loop for eight full payloads, against 0.2 ms as JSON).
_NOTIFY = "SELECT pg_notify(%s, payload) FROM json_array_elements_text(%s::json) AS payload"

P = TypeVar("P", bound=ProtoMessage)


async def _readable(fd: int, seconds: float) -> bool:
    """Whether `fd` has data to read within `seconds`. One registration with the loop for the whole
    wait: psycopg's `notifies(timeout=...)` registers the socket anew every 0.1 s until it times
    out, which woke an idle registry ten times a second."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        async with asyncio.timeout(seconds):
            await ready
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


def channel_for(schema: str | None) -> str:
    if not schema or schema == "public":
        return CHANNEL
    name = f"{CHANNEL}.{schema}"
    if len(name.encode()) <= _MAX_IDENTIFIER:
        return name
    return f"{CHANNEL}.{hashlib.sha256(schema.encode()).hexdigest()[:40]}"


# ---- messages -----------------------------------------------------------------------------------


def _dump(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _b64(message: ProtoMessage) -> str:
    return base64.b64encode(message.SerializeToString()).decode("ascii")


def _decode(text: str, kind: type[P]) -> P:
    message = kind()
    message.ParseFromString(base64.b64decode(text))
    return message


def _candidates(execution: task_pb2.Execution) -> list[task_pb2.Execution]:
    """The execution, then (when it has steps) the same without its steps list."""
    if "steps" not in execution.result.fields:
        return [execution]
    lean = task_pb2.Execution()
    lean.CopyFrom(execution)
    del lean.result.fields["steps"]
    return [execution, lean]


def encode_scheduler(event: internal_pb2.WatchSchedulerEventsResponse) -> str:
    text = _dump({"k": "s", "e": _b64(event)})
    if len(text) <= MAX_MESSAGE:
        return text
    if event.type == internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TASK_UPSERT:
        return _dump({"k": "t", "i": event.task.id})
    lean = internal_pb2.WatchSchedulerEventsResponse()
    lean.CopyFrom(event)
    lean.execution.ClearField("result")
    return _dump({"k": "s", "e": _b64(lean)})


def encode_execution(execution: task_pb2.Execution, attempt: int) -> str:
    for candidate in _candidates(execution):
        text = _dump({"k": "x", "a": attempt, "e": _b64(candidate)})
        if len(text) <= MAX_MESSAGE:
            return text
    return _dump({"k": "X", "i": execution.id})


def encode_progress(execution_id: int, attempt: int, snapshot: task_pb2.Execution | None) -> str:
    message: dict[str, Any] = {"k": "p", "i": execution_id, "a": attempt}
    for candidate in _candidates(snapshot) if snapshot is not None else []:
        text = _dump({**message, "e": _b64(candidate)})
        if len(text) <= MAX_MESSAGE:
            return text
    return _dump(message)


# ---- the bus ------------------------------------------------------------------------------------


class ClusterBus:
    """Relay of this replica's EventHub to the others, and listener applying theirs here."""

    def __init__(
        self, db: Database, events: EventHub, progress: ProgressBuffer, clock: Callable[[], datetime]
    ) -> None:
        self.replica_id = secrets.token_hex(8)
        self._db = db
        self._events = events
        self._progress = progress
        self._clock = clock
        args, params = db.engine.dialect.create_connect_args(db.engine.url)
        # The same server, database, credentials and options (search_path) as the engine's pool.
        self._conninfo = " ".join(args)
        self._params = {k: v for k, v in params.items() if k != "context"}
        for key, value in _CONNECTION_DEFAULTS.items():
            self._params.setdefault(key, value)
        self._pending: OrderedDict[Hashable, str] = OrderedDict()
        self._keys = itertools.count()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._listening = asyncio.Event()
        self._overflowing = False
        self._tasks: list[asyncio.Task[None]] = []
        # User changes heard from other replicas (`u`); None after a resync: anything may have changed.
        self.on_user_change: list[Callable[[str | None], None]] = []
        # Releases of the leadership heard from other replicas (`l`), and after a resync.
        self.on_leadership_released: list[Callable[[], None]] = []
        # Called with True when the listener has connected (and resynchronised), False when it lost
        # its connection.
        self.on_listening: list[Callable[[bool], None]] = []

    @property
    def listening(self) -> bool:
        """True while this replica hears the others (between a connect and its loss)."""
        return self._listening.is_set()

    @property
    def backlog(self) -> int:
        """Messages queued for the other replicas (the metrics thread reads it)."""
        return len(self._pending)

    async def start(self) -> None:
        """Starts relaying and listening; waits (a while) until the listener is connected."""
        self._events.relay = self
        self._tasks = [
            asyncio.create_task(self._listen(), name="cluster-listen"),
            asyncio.create_task(self._send_loop(), name="cluster-send"),
        ]
        try:
            async with asyncio.timeout(START_WAIT_SECONDS):
                await self._listening.wait()
        except TimeoutError:
            log.warning("cluster bus not connected yet; it keeps trying")

    async def stop(self) -> None:
        """Sends what is still queued (waiting a while), then stops."""
        self._events.relay = None
        if self._pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_SECONDS):
                    await self._drained.wait()
        if self._pending:
            log.warning("cluster bus stopped with unsent events", extra={"unsent": len(self._pending)})
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # ---- Relay: what this replica publishes ------------------------------------------------

    def scheduler_event(self, event: internal_pb2.WatchSchedulerEventsResponse) -> None:
        self._enqueue(next(self._keys), encode_scheduler(event))

    def execution_changed(self, execution: task_pb2.Execution, attempt: int) -> None:
        # A queued report of the run is superseded, and must not arrive after the change.
        self._pending.pop(("p", execution.id), None)
        self._enqueue(next(self._keys), encode_execution(execution, attempt))

    def progress(self, execution_id: int, attempt: int, snapshot: task_pb2.Execution | None) -> None:
        key = ("p", execution_id)
        if snapshot is None and key in self._pending:
            return  # the queued report renews the lease as well
        self._enqueue(key, encode_progress(execution_id, attempt, snapshot))

    def user_changed(self, username: str) -> None:
        self._enqueue(("u", username), _dump({"k": "u", "n": username}))

    def leadership_released(self) -> None:
        self._enqueue("l", _dump({"k": "l"}))

    def _enqueue(self, key: Hashable, message: str) -> None:
        # Assigning an existing key replaces the queued report in its place.
        self._pending[key] = message
        self._drained.clear()
        if len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
            if not self._overflowing:
                self._overflowing = True
                log.warning("cluster bus backlog full: dropping the oldest events until sending works")
        self._wake.set()

    def _pack(self, messages: list[str]) -> list[str]:
        head = f'{{"o":"{self.replica_id}","m":['
        payloads: list[str] = []
        current: list[str] = []
        size = len(head) + 2
        for message in messages:
            if current and size + len(message) + 1 > MAX_PAYLOAD:
                payloads.append(head + ",".join(current) + "]}")
                current, size = [], len(head) + 2
            current.append(message)
            size += len(message) + 1
        if current:
            payloads.append(head + ",".join(current) + "]}")
        return payloads

    async def _connect(self, role: str) -> tuple[psycopg.AsyncConnection[Any], str]:
        """An autocommit connection named after its role (pg_stat_activity), and the channel."""
        params = {**self._params, "application_name": f"zq-registry-{role}-{self.replica_id}"}
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True, **params)
        try:
            cursor = await conn.execute("SELECT current_schema()")
            row = await cursor.fetchone()
        except BaseException:
            await conn.close()
            raise
        return conn, channel_for(row[0] if row else None)

    async def _send_loop(self) -> None:
        conn: psycopg.AsyncConnection[Any] | None = None
        channel = CHANNEL
        backoff = RECONNECT_MIN_SECONDS
        try:
            while True:
                if not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                batch = list(itertools.islice(self._pending.items(), BATCH_MESSAGES))
                try:
                    if conn is None or conn.closed:
                        conn, channel = await self._connect("notify")
                    payloads = json.dumps(self._pack([message for _, message in batch]))
                    await conn.execute(_NOTIFY, (channel, payloads))
                except Exception as exc:
                    log.warning(
                        "cluster bus could not send; retrying",
                        extra={"error": str(exc), "queued": len(self._pending), "retry_in": backoff},
                    )
                    if conn is not None:
                        await conn.close()
                        conn = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)
                    continue
                backoff = RECONNECT_MIN_SECONDS
                self._overflowing = False
                for key, message in batch:
                    # Unless a newer report replaced it while this batch was on its way.
                    if self._pending.get(key) == message:
                        del self._pending[key]
                if not self._pending:
                    self._drained.set()
        finally:
            if conn is not None:
                await conn.close()

    # ---- listener: what the other replicas publish -------------------------------------------

    async def _listen(self) -> None:
        backoff = RECONNECT_MIN_SECONDS
        while True:
            try:
                conn, channel = await self._connect("listen")
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    # From here on every change is notified; what happened before is in the database.
                    await self._resync()
                    self._listening.set()
                    self._listening_changed(True)
                    backoff = RECONNECT_MIN_SECONDS
                    log.info("cluster bus listening", extra={"channel": channel, "replica": self.replica_id})
                    while True:
                        # What arrived, also while a query ran: at once, without waiting.
                        async for notify in conn.notifies(timeout=0):
                            self._receive(notify.payload)
                        if not await _readable(conn.fileno(), IDLE_CHECK_SECONDS):
                            # A quiet channel: prove the connection alive (and not idle to the server).
                            await conn.execute("SELECT 1")
            except Exception as exc:  # the connection, or the resynchronising reads
                log.warning(
                    "cluster bus listener disconnected; reconnecting",
                    extra={"error": str(exc), "retry_in": backoff},
                )
            finally:
                if self._listening.is_set():
                    self._listening.clear()
                    self._listening_changed(False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    def _listening_changed(self, listening: bool) -> None:
        for callback in self.on_listening:
            try:
                callback(listening)
            except Exception:
                log.exception("a cluster bus listening callback failed")

    async def _resync(self) -> None:
        """Catches up with what may have been missed while not listening (see the module doc). The
        reads grow with the running and watched runs: they run in a worker thread, and the
        notifications that arrive meanwhile wait on the connection until they are applied after."""
        self._progress.apply_running(await asyncio.to_thread(self._progress.read_running))
        watched = self._events.watched_executions()
        if watched:
            # Taken before the read (see ProgressBuffer.live_results).
            live = self._progress.live_results(watched)
            rows, names = await asyncio.to_thread(self._read_executions, watched)
            for row in rows:
                result = live.get(row.id) if row.status == "running" else None
                self._events.deliver_execution(execution_to_proto(row, names.get(row.task_id, ""), result))
        self._events.end_scheduler_feeds()
        for callback in self.on_user_change:
            callback(None)
        self._leadership_released()  # a release may have been missed

    def _leadership_released(self) -> None:
        for callback in self.on_leadership_released:
            callback()

    def _read_executions(self, execution_ids: list[int]) -> tuple[list[ExecutionRow], dict[int, str]]:
        with self._db.session() as session:
            rows = list(session.scalars(select(ExecutionRow).where(ExecutionRow.id.in_(execution_ids))))
            return rows, task_names(session, {row.task_id for row in rows})

    def _receive(self, payload: str) -> None:
        try:
            envelope = json.loads(payload)
            origin, messages = envelope["o"], envelope["m"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed cluster notification", extra={"payload": payload[:200]})
            return
        if origin == self.replica_id:
            return
        for message in messages:
            try:
                self._apply(message)
            except Exception:
                log.exception("could not apply a cluster event", extra={"event": str(message)[:200]})

    def _apply(self, message: dict[str, Any]) -> None:
        kind = message["k"]
        if kind == "s":
            event = _decode(message["e"], internal_pb2.WatchSchedulerEventsResponse)
            if event.type == internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TERMINATE_REQUESTED:
                self._progress.request_termination(event.execution.id)
            self._events.deliver_scheduler(event)
        elif kind == "t":
            with self._db.session() as session:
                task = session.get(TaskRow, message["i"])
                if task is not None and task.calendar:
                    # A custom calendar may have been created or changed on the other replica.
                    DEFINITIONS.reload(session)
            if task is not None:  # else its task_delete follows
                self._events.deliver_scheduler(task_event(task, self._clock()))
        elif kind == "x":
            self._state_changed(_decode(message["e"], task_pb2.Execution), message["a"])
        elif kind == "X":
            with self._db.session() as session:
                row = session.get(ExecutionRow, message["i"])
                names = task_names(session, {row.task_id}) if row is not None else {}
            if row is not None:
                self._state_changed(execution_to_proto(row, names.get(row.task_id, "")), row.attempt)
        elif kind == "p":
            snapshot = _decode(message["e"], task_pb2.Execution) if "e" in message else None
            run = self._progress.observe_report(message["i"], message["a"], snapshot)
            if run is not None and snapshot is not None:
                self._events.deliver_progress(run.snapshot)
        elif kind == "u":
            for callback in self.on_user_change:
                callback(message["n"])
        elif kind == "l":
            self._leadership_released()
        else:
            log.warning("ignored a cluster event of unknown kind", extra={"kind": kind})

    def _state_changed(self, execution: task_pb2.Execution, attempt: int) -> None:
        self._progress.observe_state(execution, attempt)
        self._events.deliver_execution(execution)

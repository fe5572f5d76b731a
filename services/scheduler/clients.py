"""gRPC clients of the scheduler: the registry and a pool of executors."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from dataclasses import dataclass, field

import grpc

from services.common.auth import service_metadata
from services.common.tracing import client_interceptors
from zquant.scheduler.v1 import (
    execution_service_pb2_grpc,
    executor_service_pb2,
    executor_service_pb2_grpc,
    registry_internal_service_pb2_grpc,
    status_service_pb2,
    task_service_pb2_grpc,
)

log = logging.getLogger(__name__)


def _channel_options(ping_without_calls: bool) -> list[tuple[str, int]]:
    """Keepalives notice a dead peer (executor killed, network cut) on an idle stream. An
    executor's streams are open only while it runs something: they are pinged every 5 s, and
    between runs it is not pinged at all (an idle stack would wake it every 5 s for nothing); a
    dead one is noticed by the next call to it. The registry's feed and leadership streams are
    always open: pinged every 20 s, as the leadership stream carries a message every few seconds
    anyway (a leader steps down when they stop: leader.py).

    A peer that could not be reached is tried again after 0.1 s, backing off to 1 s at most (gRPC's
    default goes from 1 s to 2 minutes): a call to an executor or registry that has just started
    or restarted is not refused for seconds by a channel still waiting out its backoff."""
    return [
        ("grpc.keepalive_time_ms", 20000 if ping_without_calls else 5000),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.keepalive_permit_without_calls", int(ping_without_calls)),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]


REGISTRY_CHANNEL_OPTIONS = _channel_options(ping_without_calls=True)
EXECUTOR_CHANNEL_OPTIONS = _channel_options(ping_without_calls=False)
# A call to the registry that has not answered by then has failed.
REGISTRY_TIMEOUT_SECONDS = 30


class RegistryClient:
    def __init__(self, address: str, service_token: str) -> None:
        self.channel = grpc.aio.insecure_channel(
            address, options=REGISTRY_CHANNEL_OPTIONS, interceptors=client_interceptors()
        )
        self.internal = registry_internal_service_pb2_grpc.RegistryInternalServiceStub(self.channel)
        self.executions = execution_service_pb2_grpc.ExecutionServiceStub(self.channel)
        self.tasks = task_service_pb2_grpc.TaskServiceStub(self.channel)
        self.metadata = service_metadata(service_token)

    async def close(self) -> None:
        await self.channel.close(None)


@dataclass
class ExecutorHandle:
    address: str
    channel: grpc.aio.Channel
    stub: executor_service_pb2_grpc.ExecutorServiceStub
    # Busy or unreachable executors are skipped until this monotonic time.
    cooldown_until: float = field(default=0.0)
    # Runs it takes at once, as it last said (GetLoad; 0 = not known yet: no limit here), and runs
    # this scheduler has claimed for it whose job has not ended there yet. A run is
    # claimed for it only while it has room: a claimed run shows running and its lease runs, so a
    # burst claimed beyond the executors' room would be reaped as lost before any executor took it.
    capacity: int = field(default=0)
    reserved: int = field(default=0)

    @property
    def has_room(self) -> bool:
        return self.capacity == 0 or self.reserved < self.capacity

    @classmethod
    def open(cls, address: str) -> ExecutorHandle:
        channel = grpc.aio.insecure_channel(
            address, options=EXECUTOR_CHANNEL_OPTIONS, interceptors=client_interceptors()
        )
        return cls(
            address=address, channel=channel, stub=executor_service_pb2_grpc.ExecutorServiceStub(channel)
        )


DNS_PREFIX = "dns:///"


class ExecutorPool:
    """Round robin over executors, skipping ones that recently refused or were unreachable, and
    only while they have room. Runs that find no room wait in line: each release hands the room to
    the run waiting longest, so a burst drains oldest first, at the pace executors free up, with no
    polling.

    Addresses are `host:port`, or `dns:///name:port` (e.g. a Kubernetes headless Service), which is
    re-resolved every `resolve_seconds` into one handle per executor, so busy cool-downs and
    Cancel reach the right replica.
    """

    def __init__(self, addresses: tuple[str, ...], service_token: str, resolve_seconds: float = 5.0) -> None:
        self.metadata = service_metadata(service_token)
        self._dns_names = [a[len(DNS_PREFIX) :] for a in addresses if a.startswith(DNS_PREFIX)]
        self._handles = [ExecutorHandle.open(a) for a in addresses if not a.startswith(DNS_PREFIX)]
        self._resolve_seconds = resolve_seconds
        self._resolved_at = float("-inf")
        self._resolving: asyncio.Task[None] | None = None
        # Handles of executors gone from DNS: a run may still be streaming from them.
        self._retired: list[ExecutorHandle] = []
        self._next = 0
        # Runs waiting for room, oldest first, and each waiting run's place by its key.
        self._waiting: deque[asyncio.Future[ExecutorHandle | None]] = deque()
        self._places: dict[int, asyncio.Future[ExecutorHandle | None]] = {}
        self._wake: asyncio.TimerHandle | None = None

    def pick(self) -> ExecutorHandle | None:
        """Round robin, an executor with room that is not cooling down; the run is counted on it
        until `release`. None when none has room, or when runs already wait for room (they come
        first)."""
        return None if self._waiting else self._take()

    async def wait_for_room(self, key: int) -> ExecutorHandle | None:
        """An executor with room for run `key`, counted on it until `release`: at once when one has
        room and no run waits, else when room frees, the longest-waiting run first. None when the
        run stopped waiting (`stop_waiting`)."""
        handle = self.pick()
        if handle is not None:
            return handle
        place: asyncio.Future[ExecutorHandle | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(place)
        self._places[key] = place
        try:
            return await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled() and (handle := place.result()) is not None:
                self.release(handle)  # handed over just as its run was cancelled: the next one's
            raise
        finally:
            if self._places.get(key) is place:
                del self._places[key]

    def stop_waiting(self, key: int) -> None:
        """Run `key` no longer waits for room (it was terminated): its wait ends with None."""
        place = self._places.pop(key, None)
        if place is not None and not place.done():
            place.set_result(None)

    @property
    def runs_out(self) -> bool:
        """Whether any run counted on an executor has not ended yet."""
        return any(handle.reserved for handle in self._handles + self._retired)

    @staticmethod
    def reserve(handle: ExecutorHandle) -> None:
        """Counts a run on `handle` that was not picked (one re-attached to where it runs)."""
        handle.reserved += 1

    def release(self, handle: ExecutorHandle) -> None:
        """The run `pick` or `reserve` counted on `handle` ended, went back to pending or was never
        claimed: its room goes to the longest-waiting run."""
        handle.reserved = max(0, handle.reserved - 1)
        self._hand_over()

    def release_all(self) -> None:
        """Every run counted is gone (the dispatcher that drove them stopped with its leadership),
        and so is every run waiting."""
        for handle in self._handles + self._retired:
            handle.reserved = 0
        for place in self._waiting:
            place.cancel()
        self._waiting.clear()
        self._places.clear()

    def learn_capacity(self, handle: ExecutorHandle, capacity: int) -> None:
        """How many runs `handle` takes at once, as it said: room it adds goes to the runs waiting."""
        handle.capacity = capacity
        self._hand_over()

    def _take(self) -> ExecutorHandle | None:
        stale = self._dns_names and time.monotonic() - self._resolved_at > self._resolve_seconds
        if stale and (self._resolving is None or self._resolving.done()):
            self._resolving = asyncio.get_running_loop().create_task(self.resolve())
        now = time.monotonic()
        for _ in range(len(self._handles)):
            handle = self._handles[self._next % len(self._handles)]
            self._next += 1
            if handle.cooldown_until <= now and handle.has_room:
                handle.reserved += 1
                return handle
        return None

    def _hand_over(self) -> None:
        """Room to the runs waiting, oldest first, while an executor has it; when only executors
        cooling down have room, again once the first cool-down ends."""
        while self._waiting:
            if self._waiting[0].done():  # its run was cancelled or stopped waiting
                self._waiting.popleft()
                continue
            handle = self._take()
            if handle is None:
                self._hand_over_after_cool_down()
                return
            self._waiting.popleft().set_result(handle)

    def _hand_over_after_cool_down(self) -> None:
        now = time.monotonic()
        ends = [h.cooldown_until for h in self._handles if h.has_room and h.cooldown_until > now]
        if not ends:
            return  # room comes with a release, an executor's capacity, or a new executor
        loop = asyncio.get_running_loop()
        at = loop.time() + (min(ends) - now)  # on the loop's clock, as the timer's `when()`
        if self._wake is not None:
            if self._wake.when() <= at:
                return
            self._wake.cancel()
        self._wake = loop.call_at(at, self._cool_down_over)

    def _cool_down_over(self) -> None:
        self._wake = None
        self._hand_over()

    async def resolve(self) -> None:
        loop = asyncio.get_running_loop()
        found: list[str] = []
        for name in self._dns_names:
            host, _, port = name.rpartition(":")
            try:
                infos = await loop.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            except OSError as exc:
                log.warning("cannot resolve executors", extra={"dns_name": name, "error": str(exc)})
                continue
            for family, _, _, _, sockaddr in infos:
                ip = str(sockaddr[0])
                found.append(f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}")
        self._resolved_at = time.monotonic()
        current = {h.address: h for h in self._handles}
        wanted = list(dict.fromkeys(found))
        self._retired += [h for address, h in current.items() if address not in wanted]
        self._handles = [current.get(address) or ExecutorHandle.open(address) for address in wanted]
        self._hand_over()

    async def keep_resolved(self) -> None:
        """Re-resolves the DNS names every `resolve_seconds` while no run asks (`pick` resolves only
        when dispatching), so an idle scheduler still knows its executors (zq_executors_connected)."""
        while self._dns_names:
            if time.monotonic() - self._resolved_at > self._resolve_seconds:
                await self.resolve()
            await asyncio.sleep(max(self._resolve_seconds, 0.1))

    def available_count(self) -> int:
        """Executors a run may go to now; read by the metrics thread (a copy of the list, no await)."""
        now = time.monotonic()
        return sum(1 for handle in list(self._handles) if handle.cooldown_until <= now)

    def handle_for(self, address: str) -> ExecutorHandle | None:
        """The executor at `address` (a run's recorded executor), if this pool knows it."""
        return next((h for h in self._handles + self._retired if h.address == address), None)

    async def loads(self, wait_seconds: float) -> list[status_service_pb2.ExecutorState]:
        """How busy each executor is now, asked of all at once; one that does not answer within
        `wait_seconds` is unreachable."""

        async def load(handle: ExecutorHandle) -> status_service_pb2.ExecutorState:
            try:
                answer: executor_service_pb2.GetLoadResponse = await handle.stub.GetLoad(
                    executor_service_pb2.GetLoadRequest(), metadata=self.metadata, timeout=wait_seconds
                )
            except grpc.aio.AioRpcError:
                return status_service_pb2.ExecutorState(address=handle.address, reachable=False)
            self.learn_capacity(handle, answer.capacity)
            return status_service_pb2.ExecutorState(
                address=handle.address,
                reachable=True,
                capacity=answer.capacity,
                active_runs=answer.active_runs,
                draining=answer.draining,
            )

        return list(await asyncio.gather(*(load(handle) for handle in self._handles)))

    @staticmethod
    def cool_down(handle: ExecutorHandle, seconds: float) -> None:
        handle.cooldown_until = time.monotonic() + seconds

    async def close(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
        if self._resolving is not None:
            self._resolving.cancel()
        for handle in self._handles + self._retired:
            await handle.channel.close(None)

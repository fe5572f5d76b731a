"""ProgressRelay gets a run's progress to the registry without holding up the executor's stream:
one report at a time, the newest snapshot winning while one is under way (a heartbeat never
replaces one), settle waiting until everything sent has landed, a refused report ending it."""

from __future__ import annotations

import asyncio

import pytest

from services.common.structs import dict_to_struct
from services.scheduler.progress_relay import ProgressRelay
from zquant.scheduler.v1 import executor_service_pb2

pytestmark = pytest.mark.asyncio


def progress(step: int) -> executor_service_pb2.RunResponse:
    return executor_service_pb2.RunResponse(
        type=executor_service_pb2.RunResponse.EVENT_TYPE_PROGRESS,
        result=dict_to_struct({"current_step": step}),
    )


HEARTBEAT = executor_service_pb2.RunResponse(type=executor_service_pb2.RunResponse.EVENT_TYPE_HEARTBEAT)


class Registry:
    """Answers each report when the test lets it; records what it was sent."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.sent: list[str] = []
        self.release = asyncio.Event()

    async def report(self, event: executor_service_pb2.RunResponse) -> bool:
        kind = executor_service_pb2.RunResponse.EventType.Name(event.type).removeprefix("EVENT_TYPE_").lower()
        step = event.result.fields["current_step"].number_value if kind == "progress" else None
        self.sent.append(f"{kind}:{step:.0f}" if step is not None else kind)
        await self.release.wait()
        return self.accept


async def test_while_a_report_is_under_way_only_the_newest_snapshot_waits() -> None:
    registry = Registry()
    relay = ProgressRelay(registry.report)
    relay.send(progress(1))
    await asyncio.sleep(0)
    for event in (progress(2), HEARTBEAT, progress(3), HEARTBEAT):  # the stream is not held up
        relay.send(event)
    registry.release.set()
    await relay.settle()
    # A heartbeat never replaces a waiting snapshot (the snapshot renews the lease as well).
    assert registry.sent == ["progress:1", "progress:3"]
    assert not relay.gone


async def test_a_heartbeat_waits_when_nothing_else_does() -> None:
    registry = Registry()
    relay = ProgressRelay(registry.report)
    relay.send(progress(1))
    await asyncio.sleep(0)
    relay.send(HEARTBEAT)
    registry.release.set()
    await relay.settle()
    assert registry.sent == ["progress:1", "heartbeat"]


async def test_settle_waits_until_what_was_sent_has_landed() -> None:
    registry = Registry()
    relay = ProgressRelay(registry.report)
    relay.send(progress(1))
    settled = asyncio.ensure_future(relay.settle())
    await asyncio.sleep(0.01)
    assert not settled.done()
    registry.release.set()
    await asyncio.wait_for(settled, 1)


async def test_a_refused_report_marks_the_attempt_gone_and_sends_nothing_more() -> None:
    registry = Registry(accept=False)
    relay = ProgressRelay(registry.report)
    relay.send(progress(1))
    await asyncio.sleep(0)
    relay.send(progress(2))
    registry.release.set()
    await relay.settle()
    assert relay.gone and registry.sent == ["progress:1"]

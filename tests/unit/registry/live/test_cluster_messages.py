"""The cluster bus's parts without a database: channels per schema, message encoding within
PostgreSQL's payload limit, and when the bus is on."""

from __future__ import annotations

import json

import pytest

from services.registry.live.cluster import (
    CHANNEL,
    MAX_MESSAGE,
    channel_for,
    encode_execution,
    encode_progress,
    encode_scheduler,
)
from services.registry.settings import RegistrySettings
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2


def test_channels_are_per_schema() -> None:
    assert channel_for("public") == channel_for(None) == CHANNEL
    assert channel_for("zq_a") == "zq_events.zq_a" != channel_for("zq_b")
    long = channel_for("s" * 80)
    assert len(long) <= 63 and long != channel_for("s" * 81)


def test_every_encoded_message_fits() -> None:
    huge = task_pb2.Execution(id=1, status="running")
    huge.result.update({"message": "x" * 20_000, "steps": [{"message": "y" * 100}] * 200})
    assert len(encode_progress(1, 1, huge)) <= MAX_MESSAGE
    assert json.loads(encode_progress(1, 1, huge)) == {"k": "p", "i": 1, "a": 1}
    assert json.loads(encode_execution(huge, 1)) == {"k": "X", "i": 1}
    task = task_pb2.Task(id=3, description="d" * 20_000)
    assert json.loads(
        encode_scheduler(
            internal_pb2.WatchSchedulerEventsResponse(
                type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TASK_UPSERT, task=task
            )
        )
    ) == {"k": "t", "i": 3}
    terminate_event = internal_pb2.WatchSchedulerEventsResponse(
        type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TERMINATE_REQUESTED, execution=huge
    )
    assert len(encode_scheduler(terminate_event)) <= MAX_MESSAGE


def test_cluster_events_are_on_by_default_on_postgresql_only() -> None:
    def settings(**env: str) -> RegistrySettings:
        return RegistrySettings.from_env({"ZQ_SERVICE_TOKEN": "t", **env})

    postgres = "postgresql://zquant@db:5432/zquant"
    assert not settings().cluster_events
    assert settings(ZQ_DATABASE_URL=postgres).cluster_events
    assert not settings(ZQ_DATABASE_URL=postgres, ZQ_CLUSTER_EVENTS="off").cluster_events
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        settings(ZQ_CLUSTER_EVENTS="on")
    with pytest.raises(ValueError, match="ZQ_CLUSTER_EVENTS must be on or off"):
        settings(ZQ_DATABASE_URL=postgres, ZQ_CLUSTER_EVENTS="maybe")

"""Backfills, driven by the leading scheduler: once a second while a backfill runs it asks the
registry to move every running backfill on (`AdvanceBackfills`: the next runs while fewer than
max_parallel are live, finishing those whose runs all ended) and dispatches the runs created.

While none runs (the registry says so in each answer) the loop does not poll: it waits for `wake`,
which the engine sets when a backfill's run is announced on the feed (the registry announces a new
backfill's first runs) and after each snapshot of the feed (a reconnect may have missed an
announcement). An idle stack therefore costs no registry call here.

The state is the database's, so this loop keeps none: a new leader after a restart simply goes on,
and a run created but never dispatched (its scheduler died in between) is pending, which the next
leader adopts with every other pending run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from services.scheduler.clients import REGISTRY_TIMEOUT_SECONDS, RegistryClient
from services.scheduler.reasons import describe
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

log = logging.getLogger(__name__)

ADVANCE_SECONDS = 1.0


async def drive_backfills(
    registry: RegistryClient,
    launch: Callable[[task_pb2.Execution], None],
    wake: asyncio.Event,
    interval: float = ADVANCE_SECONDS,
) -> None:
    """Forever (until cancelled with the engine): advance, dispatch what was created, wait."""
    while True:
        wake.clear()
        running = True  # after a failed call: try again soon
        try:
            response: internal_pb2.AdvanceBackfillsResponse = await registry.internal.AdvanceBackfills(
                internal_pb2.AdvanceBackfillsRequest(),
                metadata=registry.metadata,
                timeout=REGISTRY_TIMEOUT_SECONDS,
            )
            for execution in response.executions:
                launch(execution)
            running = response.running
        except grpc.aio.AioRpcError as exc:
            log.warning("cannot advance backfills", extra={"reason": describe(exc)})
        except Exception:  # a bug must not end backfills until the next leadership
            log.exception("advancing backfills failed")
        if running:
            await asyncio.sleep(interval)
        else:
            await wake.wait()

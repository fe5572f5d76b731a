"""Entry point: `python -m services.scheduler`."""

from __future__ import annotations

import asyncio
import logging

from services.common.logging import configure_logging
from services.common.metrics import EXECUTORS_CONNECTED, SCHEDULER_IS_LEADER, serve_metrics
from services.common.thread_priority import make_loop_thread_realtime
from services.common.tracing import configure_tracing
from services.scheduler.server import create_server
from services.scheduler.settings import SchedulerSettings

log = logging.getLogger("services.scheduler")


async def main() -> None:
    settings = SchedulerSettings.from_env()
    configure_logging("scheduler", settings.log_level)
    configure_tracing("scheduler")
    scheduler = await create_server(settings)
    SCHEDULER_IS_LEADER.set_function(lambda: scheduler.election.is_leader)
    EXECUTORS_CONNECTED.set_function(scheduler.executors.available_count)
    resolving = asyncio.create_task(scheduler.executors.keep_resolved(), name="executor-dns")
    serve_metrics(settings.host, settings.metrics_port)
    scheduler.server.install_signal_handlers()
    if settings.realtime:
        refused = make_loop_thread_realtime()  # "": granted
        log.info("loop thread priority", extra={"realtime": not refused, "reason": refused})
    # The guide's FAQ tells users to look for this line.
    log.info("Scheduler started", extra={"port": settings.port})
    await scheduler.server.wait_for_stop_signal()
    resolving.cancel()
    await scheduler.stop()


if __name__ == "__main__":
    asyncio.run(main())

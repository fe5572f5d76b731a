"""Entry point: `python -m services.executor`."""

from __future__ import annotations

import asyncio
import logging
import sys

from services.common.logging import configure_logging
from services.common.metrics import EXECUTOR_SLOTS, EXECUTOR_SLOTS_IN_USE, serve_metrics
from services.executor.server import create_server
from services.executor.settings import ExecutorSettings

log = logging.getLogger("services.executor")

# After the drain every run has reported; this only lets the last events reach the scheduler.
_STOP_GRACE_SECONDS = 5.0


async def serve(settings: ExecutorSettings) -> None:
    server, _, runner = await create_server(settings)
    EXECUTOR_SLOTS.set(settings.max_concurrency)
    EXECUTOR_SLOTS_IN_USE.set_function(lambda: runner.active_count)
    serve_metrics(settings.host, settings.metrics_port)
    server.install_signal_handlers()
    await server.wait_for_stop_signal()
    log.info("stopping", extra={"active": runner.active_count, "drain_seconds": settings.drain_seconds})
    await server.stop(_STOP_GRACE_SECONDS)


def main() -> int:
    configure_logging("executor")
    try:
        settings = ExecutorSettings.from_env()
    except ValueError as exc:
        log.error("invalid settings: %s", exc)
        return 2
    configure_logging("executor", settings.log_level)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())

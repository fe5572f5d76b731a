"""Entry point: `python -m services.scheduler`."""

from __future__ import annotations

import asyncio

from services.common.logging import configure_logging
from services.common.metrics import serve_metrics
from services.scheduler.server import create_server
from services.scheduler.settings import SchedulerSettings


async def main() -> None:
    settings = SchedulerSettings.from_env()
    configure_logging("scheduler", settings.log_level)
    scheduler = await create_server(settings)
    serve_metrics(settings.host, settings.metrics_port)
    scheduler.server.install_signal_handlers()
    await scheduler.server.wait_for_stop_signal()
    await scheduler.stop()


if __name__ == "__main__":
    asyncio.run(main())

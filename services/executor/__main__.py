"""Entry point: `python -m services.executor`."""

from __future__ import annotations

import asyncio
import logging
import sys

from services.common.logging import configure_logging
from services.common.metrics import serve_metrics
from services.common.tracing import configure_tracing
from services.executor.jobs.job_user import JobUser, job_user_for
from services.executor.server import create_server, export_slot_metrics
from services.executor.settings import ExecutorSettings

log = logging.getLogger("services.executor")

# After the drain every run has reported; this only lets the last events reach the scheduler.
_STOP_GRACE_SECONDS = 5.0


async def serve(settings: ExecutorSettings, job_user: JobUser | None) -> None:
    server, _, runner = await create_server(settings, job_user=job_user)
    export_slot_metrics(runner, settings.max_concurrency)
    serve_metrics(settings.host, settings.metrics_port)
    server.install_signal_handlers()
    await server.wait_for_stop_signal()
    log.info("stopping", extra={"active": runner.active_count, "drain_seconds": settings.drain_seconds})
    await server.stop(_STOP_GRACE_SECONDS)


def main() -> int:
    configure_logging("executor")
    try:
        settings = ExecutorSettings.from_env()
        job_user = job_user_for(settings.job_user, settings.work_dir)
    except ValueError as exc:
        log.error("invalid settings: %s", exc)
        return 2
    configure_logging("executor", settings.log_level)
    configure_tracing("executor")
    if job_user is not None:
        log.info("commands run as %s (uid %d)", job_user.name, job_user.uid)
    asyncio.run(serve(settings, job_user))
    return 0


if __name__ == "__main__":
    sys.exit(main())

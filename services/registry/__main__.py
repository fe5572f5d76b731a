"""Entry point: `python -m services.registry`."""

from __future__ import annotations

import asyncio

from services.common.logging import configure_logging
from services.common.metrics import CLUSTER_BUS_BACKLOG, CLUSTER_BUS_CONNECTED, serve_metrics
from services.common.tracing import configure_tracing
from services.registry.server import create_server
from services.registry.settings import RegistrySettings


async def main() -> None:
    settings = RegistrySettings.from_env()
    configure_logging("registry", settings.log_level)
    configure_tracing("registry")
    registry = await create_server(settings)
    cluster = registry.app.cluster
    if cluster is not None:
        CLUSTER_BUS_CONNECTED.labels("postgres").set_function(lambda: cluster.listening)
        CLUSTER_BUS_BACKLOG.labels("postgres").set_function(lambda: cluster.backlog)
    # /ready there is what Envoy checks (services/common/server.py answers_ready).
    serve_metrics(settings.host, settings.metrics_port, ready=registry.server.answers_ready)
    registry.server.install_signal_handlers()
    await registry.server.wait_for_stop_signal()
    await registry.stop()


if __name__ == "__main__":
    asyncio.run(main())

"""Executor wiring: auth (service token only), servicer, health, reflection, drain on stop."""

from __future__ import annotations

import random

from services.common.auth import SERVICE_PRINCIPAL, Principal, bearer_token, is_service_token
from services.common.errors import Reason, Unauthenticated
from services.common.guard import Authenticator
from services.common.metrics import EXECUTOR_DRAINING, EXECUTOR_SLOTS
from services.common.server import ServiceServer
from services.executor.jobs.job_user import JobUser
from services.executor.jobs.plugin import PluginRegistry
from services.executor.runner import Runner
from services.executor.servicer import ExecutorServicer
from services.executor.settings import ExecutorSettings
from zquant.scheduler.v1 import executor_service_pb2, executor_service_pb2_grpc

SERVICE_NAME = executor_service_pb2.DESCRIPTOR.services_by_name["ExecutorService"].full_name


def service_token_authenticator(service_token: str) -> Authenticator:
    """Only the scheduler calls the executor; user tokens are refused too."""

    def authenticate(method: str, metadata: dict[str, str]) -> Principal:
        if is_service_token(bearer_token(metadata), service_token):
            return SERVICE_PRINCIPAL
        raise Unauthenticated("需要服务令牌", reason=Reason.SERVICE_TOKEN_REQUIRED)

    return authenticate


async def create_server(
    settings: ExecutorSettings,
    *,
    plugins: PluginRegistry | None = None,
    rng: random.Random | None = None,
    job_user: JobUser | None = None,
) -> tuple[ServiceServer, int, Runner]:
    """Builds and starts the server; returns it, the bound port (settings.port 0 picks one) and the runner.

    `server.stop(grace)` drains first: new runs are refused, active ones get settings.drain_seconds.
    Plugins default to the `zquant_scheduler.task_actions` entry points. Commands run as `job_user`
    (None: the executor's own user); `__main__` resolves it with `jobs.job_user.job_user_for`.
    """
    runner = Runner(
        settings, PluginRegistry.from_entry_points() if plugins is None else plugins, rng, job_user
    )
    # Outcomes an earlier run of this executor stored are ready before the first re-attach arrives.
    await runner.restore()
    server = ServiceServer(settings.name, service_token_authenticator(settings.service_token))
    executor_service_pb2_grpc.add_ExecutorServiceServicer_to_server(ExecutorServicer(runner), server.server)
    server.add([SERVICE_NAME])

    async def drain() -> None:
        await runner.drain(settings.drain_seconds)

    server.on_stop(drain)
    port = await server.start(settings.host, settings.port)
    return server, port, runner


def export_slot_metrics(runner: Runner, slots: int) -> None:
    """`zq_executor_slots{state}` and `zq_executor_draining`, computed when Prometheus scrapes. A
    draining executor's empty slots are not free: the autoscaler and the dashboard must not count
    them as capacity."""
    EXECUTOR_SLOTS.labels("busy").set_function(lambda: runner.active_count)
    EXECUTOR_SLOTS.labels("free").set_function(lambda: 0 if runner.draining else slots - runner.active_count)
    EXECUTOR_SLOTS.labels("draining").set_function(
        lambda: slots - runner.active_count if runner.draining else 0
    )
    EXECUTOR_DRAINING.set_function(lambda: runner.draining)

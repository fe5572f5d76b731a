"""Registry server wiring: database, keys, servicers, authentication, cluster bus, background loops."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import grpc

from services.common.auth import (
    SERVICE_PRINCIPAL,
    Principal,
    TokenService,
    bearer_token,
    is_service_token,
    load_or_create_keys,
)
from services.common.errors import AlreadyExists, PermissionDenied, Unauthenticated
from services.common.server import Authenticator, ServiceServer
from services.registry.app import RegistryApp
from services.registry.db import Database, migrate
from services.registry.servicers import auth as auth_servicers
from services.registry.servicers.executions import ExecutionServicer, StatsServicer
from services.registry.servicers.internal import InternalServicer
from services.registry.servicers.tasks import TaskServicer
from services.registry.servicers.workflows import CronServicer, WorkflowServicer
from services.registry.settings import RegistrySettings
from services.registry.store.users import ensure_admin
from services.registry.task_watch import TaskChangeWatcher
from services.registry.user_states import UserStates
from zquant.scheduler.v1 import (
    cron_service_pb2,
    cron_service_pb2_grpc,
    execution_service_pb2,
    execution_service_pb2_grpc,
    registry_internal_service_pb2,
    registry_internal_service_pb2_grpc,
    stats_service_pb2,
    stats_service_pb2_grpc,
    task_service_pb2,
    task_service_pb2_grpc,
    workflow_service_pb2,
    workflow_service_pb2_grpc,
)

log = logging.getLogger(__name__)

PACKAGE = "/zquant.scheduler.v1."
OPEN_METHODS = frozenset({f"{PACKAGE}AuthService/Login", f"{PACKAGE}AuthService/RefreshToken"})
INTERNAL_PREFIX = f"{PACKAGE}RegistryInternalService/"
_VERIFIED_CACHE_SIZE = 4096


def make_authenticator(tokens: TokenService, service_token: str, users: UserStates) -> Authenticator:
    """Bearer header (direct gRPC and REST via Envoy) or the access_token cookie (EventSource)."""
    verified: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def authenticate(method: str, metadata: dict[str, str]) -> Principal | None:
        if method in OPEN_METHODS:
            return None
        token = bearer_token(metadata)
        if token is None and "cookie" in metadata:
            morsel = SimpleCookie(metadata["cookie"]).get("access_token")
            token = morsel.value if morsel else None
        if is_service_token(token, service_token):
            return SERVICE_PRINCIPAL
        if method.startswith(INTERNAL_PREFIX):
            raise PermissionDenied("内部接口只接受服务令牌")
        if not token:
            raise Unauthenticated("未提供认证令牌")
        # Signature checks cost ~0.1 ms; a verified token is remembered until it expires.
        cached = verified.get(token)
        if cached is not None and cached[1] > time.time():
            username = cached[0]
        else:
            claims = tokens.verify(token)
            username = str(claims["sub"])
            verified[token] = (username, float(claims["exp"]))
            if len(verified) > _VERIFIED_CACHE_SIZE:
                verified.popitem(last=False)
        # The role is today's, not the one in the token: demotions and disabling apply at once.
        return Principal(username=username, role=users.current_role(username))

    return authenticate


def _name(module: Any, service: str) -> str:
    return str(module.DESCRIPTOR.services_by_name[service].full_name)


@dataclass
class RegistryServer:
    app: RegistryApp
    server: ServiceServer
    port: int
    internal: InternalServicer
    background: list[asyncio.Task[None]]

    async def stop(self, grace: float = 5.0) -> None:
        await self.server.stop(grace)
        if self.app.cluster is not None:
            await self.app.cluster.stop()
        for task in self.background:
            task.cancel()
        self.app.progress.flush_due(force=True)
        self.app.db.dispose()


def prepare(settings: RegistrySettings) -> RegistryApp:
    """Schema, keys and the first admin: everything that must exist before serving."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url)
    migrate(db.engine)
    keys = load_or_create_keys(settings.jwt_key_path, settings.jwks_path)
    try:
        with db.session() as session:
            generated = ensure_admin(
                session,
                settings.admin_username,
                settings.admin_password,
                settings.data_dir / "admin_password.txt",
            )
    except AlreadyExists:  # another replica created it at the same moment
        generated = None
    if generated:
        log.warning("created admin user %r; password in admin_password.txt", settings.admin_username)
    return RegistryApp.create(
        settings, db, TokenService(keys, settings.access_token_ttl, settings.refresh_token_ttl)
    )


async def create_server(settings: RegistrySettings, app: RegistryApp | None = None) -> RegistryServer:
    app = app or prepare(settings)
    # Runs left running by a previous registry get a full lease to report again before reaping.
    app.progress.sync_running()
    if app.cluster is not None:
        await app.cluster.start()
    server = ServiceServer("registry", make_authenticator(app.tokens, settings.service_token, app.users))
    internal = InternalServicer(app)
    grpc_server: grpc.aio.Server = server.server
    task_service_pb2_grpc.add_TaskServiceServicer_to_server(TaskServicer(app), grpc_server)
    execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server(ExecutionServicer(app), grpc_server)
    stats_service_pb2_grpc.add_StatsServiceServicer_to_server(StatsServicer(app), grpc_server)
    workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server(WorkflowServicer(app), grpc_server)
    cron_service_pb2_grpc.add_CronServiceServicer_to_server(CronServicer(app), grpc_server)
    registry_internal_service_pb2_grpc.add_RegistryInternalServiceServicer_to_server(internal, grpc_server)
    server.add(
        [
            _name(task_service_pb2, "TaskService"),
            _name(execution_service_pb2, "ExecutionService"),
            _name(stats_service_pb2, "StatsService"),
            _name(workflow_service_pb2, "WorkflowService"),
            _name(cron_service_pb2, "CronService"),
            _name(registry_internal_service_pb2, "RegistryInternalService"),
            *auth_servicers.register(grpc_server, app),
        ]
    )
    port = await server.start(settings.host, settings.port)
    background = [
        asyncio.create_task(app.progress.run_flusher(), name="progress-flusher"),
        asyncio.create_task(internal.run_reaper(), name="lease-reaper"),
        asyncio.create_task(TaskChangeWatcher(app.db, app.events, app.clock).run(), name="task-watch"),
    ]
    return RegistryServer(app=app, server=server, port=port, internal=internal, background=background)

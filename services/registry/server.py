"""Registry server wiring: database, keys, servicers, authentication, cluster bus, background loops.

Two listeners when ZQ_REGISTRY_INTERNAL_PORT is set: the public one (Envoy, the CLI: every service)
and an internal one for the scheduler, which accepts only the service token and serves only what the
scheduler calls (RegistryInternalService, plus TaskService.GetTask and ExecutionService's list and
terminate). Each is its own gRPC server with its own port, connections, HTTP/2 stream limits and
request queue, so a flood of public requests (logins, listings) cannot queue leadership renewals or
run recording behind it; Envoy never routes to the internal port and the NetworkPolicy only lets the
scheduler reach it. Both share this process's event loop, so the other half of the isolation is that
nothing heavy runs on it (password hashing and large JSON go to bounded pools). Without the setting
the public port serves everything, as before; it always serves the internal service too (service
token only), so a scheduler not yet told of the internal port keeps working during a rollout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import grpc

from services.common.auth import (
    SERVICE_PRINCIPAL,
    Principal,
    TokenService,
    TokenSubject,
    bearer_token,
    is_service_token,
    load_or_create_keys,
)
from services.common.errors import AlreadyExists, PermissionDenied, Reason, Unauthenticated
from services.common.guard import Authenticator
from services.common.input_checks import check_request
from services.common.server import ServiceServer
from services.registry.app import RegistryApp
from services.registry.db import Database, check_schema, concurrent_change, migrate
from services.registry.housekeeping import Housekeeping
from services.registry.live.cluster import ClusterBus
from services.registry.live.leadership import LeadershipHolds
from services.registry.runs.batch_stream import BatchStreams
from services.registry.runs.reaper import LeaseReaper
from services.registry.runs.recorder import RunRecorder
from services.registry.servicers import alerts as alert_servicers
from services.registry.servicers import auth as auth_servicers
from services.registry.servicers.audit import AuditServicer
from services.registry.servicers.backfills import BackfillServicer
from services.registry.servicers.calendars import CalendarServicer
from services.registry.servicers.executions import ExecutionServicer, StatsServicer
from services.registry.servicers.internal import InternalServicer
from services.registry.servicers.status import StatusServicer
from services.registry.servicers.tasks import TaskServicer
from services.registry.servicers.transfer import TransferServicer
from services.registry.servicers.workflows import CronServicer, WorkflowServicer
from services.registry.session_cookie import ACCESS_COOKIE
from services.registry.settings import RegistrySettings
from services.registry.store.calendars import load_task_calendars
from services.registry.store.users import ensure_admin, purge_login_failures
from services.registry.user_states import UserStates
from zquant.scheduler.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    backfill_service_pb2,
    backfill_service_pb2_grpc,
    calendar_service_pb2,
    calendar_service_pb2_grpc,
    cron_service_pb2,
    cron_service_pb2_grpc,
    execution_service_pb2,
    execution_service_pb2_grpc,
    registry_internal_service_pb2,
    registry_internal_service_pb2_grpc,
    stats_service_pb2,
    stats_service_pb2_grpc,
    status_service_pb2,
    status_service_pb2_grpc,
    task_service_pb2,
    task_service_pb2_grpc,
    transfer_service_pb2,
    transfer_service_pb2_grpc,
    workflow_service_pb2,
    workflow_service_pb2_grpc,
)

log = logging.getLogger(__name__)

PACKAGE = "/zquant.scheduler.v1."
OPEN_METHODS = frozenset({f"{PACKAGE}AuthService/Login", f"{PACKAGE}AuthService/RefreshToken"})
INTERNAL_PREFIX = f"{PACKAGE}RegistryInternalService/"
# What the access_token cookie may authenticate: reads (the watch streams a browser's EventSource
# opens, and GETs), never a change.
COOKIE_METHOD_PREFIXES = ("Get", "List", "Watch", "Preview")
_VERIFIED_CACHE_SIZE = 4096
PURGE_LOGIN_FAILURES_SECONDS = 600.0
# The readiness condition of the LISTEN/NOTIFY link (services/common/server.py).
CLUSTER_BUS_CONDITION = "cluster_bus"


def _reads(method: str) -> bool:
    return method.rpartition("/")[2].startswith(COOKIE_METHOD_PREFIXES)


def make_authenticator(tokens: TokenService, service_token: str, users: UserStates) -> Authenticator:
    """Bearer header (direct gRPC and REST via Envoy), or the HttpOnly access_token cookie for reads
    (a browser's EventSource cannot send a header): a cookie alone never authorises a change (the
    gateway refuses such requests too, see gateway/error_shape.lua)."""
    verified: OrderedDict[str, tuple[TokenSubject, float]] = OrderedDict()

    def authenticate(method: str, metadata: dict[str, str]) -> Principal | None:
        if method in OPEN_METHODS:
            return None
        token = bearer_token(metadata)
        if token is None and "cookie" in metadata and _reads(method):
            morsel = SimpleCookie(metadata["cookie"]).get(ACCESS_COOKIE)
            token = morsel.value if morsel else None
        if is_service_token(token, service_token):
            return SERVICE_PRINCIPAL
        if method.startswith(INTERNAL_PREFIX):
            raise PermissionDenied("内部接口只接受服务令牌", reason=Reason.SERVICE_TOKEN_REQUIRED)
        if not token:
            raise Unauthenticated("未提供认证令牌")
        # Signature checks cost ~0.1 ms; a verified token is remembered until it expires.
        cached = verified.get(token)
        if cached is not None and cached[1] > time.time():
            subject = cached[0]
        else:
            claims = tokens.verify(token)
            subject = TokenSubject.from_claims(claims)
            verified[token] = (subject, float(claims["exp"]))
            if len(verified) > _VERIFIED_CACHE_SIZE:
                verified.popitem(last=False)
        # The role is today's, not the one in the token, and the token must still hold (its user's
        # token version, its session): changes apply at once.
        role = users.current_role(subject)
        return Principal(username=subject.username, role=role, session_id=subject.session_id)

    return authenticate


async def _purge_login_failures(app: RegistryApp, every: float = PURGE_LOGIN_FAILURES_SECONDS) -> None:
    """Forgets old failed-login counters now and then (a flood of made-up usernames adds rows)."""

    def purge() -> int:
        with app.db.session() as session:
            return purge_login_failures(session, app.clock())

    while True:
        try:
            purged = await asyncio.to_thread(purge)  # may be many rows: off the loop
            if purged:
                log.info("forgot old failed logins", extra={"rows": purged})
        except Exception:
            log.exception("purging old failed logins failed")
        await asyncio.sleep(every)


def internal_authenticator(service_token: str) -> Authenticator:
    """The internal listener: the service token, for every method; users are refused there."""

    def authenticate(method: str, metadata: dict[str, str]) -> Principal:
        if is_service_token(bearer_token(metadata), service_token):
            return SERVICE_PRINCIPAL
        raise PermissionDenied("内部端口只接受服务令牌", reason=Reason.SERVICE_TOKEN_REQUIRED)

    return authenticate


def check_public_request(method: str, request: Any) -> None:
    """The input rules of every public call (services/common/input_checks.py); internal calls carry
    what the services themselves produced, and are on the hot path."""
    if not method.startswith(INTERNAL_PREFIX):
        check_request(request)


def _name(module: Any, service: str) -> str:
    return str(module.DESCRIPTOR.services_by_name[service].full_name)


@dataclass
class RegistryServer:
    app: RegistryApp
    server: ServiceServer
    port: int
    runs: RunRecorder
    batch_streams: BatchStreams
    background: list[asyncio.Task[None]]
    # The scheduler's own listener (None: the public port serves it too) and its bound port.
    internal_server: ServiceServer | None = None
    internal_port: int = 0

    async def stop(self, grace: float = 5.0) -> None:
        # The public port drains first: runs go on being recorded while clients leave. The
        # scheduler's batch streams end just before the server they are on stops, which would
        # otherwise wait out its grace for them.
        if self.internal_server is None:
            await self.batch_streams.close(grace)
        await self.server.stop(grace)
        if self.internal_server is not None:
            await self.batch_streams.close(grace)
            await self.internal_server.stop(grace)
        if self.app.cluster is not None:
            await self.app.cluster.stop()
        for task in self.background:
            task.cancel()
        self.app.progress.flush_due(force=True)
        self.app.passwords.close()
        self.app.creates.close()
        self.app.db.dispose()


def _owner_only(path: Path, mode: int) -> None:
    """The data directory holds the JWT key, the admin password file and the SQLite database: no
    one but the registry's user may read them (commands run as another user; see the executor's
    README). Only what this user owns is changed (a mounted volume keeps its own rules)."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_uid == os.geteuid():
            path.chmod(mode)


def prepare(settings: RegistrySettings) -> RegistryApp:
    """Schema, keys and the first admin: everything that must exist before serving."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _owner_only(settings.data_dir, 0o700)
    db = Database(settings.database_url)
    if settings.migrate_on_start:
        migrate(db.engine)
    else:
        check_schema(db.engine)
    if settings.database_url.startswith("sqlite:///"):
        _owner_only(Path(settings.database_url.removeprefix("sqlite:///")), 0o600)
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


def watch_cluster_bus(server: ServiceServer, cluster: ClusterBus) -> None:
    """Readiness follows the cluster bus: a replica that does not hear the others is not ready."""
    server.set_condition(CLUSTER_BUS_CONDITION, cluster.listening)
    cluster.on_listening.append(lambda listening: server.set_condition(CLUSTER_BUS_CONDITION, listening))


async def create_server(settings: RegistrySettings, app: RegistryApp | None = None) -> RegistryServer:
    app = app or prepare(settings)
    # Runs left running by a previous registry get a full lease to report again before reaping.
    app.progress.sync_running()
    if app.cluster is not None:
        await app.cluster.start()
    server = ServiceServer(
        "registry",
        make_authenticator(app.tokens, settings.service_token, app.users),
        check_public_request,
        translate_error=concurrent_change,
    )
    if app.cluster is not None:
        watch_cluster_bus(server, app.cluster)
    await app.db.run(load_task_calendars)  # trading calendars, for tasks' next run times
    runs = RunRecorder(app)
    housekeeping = Housekeeping(app)
    holds = LeadershipHolds(app, housekeeping, settings.housekeeping_seconds)
    if app.cluster is not None:
        holds.on_release.append(app.cluster.leadership_released)
        app.cluster.on_leadership_released.append(holds.released)
    batch_streams = BatchStreams()
    internal = InternalServicer(app, runs, holds, housekeeping, batch_streams)
    grpc_server: grpc.aio.Server = server.server
    task_service_pb2_grpc.add_TaskServiceServicer_to_server(TaskServicer(app), grpc_server)
    execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server(ExecutionServicer(app), grpc_server)
    stats_service_pb2_grpc.add_StatsServiceServicer_to_server(StatsServicer(app), grpc_server)
    status_service_pb2_grpc.add_StatusServiceServicer_to_server(StatusServicer(app), grpc_server)
    backfill_service_pb2_grpc.add_BackfillServiceServicer_to_server(BackfillServicer(app), grpc_server)
    audit_service_pb2_grpc.add_AuditServiceServicer_to_server(AuditServicer(app), grpc_server)
    workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server(WorkflowServicer(app), grpc_server)
    cron_service_pb2_grpc.add_CronServiceServicer_to_server(CronServicer(app), grpc_server)
    transfer_service_pb2_grpc.add_TransferServiceServicer_to_server(TransferServicer(app), grpc_server)
    calendar_service_pb2_grpc.add_CalendarServiceServicer_to_server(CalendarServicer(app), grpc_server)
    registry_internal_service_pb2_grpc.add_RegistryInternalServiceServicer_to_server(internal, grpc_server)
    server.add(
        [
            _name(task_service_pb2, "TaskService"),
            _name(execution_service_pb2, "ExecutionService"),
            _name(stats_service_pb2, "StatsService"),
            _name(status_service_pb2, "StatusService"),
            _name(backfill_service_pb2, "BackfillService"),
            _name(audit_service_pb2, "AuditService"),
            _name(workflow_service_pb2, "WorkflowService"),
            _name(cron_service_pb2, "CronService"),
            _name(transfer_service_pb2, "TransferService"),
            _name(calendar_service_pb2, "CalendarService"),
            _name(registry_internal_service_pb2, "RegistryInternalService"),
            *auth_servicers.register(grpc_server, app),
            alert_servicers.register(grpc_server, app),
        ]
    )
    internal_server, internal_port = None, 0
    if settings.internal_port:
        internal_server = ServiceServer(
            "registry-internal",
            internal_authenticator(settings.service_token),
            translate_error=concurrent_change,
        )
        internal_grpc: grpc.aio.Server = internal_server.server
        # The same servicer objects: one recorder, one feed, whichever port a call came in on.
        registry_internal_service_pb2_grpc.add_RegistryInternalServiceServicer_to_server(
            internal, internal_grpc
        )
        task_service_pb2_grpc.add_TaskServiceServicer_to_server(TaskServicer(app), internal_grpc)
        execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server(
            ExecutionServicer(app), internal_grpc
        )
        internal_server.add(
            [
                _name(registry_internal_service_pb2, "RegistryInternalService"),
                _name(task_service_pb2, "TaskService"),
                _name(execution_service_pb2, "ExecutionService"),
            ]
        )
        internal_port = await internal_server.start(settings.host, settings.internal_port)
    port = await server.start(settings.host, settings.port)
    background = [
        asyncio.create_task(app.progress.run_flusher(), name="progress-flusher"),
        asyncio.create_task(LeaseReaper(app, runs).run(), name="lease-reaper"),
        asyncio.create_task(_purge_login_failures(app), name="login-failure-purge"),
    ]
    return RegistryServer(
        app=app,
        server=server,
        port=port,
        runs=runs,
        batch_streams=batch_streams,
        background=background,
        internal_server=internal_server,
        internal_port=internal_port,
    )

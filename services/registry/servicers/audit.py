"""AuditService (the admin's view of the audit log) and who is calling: `caller` gives the servicers
that change something the Actor they record with `store.audit.record`, in the change's transaction."""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy.orm import Session

from services.common.guard import current_principal
from services.common.structs import dict_to_struct
from services.registry.app import RegistryApp
from services.registry.convert import to_timestamp
from services.registry.models import AuditRow
from services.registry.store import audit
from zquant.scheduler.v1 import audit_service_pb2

Context = grpc.aio.ServicerContext[Any, Any]


def client_address(context: Context) -> str:
    """The caller's address: the gateway's `x-zq-client-address` (the TCP peer it saw), else the peer
    of this connection (direct gRPC)."""
    metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
    forwarded = metadata.get("x-zq-client-address", "").strip()
    if forwarded:
        return forwarded
    peer: str = context.peer() or ""
    # "ipv4:1.2.3.4:5678" / "ipv6:[::1]:5678" -> the host part.
    host = peer.partition(":")[2].rpartition(":")[0]
    return host.strip("[]") or peer


def caller(context: Context, role: str) -> audit.Actor:
    """The authenticated caller, who must have `role` (PermissionDenied otherwise), as an Actor."""
    principal = current_principal()
    principal.require(role)
    return audit.Actor(principal.username, client_address(context))


def entry_to_proto(row: AuditRow) -> audit_service_pb2.AuditEntry:
    return audit_service_pb2.AuditEntry(
        id=row.id,
        time=to_timestamp(row.at),
        actor=row.actor,
        address=row.address,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        target_name=row.target_name,
        changes=dict_to_struct(row.changes),
    )


class AuditServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def ListAuditEntries(
        self, request: audit_service_pb2.ListAuditEntriesRequest, context: Context
    ) -> audit_service_pb2.ListAuditEntriesResponse:
        current_principal().require("admin")
        query = audit.AuditQuery(
            skip=request.skip,
            limit=request.limit or 50,
            actor=request.actor.strip(),
            action=request.action.strip(),
            target_type=request.target_type.strip(),
            target_id=request.target_id.strip(),
        )

        def read(session: Session) -> audit_service_pb2.ListAuditEntriesResponse:
            rows, total = audit.list_entries(session, query)
            return audit_service_pb2.ListAuditEntriesResponse(
                entries=[entry_to_proto(row) for row in rows], total=total
            )

        return await self._app.db.run(read)

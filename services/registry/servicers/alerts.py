"""AlertService: channels (admin only), rules and the delivery history.

Proto in -> store.alert_settings (channels, rules) and store.alerts (deliveries) -> proto out. Database work in worker threads
(Database.run); a test message is sent in a worker thread too, bounded by the channel's timeout.
Every change (create, update, delete, and a channel's test message) is an audit entry written in
the change's own transaction: an update records the fields that changed (a channel's config field
by field, a secret only as "changed"), a create the values given.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from sqlalchemy.orm import Session

from services.common.guard import current_principal
from services.common.structs import dict_to_struct, struct_to_dict
from services.common.vocabulary import AlertChannelType
from services.registry.alerts.delivery import send_payload
from services.registry.app import RegistryApp
from services.registry.convert import to_timestamp
from services.registry.models import AlertChannelRow, AlertDeliveryRow, AlertRuleRow
from services.registry.servicers.audit import caller
from services.registry.store import alert_settings, audit
from services.registry.store import alerts as store
from services.registry.store.audit import Action, Target
from zquant.scheduler.v1 import alert_service_pb2 as pb2
from zquant.scheduler.v1 import alert_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def _rule_input(request: pb2.CreateAlertRuleRequest | pb2.UpdateAlertRuleRequest) -> alert_settings.RuleInput:
    return alert_settings.RuleInput(
        name=request.name,
        events=list(request.events),
        channel_ids=list(request.channel_ids),
        task_id=request.task_id,
        slow_seconds=request.slow_seconds,
        rate_limit_count=request.rate_limit_count if request.HasField("rate_limit_count") else 10,
        rate_limit_seconds=request.rate_limit_seconds if request.HasField("rate_limit_seconds") else 3600,
        enabled=request.enabled if request.HasField("enabled") else True,
    )


def rule_to_proto(row: AlertRuleRow) -> pb2.AlertRule:
    return pb2.AlertRule(
        id=row.id,
        name=row.name,
        events=row.events,
        channel_ids=row.channel_ids,
        task_id=row.task_id or 0,
        slow_seconds=row.slow_seconds,
        rate_limit_count=row.rate_limit_count,
        rate_limit_seconds=row.rate_limit_seconds,
        enabled=row.enabled,
        created_at=to_timestamp(row.created_at),
    )


def delivery_to_proto(row: AlertDeliveryRow, attempts: list[Any]) -> pb2.AlertDelivery:
    return pb2.AlertDelivery(
        id=row.id,
        event=row.event,
        rule_id=row.rule_id or 0,
        channel_id=row.channel_id,
        task_id=row.task_id or 0,
        execution_id=row.execution_id or 0,
        state=row.state,
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=to_timestamp(row.created_at),
        sent_at=to_timestamp(row.sent_at),
        payload=dict_to_struct(row.payload),
        attempt_log=[pb2.AlertAttempt(at=to_timestamp(a.at), ok=a.ok, error=a.error) for a in attempts],
    )


class AlertServicer(alert_service_pb2_grpc.AlertServiceServicer):  # type: ignore[misc]
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    def _channel(self, row: AlertChannelRow) -> pb2.AlertChannel:
        return pb2.AlertChannel(
            id=row.id,
            name=row.name,
            type=row.type,
            config=dict_to_struct(row.config),
            secrets_set=alert_settings.secret_fields_set(self._app.secrets, row),
            created_at=to_timestamp(row.created_at),
            updated_at=to_timestamp(row.updated_at),
        )

    # ---- channels ---------------------------------------------------------------------------

    async def ListAlertChannels(
        self, request: pb2.ListAlertChannelsRequest, context: Context
    ) -> pb2.ListAlertChannelsResponse:
        current_principal().require("admin")
        rows = await self._app.db.run(alert_settings.list_channels)
        return pb2.ListAlertChannelsResponse(channels=[self._channel(row) for row in rows])

    async def CreateAlertChannel(
        self, request: pb2.CreateAlertChannelRequest, context: Context
    ) -> pb2.AlertChannel:
        return await self._save_channel(request.name, request.type, request.config, None, context)

    async def UpdateAlertChannel(
        self, request: pb2.UpdateAlertChannelRequest, context: Context
    ) -> pb2.AlertChannel:
        return await self._save_channel(request.name, request.type, request.config, request.id, context)

    async def _save_channel(
        self, name: str, kind: str, config: Any, channel_id: int | None, context: Context
    ) -> pb2.AlertChannel:
        """Creates a channel (channel_id None) or replaces one (an update never creates)."""
        actor = caller(context, "admin")
        if channel_id is not None and channel_id <= 0:
            raise alert_settings.channel_not_found(channel_id)
        values = struct_to_dict(config)
        app = self._app

        def save(session: Session) -> AlertChannelRow:
            existing = alert_settings.get_channel(session, channel_id) if channel_id else None
            before = alert_settings.channel_audit_values(app.secrets, existing) if existing else None
            now = app.clock()
            row = alert_settings.save_channel(session, app.secrets, name, kind, values, now, channel_id or 0)
            after = alert_settings.channel_audit_values(app.secrets, row)
            action, changes = Action.ALERT_CHANNEL_CREATE, after
            if before is not None:
                # A removed secret shows in secrets_set; a new value only as "changed".
                given = dict.fromkeys(alert_settings.secrets_given(kind, values), "changed")
                action, changes = Action.ALERT_CHANNEL_UPDATE, {**audit.diff(before, after), **given}
            audit.record(
                session,
                audit.entry(actor, action, Target.ALERT_CHANNEL, row.id, now, name=row.name, changes=changes),
            )
            return row

        return self._channel(await app.db.run(save, serialized=True))  # decides on the names it reads

    async def DeleteAlertChannel(
        self, request: pb2.DeleteAlertChannelRequest, context: Context
    ) -> pb2.DeleteAlertChannelResponse:
        actor = caller(context, "admin")
        app = self._app

        def remove(session: Session) -> None:
            name = alert_settings.get_channel(session, request.id).name
            alert_settings.delete_channel(session, request.id)
            now = app.clock()
            audit.record(
                session,
                audit.entry(
                    actor, Action.ALERT_CHANNEL_DELETE, Target.ALERT_CHANNEL, request.id, now, name=name
                ),
            )

        await app.db.run(remove, serialized=True)  # decides on the rules it reads
        return pb2.DeleteAlertChannelResponse(message=f"告警渠道 {request.id} 已删除")

    async def TestAlertChannel(
        self, request: pb2.TestAlertChannelRequest, context: Context
    ) -> pb2.TestAlertChannelResponse:
        actor = caller(context, "admin")
        app = self._app
        row = await app.db.run(lambda s: alert_settings.get_channel(s, request.id))
        secrets = app.secrets.open(row.secret)
        now = app.clock()
        payload = {
            "event": "test",
            "task_id": 0,
            "task_name": "",
            "execution_id": 0,
            "status": "",
            "error_message": "",
            "time": now.isoformat(timespec="seconds"),
            "timezone": "UTC",
            "duration_seconds": 0,
            "retry_count": 0,
            "requested_by": actor.username,
        }
        error = await asyncio.to_thread(
            lambda: send_payload(app, AlertChannelType(row.type), dict(row.config), secrets, payload)
        )

        def record(session: Session) -> AlertDeliveryRow:
            now = app.clock()
            delivery = store.record_test(session, row.id, payload, now, error)
            outcome = {"ok": not error, "delivery_id": delivery.id}
            target = Target.ALERT_CHANNEL
            audit.record(
                session,
                audit.entry(
                    actor, Action.ALERT_CHANNEL_TEST, target, row.id, now, name=row.name, changes=outcome
                ),
            )
            return delivery

        delivery = await app.db.run(record)
        return pb2.TestAlertChannelResponse(ok=not error, error=error, delivery_id=delivery.id)

    # ---- rules ------------------------------------------------------------------------------

    async def ListAlertRules(
        self, request: pb2.ListAlertRulesRequest, context: Context
    ) -> pb2.ListAlertRulesResponse:
        current_principal().require("viewer")
        rows = await self._app.db.run(lambda s: alert_settings.list_rules(s, request.task_id))
        return pb2.ListAlertRulesResponse(rules=[rule_to_proto(row) for row in rows])

    async def CreateAlertRule(self, request: pb2.CreateAlertRuleRequest, context: Context) -> pb2.AlertRule:
        return await self._save_rule(_rule_input(request), None, context)

    async def UpdateAlertRule(self, request: pb2.UpdateAlertRuleRequest, context: Context) -> pb2.AlertRule:
        return await self._save_rule(_rule_input(request), request.id, context)

    async def _save_rule(
        self, rule: alert_settings.RuleInput, rule_id: int | None, context: Context
    ) -> pb2.AlertRule:
        """Creates a rule (rule_id None) or replaces one (an update never creates)."""
        actor = caller(context, "operator")
        if rule_id is not None and rule_id <= 0:
            raise alert_settings.rule_not_found(rule_id)
        app = self._app

        def save(session: Session) -> AlertRuleRow:
            before = (
                alert_settings.rule_audit_values(alert_settings.get_rule(session, rule_id))
                if rule_id
                else None
            )
            now = app.clock()
            row = alert_settings.save_rule(session, rule, now, rule_id or 0)
            after = alert_settings.rule_audit_values(row)
            action = Action.ALERT_RULE_CREATE if before is None else Action.ALERT_RULE_UPDATE
            changes = after if before is None else audit.diff(before, after)
            audit.record(
                session,
                audit.entry(actor, action, Target.ALERT_RULE, row.id, now, name=row.name, changes=changes),
            )
            return row

        return rule_to_proto(await app.db.run(save, serialized=True))  # decides on the channels it reads

    async def DeleteAlertRule(
        self, request: pb2.DeleteAlertRuleRequest, context: Context
    ) -> pb2.DeleteAlertRuleResponse:
        actor = caller(context, "operator")
        app = self._app

        def remove(session: Session) -> None:
            name = alert_settings.get_rule(session, request.id).name
            alert_settings.delete_rule(session, request.id)
            audit.record(
                session,
                audit.entry(
                    actor,
                    Action.ALERT_RULE_DELETE,
                    Target.ALERT_RULE,
                    request.id,
                    app.clock(),
                    name=name,
                ),
            )

        await app.db.run(remove)
        return pb2.DeleteAlertRuleResponse(message=f"告警规则 {request.id} 已删除")

    # ---- history ----------------------------------------------------------------------------

    async def ListAlertDeliveries(
        self, request: pb2.ListAlertDeliveriesRequest, context: Context
    ) -> pb2.ListAlertDeliveriesResponse:
        current_principal().require("viewer")
        query = store.DeliveryQuery(
            skip=request.skip,
            limit=request.limit or 100,
            state=request.state,
            channel_id=request.channel_id,
            task_id=request.task_id,
            execution_id=request.execution_id,
        )

        def page(session: Any) -> tuple[list[AlertDeliveryRow], int, dict[int, list[Any]]]:
            rows, total = store.list_deliveries(session, query)
            return rows, total, store.attempts_of(session, [row.id for row in rows])

        rows, total, attempts = await self._app.db.run(page)
        return pb2.ListAlertDeliveriesResponse(
            deliveries=[delivery_to_proto(row, attempts[row.id]) for row in rows], total=total
        )


def register(server: grpc.aio.Server, app: RegistryApp) -> str:
    alert_service_pb2_grpc.add_AlertServiceServicer_to_server(AlertServicer(app), server)
    return str(pb2.DESCRIPTOR.services_by_name["AlertService"].full_name)

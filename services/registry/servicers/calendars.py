"""CalendarService: the library's calendars and custom ones (a base plus added and removed dates).

A change to a custom calendar re-sends every task naming it to the scheduler feed (with the new
definition), so the scheduler picks it up exactly like a task change. A library calendar's data
refreshed by a data_sync_trading_calendar run is listed with its new range (store.calendars). Database work and loading a
library calendar's data run in worker threads.
"""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy.orm import Session

from services.common.calendars import builtin_names, loaded_calendar
from services.common.guard import current_principal
from services.registry.app import RegistryApp
from services.registry.convert import calendar_row_to_proto, task_event
from services.registry.store import calendars as store
from zquant.scheduler.v1 import calendar_service_pb2, task_pb2
from zquant.scheduler.v1.registry_internal_service_pb2 import WatchSchedulerEventsResponse as Event

Context = grpc.aio.ServicerContext[Any, Any]
Change = calendar_service_pb2.CreateCalendarRequest | calendar_service_pb2.UpdateCalendarRequest


class CalendarServicer:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def ListCalendars(
        self, request: calendar_service_pb2.ListCalendarsRequest, context: Context
    ) -> calendar_service_pb2.ListCalendarsResponse:
        current_principal()
        return await self._app.db.run(self._list)

    def _list(self, session: Session) -> calendar_service_pb2.ListCalendarsResponse:
        """Library calendars (data ranges of those this process loaded, with their synced data),
        then custom ones."""
        store.DEFINITIONS.reload(session)  # another replica may have changed one (cheap when not)
        listed = []
        for name in builtin_names():
            synced = store.DEFINITIONS.get(name)
            calendar = store.DEFINITIONS.calendar(synced) if synced is not None else loaded_calendar(name)
            listed.append(
                task_pb2.Calendar(
                    name=name,
                    source="builtin",
                    data_start=calendar.covered_from.isoformat() if calendar else "",
                    data_end=calendar.covered_until.isoformat() if calendar else "",
                )
            )
        listed.extend(calendar_row_to_proto(row) for row in store.custom_calendars(session))
        return calendar_service_pb2.ListCalendarsResponse(calendars=listed)

    async def CreateCalendar(
        self, request: calendar_service_pb2.CreateCalendarRequest, context: Context
    ) -> task_pb2.Calendar:
        principal = current_principal()
        principal.require("admin")

        def create(session: Session) -> task_pb2.Calendar:
            now = self._app.clock()
            row = store.create_calendar(session, request.name, _change(request), principal.username, now)
            store.DEFINITIONS.reload(session)
            return calendar_row_to_proto(row)

        return await self._app.db.run(create)

    async def UpdateCalendar(
        self, request: calendar_service_pb2.UpdateCalendarRequest, context: Context
    ) -> task_pb2.Calendar:
        principal = current_principal()
        principal.require("admin")
        now = self._app.clock()

        def update(session: Session) -> tuple[task_pb2.Calendar, list[Event]]:
            row, tasks = store.update_calendar(
                session, request.name, _change(request), principal.username, now
            )
            store.DEFINITIONS.reload(session)
            return calendar_row_to_proto(row), [task_event(task, now) for task in tasks]

        calendar, events = await self._app.db.run(update, serialized=True)  # locked on PostgreSQL
        for event in events:  # after the commit, like every task change
            self._app.events.publish_scheduler(event)
        return calendar

    async def DeleteCalendar(
        self, request: calendar_service_pb2.DeleteCalendarRequest, context: Context
    ) -> calendar_service_pb2.DeleteCalendarResponse:
        principal = current_principal()
        principal.require("admin")

        def delete(session: Session) -> None:
            store.delete_calendar(session, request.name)
            store.DEFINITIONS.reload(session)

        await self._app.db.run(delete, serialized=True)  # decided on the tasks naming it as read
        return calendar_service_pb2.DeleteCalendarResponse(message="日历已删除")


def _change(request: Change) -> store.CalendarChange:
    return store.CalendarChange(
        base=request.base.strip(),
        added=list(request.added_dates),
        removed=list(request.removed_dates),
        data_end=request.data_end.strip(),
        description=request.description,
    )

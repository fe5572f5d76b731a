"""The scheduler leader's housekeeping, one pass at a time: where calendars' data ends, the alert
outbox's due deliveries, the purge of history past its retention, and sealing ended runs into the
daily aggregates.

A pass does anything only for the leader of the current term (read from the database at its
start), so two schedulers, or two registries at a change of leader, never alert twice. It runs in a
worker thread: alert sends wait on networks and mail servers. Passes are asked for by the registry
that holds the leader's stream (live/leadership.py), or by a scheduler of the previous release
(RunHousekeeping).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.registry.alerts import delivery
from services.registry.app import RegistryApp
from services.registry.store import leadership, retention

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PassResult:
    alerts: delivery.PassResult
    runs_purged: int
    runs_sealed: int = 0

    @property
    def busy(self) -> bool:
        """Whether the pass did anything: more may be due soon."""
        alerts = self.alerts
        done = alerts.sent + alerts.failed + alerts.suppressed + alerts.retrying
        return bool(done or self.runs_purged or self.runs_sealed)


class Housekeeping:
    def __init__(self, app: RegistryApp) -> None:
        self._app = app
        self._calendar_endings = delivery.CalendarEndings()
        self._sealing = retention.Sealing(app.db)

    def run_pass(self, candidate: str, term: int) -> PassResult | None:
        """One pass for the leader `candidate` of `term`; None (nothing done) when it does not lead
        in that term. Blocking: call it from a worker thread."""
        app = self._app
        with app.db.session() as session:
            leader = leadership.current_leader(session, app.clock())
        if leader is None or leader.holder != candidate or leader.term != term:
            return None
        try:
            self._calendar_endings.check(app)
        except Exception:  # the deliveries and the purge go on
            log.exception("checking where calendars' data ends failed")
        alerts = delivery.deliver_due(app)
        settings = app.settings
        purged = retention.purge_pass(
            app.db, app.clock(), settings.retention_days, settings.purge_batch, settings.purge_batches
        )
        sealed = self._sealing.run()
        if sealed:
            log.debug("runs sealed into the daily aggregates", extra={"runs": sealed})
        if alerts.sent or alerts.failed or purged:
            log.info(
                "housekeeping",
                extra={"alerts_sent": alerts.sent, "alerts_failed": alerts.failed, "runs_purged": purged},
            )
        return PassResult(alerts=alerts, runs_purged=purged, runs_sealed=sealed)

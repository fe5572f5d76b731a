"""One delivery pass of the alert outbox, driven by the scheduler leader (RunHousekeeping).

A pass, in a worker thread, never on an event loop:
1. digests: for each rule and channel whose held-back alerts waited a whole rate-limit window, a
   digest message joins the outbox (store.alerts.enqueue_digests);
2. claim: due pending messages are held for a while (so a concurrent pass of a leader that just
   changed cannot take them too), and each is checked against its rule's rate limit, in order, so
   a batch cannot overshoot it: the ones over the limit are held back (`suppressed`) for a digest;
3. send: the rest go out in parallel (a few threads, each send with its channel's timeout);
4. record: each try is a row of its own; a failure is retried after 1, 2, 4 ... seconds (at most
   ZQ_ALERT_RETRY_MAX_SECONDS apart) until ZQ_ALERT_MAX_ATTEMPTS tries, then marked failed.

Before those, the pass raises calendar_data_ending (`CalendarEndings`): a calendar that an enabled
task uses whose data ends within ZQ_CALENDAR_WARN_DAYS goes to the outbox once per calendar and data
end (its key), for the rules with that event. The tasks are read once a minute at most, or at once
when those rules change; without such rules only the rules are read.

At least once: a message is marked sent only after its channel accepted it, so a pass that dies
between the two sends it again on the next pass.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.common.vocabulary import AlertChannelType
from services.registry.alerts.channels import DeliveryFailed, send
from services.registry.alerts.messages import render
from services.registry.app import RegistryApp
from services.registry.models import AlertChannelRow, AlertDeliveryRow, AlertRuleRow
from services.registry.store import alerts as store

log = logging.getLogger(__name__)

BATCH = 50
SENDERS = 8
# A claimed message is someone's for this long: longer than any send (timeouts are <= 20 s).
HOLD = timedelta(seconds=120)


@dataclass(frozen=True, slots=True)
class PassResult:
    sent: int = 0
    # Given up after their last try.
    failed: int = 0
    suppressed: int = 0
    # Failed this time, tried again later.
    retrying: int = 0
    # When the earliest pending delivery falls due after this pass (None: none is pending).
    next_due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Job:
    delivery_id: int
    kind: AlertChannelType
    config: dict[str, Any]
    secrets: dict[str, str]
    payload: dict[str, Any]
    attempts: int


# The tasks' calendars are read at most this often (or when the rules with the event change).
CALENDAR_CHECK_SECONDS = 60.0


class CalendarEndings:
    """When the leader's pass looks for calendars whose data ends (state of one registry process)."""

    def __init__(self) -> None:
        self._checked_at = float("-inf")
        self._rules: object = None

    def check(self, app: RegistryApp) -> int:
        """Blocks (database, first load of a calendar): from the pass's worker thread."""
        now = app.clock()
        with app.db.session() as session:
            rules = store.calendar_rules(session)
            seen = sorted((rule.id, rule.task_id or 0, rule.channel_ids) for rule in rules)
            moment = time.monotonic()
            if not rules or (seen == self._rules and moment - self._checked_at < CALENDAR_CHECK_SECONDS):
                self._rules = seen
                return 0
            self._rules, self._checked_at = seen, moment
            return store.enqueue_calendar_endings(session, now, app.settings.calendar_warn_days)


def run_url(app: RegistryApp, task_id: object, execution_id: object) -> str:
    """The run in the admin page: the link opens its task's history."""
    page = f"{app.settings.public_url}/admin/scheduler/"
    return f"{page}?task={task_id}&execution={execution_id}" if execution_id else page


def send_payload(
    app: RegistryApp,
    kind: AlertChannelType,
    config: dict[str, Any],
    secrets: dict[str, str],
    payload: dict[str, Any],
) -> str:
    """Renders and sends one message; "" when the channel took it, else why not."""
    fields = {**payload, "url": run_url(app, payload.get("task_id"), payload.get("execution_id"))}
    message = render(fields, str(config.get("language", "zh")), str(config.get("template", "")))
    try:
        send(kind, config, secrets, message)
    except DeliveryFailed as exc:
        return str(exc) or "delivery failed"
    except Exception as exc:  # a channel must never stop the pass
        log.exception("alert delivery crashed")
        return f"{type(exc).__name__}: {exc}"[:500]
    return ""


def deliver_due(app: RegistryApp) -> PassResult:
    now = app.clock()
    with app.db.session() as session:
        store.enqueue_digests(session, now)
    with app.db.session() as session:
        claimed = store.claim_due(session, now, BATCH, HOLD)
        jobs, suppressed = _admit(app, session, claimed)
        if not jobs:
            return PassResult(suppressed=suppressed, next_due_at=store.next_due(session))
    with ThreadPoolExecutor(max_workers=min(SENDERS, len(jobs)), thread_name_prefix="alert-send") as pool:
        errors = list(
            pool.map(lambda job: send_payload(app, job.kind, job.config, job.secrets, job.payload), jobs)
        )
    done = app.clock()
    sent = failed = retrying = 0
    with app.db.session() as session:
        for job, error in zip(jobs, errors, strict=True):
            retry_at = None
            if error and job.attempts + 1 < app.settings.alert_max_attempts:
                delay = min(2.0**job.attempts, app.settings.alert_retry_max_seconds)
                retry_at = done + timedelta(seconds=delay)
            store.record_attempt(session, job.delivery_id, done, error, retry_at)
            sent += not error
            failed += bool(error) and retry_at is None
            retrying += retry_at is not None
            if error:
                log.warning("alert delivery failed", extra={"delivery": job.delivery_id, "error": error})
        next_due_at = store.next_due(session)
    return PassResult(
        sent=sent, failed=failed, suppressed=suppressed, retrying=retrying, next_due_at=next_due_at
    )


def _admit(app: RegistryApp, session: Any, claimed: list[AlertDeliveryRow]) -> tuple[list[_Job], int]:
    """The claimed messages to send now; the ones over their rule's rate limit are held back."""
    jobs: list[_Job] = []
    suppressed = 0
    admitted: dict[tuple[int, int], int] = {}
    now = app.clock()
    for row in claimed:
        channel = session.get(AlertChannelRow, row.channel_id)
        if channel is None:  # deleted meanwhile: nothing to send to
            store.record_attempt(session, row.id, now, "告警渠道已删除", None)
            continue
        if row.rule_id is not None and row.event != "digest":
            rule = session.get(AlertRuleRow, row.rule_id)
            if rule is not None:
                key = (rule.id, channel.id)
                if key not in admitted:
                    since = now - timedelta(seconds=rule.rate_limit_seconds)
                    admitted[key] = store.sent_recently(session, rule.id, channel.id, since)
                if admitted[key] >= rule.rate_limit_count:
                    store.suppress(session, row.id)
                    suppressed += 1
                    continue
                admitted[key] += 1
        try:
            secrets = app.secrets.open(channel.secret)
        except Exception as exc:
            store.record_attempt(session, row.id, now, str(exc), None)
            continue
        jobs.append(
            _Job(
                row.id,
                AlertChannelType(channel.type),
                dict(channel.config),
                secrets,
                dict(row.payload),
                row.attempts,
            )
        )
    return jobs, suppressed

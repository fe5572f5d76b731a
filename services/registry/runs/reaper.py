"""The lease reaper: fails runs whose executor stopped reporting (killed, network cut).

A run is silent when nothing was heard of it for a lease; it is lost only if it stayed silent that
long under a scheduler leader known to be alive. Reports reach the registry through the leader, so
a silence while no scheduler leads (all stopped, crashed, restarting), or while the leader itself
does not answer (its term not renewed since the silence began), says nothing about the run: the
executor may be running it still, and holds its outcome until a scheduler takes it. The next leader
adopts such runs (it re-attaches to each where it runs); each has a whole lease from the moment
that leader took its term. Reaped earlier, a run that went on to succeed was recorded failed.

With replicas every one of them reaps: the first end wins, the others find the run ended
(FailedPrecondition) and drop it. A replica that does not hear the others (its cluster bus is
reconnecting) waits: their reports cannot reach it then. The lost runs of one pass are ended as one
batch through the RunRecorder (a large one in a worker thread).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from services.common.errors import FailedPrecondition, NotFound
from services.common.metrics import LOST_EXECUTOR_RUNS
from services.registry.app import RegistryApp
from services.registry.live.progress import LiveRun
from services.registry.runs.model import End, Ended
from services.registry.runs.recorder import RunRecorder
from services.registry.store.executions import LOST_EXECUTOR
from services.registry.store.leadership import Leadership, current_leader

log = logging.getLogger(__name__)
REAP_INTERVAL_SECONDS = 1.0

# A silent run and when it was last heard of.
Silent = tuple[LiveRun, datetime]


def lost_runs(silent: Sequence[Silent], leader: Leadership | None, lease_seconds: float) -> list[LiveRun]:
    """The runs silent for a whole lease under `leader` (the current one, None when no scheduler
    leads): counted from when each was last heard of, or from when the leader took its term if
    later, to the leader's last renewal (the last moment it is known alive)."""
    if leader is None or leader.renewed_at is None:
        return []
    lease = timedelta(seconds=lease_seconds)
    lost = []
    for run, heard_at in silent:
        since = heard_at if leader.taken_at is None else max(heard_at, leader.taken_at)
        if since + lease <= leader.renewed_at:
            lost.append(run)
    return lost


class LeaseReaper:
    def __init__(self, app: RegistryApp, recorder: RunRecorder) -> None:
        self._app = app
        self._recorder = recorder
        # Found no leader at this time.monotonic(): nothing can be lost for a lease after it (the
        # next leader gives every run a whole lease from taking office).
        self._no_leader_at: float | None = None

    async def reap(self) -> int:
        """Ends the runs lost under a live leader; returns how many this replica ended."""
        cluster = self._app.cluster
        if cluster is not None and not cluster.listening:
            return 0
        progress = self._app.progress
        silent = progress.silent_runs(self._app.settings.lease_seconds)
        if not silent:
            return 0
        now = self._app.clock()
        heard = [(run, now - timedelta(seconds=progress.silent_for(run))) for run in silent]
        leader = await asyncio.to_thread(self._leader, now)
        self._no_leader_at = time.monotonic() if leader is None else None
        lost = lost_runs(heard, leader, self._app.settings.lease_seconds)
        if not lost:
            return 0
        ends = [End(run.snapshot.id, run.attempt, "failed", error_message=LOST_EXECUTOR) for run in lost]
        reaped = 0
        for end, outcome in zip(ends, await self._recorder.end_many(ends), strict=True):
            if isinstance(outcome, Ended):
                reaped += 1
            elif isinstance(outcome, FailedPrecondition | NotFound):  # ended elsewhere, or deleted
                progress.forget(end.execution_id)
            else:
                log.error(
                    "could not reap a silent run",
                    extra={"execution_id": end.execution_id, "error": str(outcome)},
                )
        LOST_EXECUTOR_RUNS.labels("lease_expired").inc(reaped)
        return reaped

    def seconds_to_sleep(self) -> float:
        """Until the first tracked run could turn silent, checked at most every REAP_INTERVAL_SECONDS
        (an idle registry, or one whose runs all reported lately, is not woken every second); every
        second while the cluster bus reconnects, or while a silent run waits for its leader's next
        renewal; a lease after the last pass found no leader at all."""
        cluster = self._app.cluster
        if cluster is not None and not cluster.listening:
            return REAP_INTERVAL_SECONDS
        lease = self._app.settings.lease_seconds
        wait = self._app.progress.seconds_until_silence(lease)
        if self._no_leader_at is not None:
            wait = max(wait, self._no_leader_at + lease - time.monotonic())
        return max(REAP_INTERVAL_SECONDS, wait)

    def _leader(self, now: datetime) -> Leadership | None:
        with self._app.db.session() as session:
            return current_leader(session, now)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.seconds_to_sleep())
            try:
                if reaped := await self.reap():
                    log.warning("failed %d runs whose executor went silent", reaped)
            except Exception:
                log.exception("reaper failed; will retry")

"""The lease reaper: fails runs whose executor stopped reporting (killed, network cut, scheduler gone).

With replicas every one of them reaps: the first end wins, the others find the run ended
(FailedPrecondition) and drop it. A replica that does not hear the others (its cluster bus is
reconnecting) waits: their reports cannot reach it then. The silent runs of one pass are ended as one
batch through the RunRecorder (a large one in a worker thread).
"""

from __future__ import annotations

import asyncio
import logging

from services.common.errors import FailedPrecondition, NotFound
from services.common.metrics import LOST_EXECUTOR_RUNS
from services.registry.app import RegistryApp
from services.registry.runs.model import End, Ended
from services.registry.runs.recorder import RunRecorder
from services.registry.store.executions import LOST_EXECUTOR

log = logging.getLogger(__name__)
REAP_INTERVAL_SECONDS = 1.0


class LeaseReaper:
    def __init__(self, app: RegistryApp, recorder: RunRecorder) -> None:
        self._app = app
        self._recorder = recorder

    async def reap(self) -> int:
        """Ends the runs silent for longer than a lease; returns how many this replica ended."""
        cluster = self._app.cluster
        if cluster is not None and not cluster.listening:
            return 0
        silent = self._app.progress.silent_runs(self._app.settings.lease_seconds)
        if not silent:
            return 0
        ends = [End(run.snapshot.id, run.attempt, "failed", error_message=LOST_EXECUTOR) for run in silent]
        reaped = 0
        for end, outcome in zip(ends, await self._recorder.end_many(ends), strict=True):
            if isinstance(outcome, Ended):
                reaped += 1
            elif isinstance(outcome, FailedPrecondition | NotFound):  # ended elsewhere, or deleted
                self._app.progress.forget(end.execution_id)
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
        second while the cluster bus reconnects."""
        cluster = self._app.cluster
        if cluster is not None and not cluster.listening:
            return REAP_INTERVAL_SECONDS
        lease = self._app.settings.lease_seconds
        return max(REAP_INTERVAL_SECONDS, self._app.progress.seconds_until_silence(lease))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.seconds_to_sleep())
            try:
                if reaped := await self.reap():
                    log.warning("failed %d runs whose executor went silent", reaped)
            except Exception:
                log.exception("reaper failed; will retry")

"""Run recording: every state change of a run that the scheduler and the executors report.

A run is created by the scheduler (often started on an executor at once), reports progress while it
runs, and ends: its executor finished it, the lease reaper found it silent, or the scheduler ended
it. All of it arrives through `RegistryInternalService`, whose servicer only maps messages to
the values of `model` and back; the rules live here.

- **Batches** (`RunRecorder.record`, the scheduler's `RecordRuns`): progress reports are applied in
  memory on the event loop, in order and before the ends that follow them (`live.progress`). Creates,
  claims and ends are stored together: all creates with a dedup key as one insert, the claims for
  one executor as one update (`store.executions.claim_executions`), all ends whose start and whole
  result this replica holds (its live runs) as one update (`store.run_ends.end_runs`), the rest one
  by one, in one shared transaction.
- **Hand-off**: every database call of run recording (batches, single creates and ends, claims,
  requeues) runs in a worker thread, so the event loop serves other calls meanwhile: on a busy
  machine even a one-row commit held the loop for over 100 ms (the loop watchdog found it), which
  health checks and leadership renewals then waited for. Everything the thread needs from the live
  state (start times, live results, task names) is read on the loop before it goes, and what it
  changes there is applied on the loop after the commit.
- **Fallback**: a failing statement aborts a PostgreSQL transaction (a task deleted meanwhile, a run
  that ended elsewhere), so when anything in the shared transaction fails, it is rolled back and
  every update is stored again in a transaction of its own: the others still land and the failing
  one gets its own error. Single calls (`create`, `end`) take the same path with one update.
- **After commit**: publishing (watchers, the scheduler's feed, the cluster bus, live tracking,
  metrics) is collected while storing and run on the event loop once the transaction committed, so
  nobody sees a change that was rolled back.
- **Reaper** (`reaper.py`): runs whose executor stopped reporting for a lease are ended as failed
  through the same path, so a thousand silent runs are one batch, not a thousand transactions.

- **Manual triggers** (`trigger.py`): the run is created in the trigger's own transaction, already
  running on the executor the scheduler named while the task was locked (`live/trigger_offers.py`),
  else pending for the scheduler to claim.

Modules: `model` (the values), `recorder` (RunRecorder: batches, hand-off, fallback, publishing),
`transaction` (what one shared transaction stores and publishes), `reaper` (LeaseReaper),
`trigger` (a manual trigger), `batch_stream` (RecordRunStream's batches), `shielded` (work
kept to its end when its caller goes away).
"""

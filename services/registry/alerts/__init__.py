"""Failure alerts: channels, rules, an outbox delivered at least once.

- ``channels``: what a channel's config may hold, and sending to e-mail, a generic webhook
  (HMAC-SHA256 signed), DingTalk, WeCom and Feishu/Lark.
- ``messages``: the Chinese and English texts, and channels' own templates.
- ``secrets``: channel secrets encrypted at rest with the key in ZQ_ALERT_KEY.
- ``events``: which alert events a run's end raises (pure).
- ``delivery``: the scheduler leader's housekeeping pass: due messages are claimed, sent, retried
  with backoff, each attempt recorded; a per-rule rate limit holds the rest back for a digest.

The outbox rows are written by ``services.registry.store.alerts.enqueue`` inside the transaction
that ends the run (``store.run_ends.end_runs``), so an event is never lost nor alerted for a
run end that was rolled back; a unique key per (event, run, channel) suppresses duplicates.
"""

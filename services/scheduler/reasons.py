"""What the scheduler makes of a failed call: decisions on reasons, never on bare status codes.

The registry and the executors put a stable reason (``services.common.errors.Reason``) on every
error they answer; batched answers carry it too (the ledger turns them back into the same
AioRpcError). A status code only says how an error maps to HTTP: FAILED_PRECONDITION alone can mean
"this attempt is stale", "the run already ended" or "the executor already runs it", each wanting a
different reaction. So the scheduler reads the reason.

A failure with no reason never reached our code on the other side: the network or the gRPC
runtime made it. Only those are judged by their code (UNAVAILABLE, DEADLINE_EXCEEDED: the network;
UNIMPLEMENTED: an older peer without the method).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import grpc

from services.common.errors import EXECUTOR_UP_SINCE, Reason, error_metadata, reason_of

# The run (or this attempt of it) is no longer ours to drive: it ended, was claimed or reaped
# elsewhere, or it or its task was deleted. Nothing to do, nothing to retry.
RUN_GONE = frozenset(
    {
        Reason.ATTEMPT_STALE,
        Reason.RUN_ALREADY_ENDED,
        Reason.RUN_NOT_RUNNING,
        Reason.RUN_NOT_PENDING,
        Reason.EXECUTION_NOT_FOUND,
        Reason.TASK_NOT_FOUND,
    }
)
# The executor declined to start the run; another one (or this one later) may take it.
EXECUTOR_DECLINED = frozenset({Reason.EXECUTOR_BUSY, Reason.EXECUTOR_DRAINING})
# How long a declining executor is passed over: a busy one frees a slot soon, a draining one won't.
BUSY_COOL_DOWN_SECONDS = 1.0
AWAY_COOL_DOWN_SECONDS = 5.0
_NETWORK_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# The registry's and an executor's clocks may differ this much (hosts kept in time by NTP).
CLOCK_MARGIN = timedelta(seconds=1)


def run_is_gone(error: grpc.aio.AioRpcError) -> bool:
    return reason_of(error) in RUN_GONE


def task_is_gone(error: grpc.aio.AioRpcError) -> bool:
    return reason_of(error) == Reason.TASK_NOT_FOUND


def network_failure(error: grpc.aio.AioRpcError) -> bool:
    """The call never got an answer from the peer's code (connection lost, peer down, timeout)."""
    return not reason_of(error) and error.code() in _NETWORK_CODES


def method_missing(error: grpc.aio.AioRpcError) -> bool:
    """The peer has no such method (an older version, mid rolling upgrade)."""
    return not reason_of(error) and error.code() == grpc.StatusCode.UNIMPLEMENTED


def registry_hiccup(error: grpc.aio.AioRpcError) -> bool:
    """Worth trying again: the registry was unreachable, failed inside (a cut database
    connection, a restart) or had its database abort the update for another (a deadlock), rather
    than refusing the update."""
    return network_failure(error) or reason_of(error) in (Reason.INTERNAL, Reason.CONCURRENT_CHANGE)


def try_another_executor(error: grpc.aio.AioRpcError) -> bool:
    """An executor's answer before it accepted a run: the run itself is fine, that executor is not
    (busy, draining, unreachable)."""
    return reason_of(error) in EXECUTOR_DECLINED or network_failure(error)


def cool_down_seconds(error: grpc.aio.AioRpcError) -> float:
    """How long to pass over an executor that declined a run or could not be reached."""
    return BUSY_COOL_DOWN_SECONDS if reason_of(error) == Reason.EXECUTOR_BUSY else AWAY_COOL_DOWN_SECONDS


def describe(error: grpc.aio.AioRpcError) -> str:
    """The reason, or the code of a failure that has none: for logs."""
    return reason_of(error) or error.code().name


def never_reached_executor(error: grpc.aio.AioRpcError, assigned_at: datetime | None) -> bool:
    """An executor asked to re-attach to a run assigned to it at `assigned_at` (the registry's
    clock) does not know the run, and has been up since before then: the run never reached it (its
    scheduler claimed it and stopped before sending it). An executor keeps every run it accepted
    until the registry has its end, so nothing of the run ran there. Unknown to an executor that
    started since, the run may have died with it: that is not this."""
    if assigned_at is None or reason_of(error) != Reason.EXECUTION_NOT_FOUND:
        return False
    try:
        up_since = datetime.fromisoformat(error_metadata(error).get(EXECUTOR_UP_SINCE, ""))
    except ValueError:  # an executor of the previous release says nothing
        return False
    if up_since.tzinfo is None:
        return False
    return up_since < assigned_at - CLOCK_MARGIN

"""The scheduler's decisions on failed calls: made on the ErrorInfo reason, so one status code can
mean different things, and judged by code only when the failure carries no reason (the network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from services.common.errors import EXECUTOR_UP_SINCE, Reason, rpc_error
from services.scheduler.reasons import (
    cool_down_seconds,
    method_missing,
    network_failure,
    never_reached_executor,
    registry_hiccup,
    run_is_gone,
    task_is_gone,
    try_another_executor,
)

Code = grpc.StatusCode


def answered(code: grpc.StatusCode, reason: Reason) -> grpc.aio.AioRpcError:
    """An error our services answered with (it carries its reason)."""
    return rpc_error(code, "说明", reason)


def transport(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """A failure the network or the gRPC runtime made (no reason)."""
    return rpc_error(code, "connection refused", "")


@pytest.mark.parametrize(
    "reason",
    [
        Reason.ATTEMPT_STALE,
        Reason.RUN_ALREADY_ENDED,
        Reason.RUN_NOT_RUNNING,
        Reason.RUN_NOT_PENDING,
        Reason.EXECUTION_NOT_FOUND,
        Reason.TASK_NOT_FOUND,
    ],
)
def test_a_run_that_ended_moved_on_or_was_deleted_is_gone(reason: Reason) -> None:
    error = answered(Code.FAILED_PRECONDITION, reason)
    assert run_is_gone(error)
    assert not registry_hiccup(error) and not try_another_executor(error)


def test_failed_precondition_alone_decides_nothing() -> None:
    # The executor already runs this execution: the same code as a stale attempt, a different story.
    already_active = answered(Code.FAILED_PRECONDITION, Reason.RUN_ALREADY_ACTIVE)
    assert not run_is_gone(already_active) and not try_another_executor(already_active)
    assert not run_is_gone(transport(Code.FAILED_PRECONDITION))


def test_only_a_missing_task_makes_a_task_gone() -> None:
    assert task_is_gone(answered(Code.NOT_FOUND, Reason.TASK_NOT_FOUND))
    assert not task_is_gone(answered(Code.NOT_FOUND, Reason.EXECUTION_NOT_FOUND))
    assert not task_is_gone(transport(Code.NOT_FOUND))


def test_a_busy_executor_is_passed_over_briefly_and_a_draining_one_longer() -> None:
    busy = answered(Code.RESOURCE_EXHAUSTED, Reason.EXECUTOR_BUSY)
    draining = answered(Code.UNAVAILABLE, Reason.EXECUTOR_DRAINING)
    assert try_another_executor(busy) and try_another_executor(draining)
    assert cool_down_seconds(busy) < cool_down_seconds(draining)
    # An answer is not the network, even with the network's code.
    assert not network_failure(draining) and not registry_hiccup(draining)


def test_an_unreachable_executor_is_passed_over_like_a_draining_one() -> None:
    unreachable = transport(Code.UNAVAILABLE)
    assert network_failure(unreachable) and try_another_executor(unreachable)
    assert cool_down_seconds(unreachable) == cool_down_seconds(
        answered(Code.UNAVAILABLE, Reason.EXECUTOR_DRAINING)
    )


def test_resource_exhausted_without_the_executors_reason_does_not_requeue() -> None:
    # e.g. a message over gRPC's size limit: another executor would fail the same way.
    assert not try_another_executor(transport(Code.RESOURCE_EXHAUSTED))


@pytest.mark.parametrize("code", [Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED])
def test_the_network_failing_is_a_hiccup_worth_retrying(code: grpc.StatusCode) -> None:
    assert network_failure(transport(code)) and registry_hiccup(transport(code))


def test_the_registry_failing_inside_is_a_hiccup_and_a_refused_update_is_not() -> None:
    assert registry_hiccup(answered(Code.INTERNAL, Reason.INTERNAL))
    assert not registry_hiccup(answered(Code.INVALID_ARGUMENT, Reason.RUN_UPDATE_INVALID))
    assert not registry_hiccup(transport(Code.INTERNAL))


def test_a_method_is_missing_only_when_the_runtime_says_so() -> None:
    assert method_missing(transport(Code.UNIMPLEMENTED))
    assert not method_missing(answered(Code.UNIMPLEMENTED, Reason.INTERNAL))


def test_an_update_the_database_aborted_for_a_colliding_one_is_a_hiccup_worth_retrying() -> None:
    assert registry_hiccup(answered(Code.ABORTED, Reason.CONCURRENT_CHANGE))
    assert not registry_hiccup(answered(Code.ABORTED, Reason.RUN_ALREADY_ACTIVE))


CLAIMED = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


def unknown_run(up_since: str | None) -> grpc.aio.AioRpcError:
    """An executor's answer to a re-attach for a run it does not know, saying since when it is up."""
    metadata = {EXECUTOR_UP_SINCE: up_since} if up_since is not None else {}
    return rpc_error(Code.NOT_FOUND, "没有", Reason.EXECUTION_NOT_FOUND, metadata)


def test_a_run_unknown_to_an_executor_up_since_before_its_claim_never_reached_it() -> None:
    assert never_reached_executor(unknown_run((CLAIMED - timedelta(hours=2)).isoformat()), CLAIMED)


@pytest.mark.parametrize(
    "up_since",
    [
        (CLAIMED + timedelta(seconds=30)).isoformat(),  # restarted since: the run may have died with it
        (CLAIMED - timedelta(milliseconds=500)).isoformat(),  # within the clocks' margin
        "2026-12-04T17:00:00",  # no time zone
        "not a time",
        None,  # an executor of the previous release
    ],
)
def test_a_run_unknown_to_an_executor_that_cannot_say_it_was_up_before_the_claim_may_have_reached_it(
    up_since: str | None,
) -> None:
    assert not never_reached_executor(unknown_run(up_since), CLAIMED)


def test_only_an_unknown_run_with_its_claim_time_can_have_never_reached_its_executor() -> None:
    early = (CLAIMED - timedelta(hours=2)).isoformat()
    assert not never_reached_executor(unknown_run(early), None)
    assert not never_reached_executor(answered(Code.NOT_FOUND, Reason.TASK_NOT_FOUND), CLAIMED)

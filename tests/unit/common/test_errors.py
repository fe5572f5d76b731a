"""Errors carry a machine-readable reason across the wire: what the server wiring attaches to a
status is what `reason_of` reads back, and batched answers rebuild the same error."""

from __future__ import annotations

import grpc

from services.common.errors import (
    STATUS_DETAILS_KEY,
    InvalidArgument,
    NotFound,
    Reason,
    reason_in,
    reason_of,
    rpc_error,
    status_details,
)


def test_an_error_without_a_reason_takes_its_class_default() -> None:
    assert InvalidArgument("limit 必须在1到1000之间").reason == Reason.INVALID_ARGUMENT
    assert NotFound("任务 9 不存在", reason=Reason.TASK_NOT_FOUND).reason == Reason.TASK_NOT_FOUND


def test_the_reason_survives_the_binary_status() -> None:
    details = status_details(grpc.StatusCode.ALREADY_EXISTS, "任务名称 'a' 已存在", Reason.TASK_NAME_TAKEN)
    assert reason_in(details) == "TASK_NAME_TAKEN"


def test_a_rebuilt_batch_error_reads_like_the_single_call() -> None:
    error = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "尝试已失效", Reason.ATTEMPT_STALE)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "尝试已失效"
    assert reason_of(error) == "ATTEMPT_STALE"


def test_an_error_without_details_has_no_reason() -> None:
    bare = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone", ""
    )
    assert reason_of(bare) == ""
    assert reason_of(rpc_error(grpc.StatusCode.UNAVAILABLE, "gone", "")) == ""


def test_garbage_or_foreign_details_have_no_reason() -> None:
    assert reason_in(b"\xff\x00not a status") == ""
    assert reason_in(b"") == ""
    foreign = grpc.aio.Metadata((STATUS_DETAILS_KEY, b"\x08\x05"))  # a Status with only a code
    error = grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), foreign, "x", "")
    assert reason_of(error) == ""

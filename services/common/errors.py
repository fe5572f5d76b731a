"""Domain errors with a machine-readable reason, raised by stores and domain code.

Every error carries a stable ``Reason`` (``TASK_NAME_TAKEN``, ``ATTEMPT_STALE``, ...) besides its
message for people. On the wire it is a gRPC status whose details hold one ``google.rpc.ErrorInfo``
(domain ``zquant.scheduler.v1``, the reason); the gateway turns it into the HTTP status and
``{"detail": message, "reason": reason}``. Callers branch on reasons, never on messages or bare
status codes: a code says only how an error maps to HTTP, a reason says what happened.

``status_details`` builds the wire form (used by the server wiring in ``server.py``);
``reason_of`` reads it back from a failed call on the client side.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

ERROR_DOMAIN = "zquant.scheduler.v1"
# Trailing metadata key of the binary google.rpc.Status (the gRPC rich error model).
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class Reason(StrEnum):
    """Why a call failed. Values are part of the public contract: never rename one."""

    # Generic, when nothing more specific applies.
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    INTERNAL = "INTERNAL"
    # The change collided with another saved at the same moment (the database aborted one of the
    # two, e.g. a deadlock); nothing of it was stored, and trying again is safe (HTTP 409).
    CONCURRENT_CHANGE = "CONCURRENT_CHANGE"
    # Tasks.
    TASK_NOT_FOUND = "TASK_NOT_FOUND"
    TASK_NAME_TAKEN = "TASK_NAME_TAKEN"
    TASK_REFERENCED = "TASK_REFERENCED"
    TASK_INVALID = "TASK_INVALID"
    CRON_INVALID = "CRON_INVALID"
    TIMEZONE_INVALID = "TIMEZONE_INVALID"
    CALENDAR_UNKNOWN = "CALENDAR_UNKNOWN"
    CALENDAR_INVALID = "CALENDAR_INVALID"
    CALENDAR_NOT_FOUND = "CALENDAR_NOT_FOUND"
    CALENDAR_NAME_TAKEN = "CALENDAR_NAME_TAKEN"
    CALENDAR_IN_USE = "CALENDAR_IN_USE"
    WORKFLOW_INVALID = "WORKFLOW_INVALID"
    WORKFLOW_CYCLE = "WORKFLOW_CYCLE"
    NOT_A_WORKFLOW = "NOT_A_WORKFLOW"
    # A tag of a task or of the list filter breaks the rules (length, characters, count).
    TAG_INVALID = "TAG_INVALID"
    # Lists and filters.
    PAGE_INVALID = "PAGE_INVALID"
    FILTER_INVALID = "FILTER_INVALID"
    # Runs.
    EXECUTION_NOT_FOUND = "EXECUTION_NOT_FOUND"
    RUN_NOT_RUNNING = "RUN_NOT_RUNNING"
    RUN_ALREADY_ENDED = "RUN_ALREADY_ENDED"
    RUN_NOT_PENDING = "RUN_NOT_PENDING"
    ATTEMPT_STALE = "ATTEMPT_STALE"
    RUN_UPDATE_INVALID = "RUN_UPDATE_INVALID"
    # An answer to a trigger offer that no trigger waits for any more (internal).
    TRIGGER_OFFER_GONE = "TRIGGER_OFFER_GONE"
    # A rerun of a run that is still live or succeeded.
    RUN_NOT_RERUNNABLE = "RUN_NOT_RERUNNABLE"
    # A trigger's or backfill's params or logical_date that cannot be used.
    RUN_PARAMS_INVALID = "RUN_PARAMS_INVALID"
    # A `{{ name }}` template naming an unknown variable (config or params).
    TEMPLATE_INVALID = "TEMPLATE_INVALID"
    # Backfills.
    BACKFILL_INVALID = "BACKFILL_INVALID"
    BACKFILL_NOT_FOUND = "BACKFILL_NOT_FOUND"
    # Executors.
    EXECUTOR_BUSY = "EXECUTOR_BUSY"
    EXECUTOR_DRAINING = "EXECUTOR_DRAINING"
    RUN_ALREADY_ACTIVE = "RUN_ALREADY_ACTIVE"
    # Users and sessions.
    USER_NOT_FOUND = "USER_NOT_FOUND"
    USERNAME_TAKEN = "USERNAME_TAKEN"
    USER_INVALID = "USER_INVALID"
    LAST_ADMIN = "LAST_ADMIN"
    LOGIN_REQUIRED = "LOGIN_REQUIRED"
    BAD_CREDENTIALS = "BAD_CREDENTIALS"
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"
    USER_DISABLED = "USER_DISABLED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_INVALID = "TOKEN_INVALID"
    # A token of a session that ended: logout, password / role change, disable, delete.
    TOKEN_REVOKED = "TOKEN_REVOKED"
    # A refresh token presented a second time: its session is revoked.
    REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"
    PASSWORD_TOO_SHORT = "PASSWORD_TOO_SHORT"
    PASSWORD_TOO_COMMON = "PASSWORD_TOO_COMMON"
    # Too many logins waiting for a password check (the hashing pool's queue is full).
    LOGIN_BUSY = "LOGIN_BUSY"
    ROLE_REQUIRED = "ROLE_REQUIRED"
    SERVICE_TOKEN_REQUIRED = "SERVICE_TOKEN_REQUIRED"
    # Alerts: channels, rules, message templates, the key that encrypts channel secrets.
    ALERT_CHANNEL_INVALID = "ALERT_CHANNEL_INVALID"
    ALERT_CHANNEL_NOT_FOUND = "ALERT_CHANNEL_NOT_FOUND"
    ALERT_CHANNEL_NAME_TAKEN = "ALERT_CHANNEL_NAME_TAKEN"
    ALERT_CHANNEL_IN_USE = "ALERT_CHANNEL_IN_USE"
    ALERT_RULE_INVALID = "ALERT_RULE_INVALID"
    ALERT_RULE_NOT_FOUND = "ALERT_RULE_NOT_FOUND"
    ALERT_RULE_NAME_TAKEN = "ALERT_RULE_NAME_TAKEN"
    ALERT_TEMPLATE_INVALID = "ALERT_TEMPLATE_INVALID"
    ALERT_KEY_MISSING = "ALERT_KEY_MISSING"
    ALERT_TEST_FAILED = "ALERT_TEST_FAILED"
    # Scheduler leadership.
    LEADERSHIP_INVALID = "LEADERSHIP_INVALID"
    # Made by the gateway itself (gateway/envoy.yaml.tmpl), never by a service.
    ROUTE_NOT_FOUND = "ROUTE_NOT_FOUND"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    # A mutation whose body is not JSON (a form or text/plain post: cross-site request forgery).
    CONTENT_TYPE_UNSUPPORTED = "CONTENT_TYPE_UNSUPPORTED"
    # A mutation authenticated only by the cookie: the cookie may only read and watch.
    AUTHORIZATION_HEADER_REQUIRED = "AUTHORIZATION_HEADER_REQUIRED"
    UNAVAILABLE = "UNAVAILABLE"
    GATEWAY_ERROR = "GATEWAY_ERROR"


# ErrorInfo metadata keys (DomainError.metadata), part of the contract between our services.
# EXECUTION_NOT_FOUND from an executor asked to re-attach: since when (RFC 3339, UTC) the executor
# process has been up, so a run assigned to it before then and unknown to it never reached it.
EXECUTOR_UP_SINCE = "executor_up_since"


class DomainError(Exception):
    """An error for the caller. Subclasses fix the status code; ``reason`` defaults per class."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason: Reason = Reason.INTERNAL
    # More google.rpc details sent after the ErrorInfo, e.g. a BadRequest naming each invalid item.
    details: tuple[Message, ...] = ()

    def __init__(
        self, message: str, reason: Reason | None = None, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        # Facts a caller may decide on, sent in the ErrorInfo (`error_metadata` reads them).
        self.metadata = dict(metadata or {})


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = Reason.INVALID_ARGUMENT


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    # Every NotFound names what is missing.
    default_reason = Reason.INTERNAL


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = Reason.INTERNAL


class Conflict(DomainError):
    """A refused state change (HTTP 409)."""

    code = grpc.StatusCode.ABORTED
    default_reason = Reason.INTERNAL


class FailedPrecondition(DomainError):
    """The object is not in a state that allows this (HTTP 400)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = Reason.INTERNAL


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = Reason.LOGIN_REQUIRED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = Reason.ROLE_REQUIRED


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = Reason.EXECUTOR_BUSY


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = Reason.EXECUTOR_DRAINING


def status_details(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    extra: tuple[Message, ...] = (),
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """The binary ``google.rpc.Status`` carrying ``reason`` (and ``metadata``) as an ErrorInfo, then
    ``extra``, for trailing metadata."""
    packed = []
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {})
    for detail in (info, *extra):
        wrapped = any_pb2.Any()
        wrapped.Pack(detail)
        packed.append(wrapped)
    status = status_pb2.Status(code=code.value[0], message=message, details=packed)
    wire: bytes = status.SerializeToString()
    return wire


def _error_info(details: bytes | None) -> error_details_pb2.ErrorInfo | None:
    """Our ErrorInfo inside a binary ``google.rpc.Status``; None when there is none."""
    if not details:
        return None
    status = status_pb2.Status()
    try:
        status.ParseFromString(details)
    except DecodeError:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == ERROR_DOMAIN:
            return info
    return None


def reason_in(details: bytes | None) -> str:
    """The ErrorInfo reason inside a binary ``google.rpc.Status``; "" when there is none."""
    info = _error_info(details)
    return info.reason if info is not None else ""


def _details_of(error: grpc.aio.AioRpcError) -> bytes | None:
    # grpc.aio gives a Metadata object (pairs when iterated); the type stubs say a tuple of pairs.
    pairs: Any = error.trailing_metadata() or ()
    for key, value in pairs:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return value
    return None


def reason_of(error: grpc.aio.AioRpcError) -> str:
    """The reason of a failed call, "" when the peer sent none (transport errors, other servers).

    Transport failures (UNAVAILABLE from a dead connection, DEADLINE_EXCEEDED) carry no reason:
    branch on those codes only where the failure is the network's, not the peer's answer.
    """
    return reason_in(_details_of(error))


def error_metadata(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The facts the peer sent with its reason (DomainError.metadata); empty when none."""
    info = _error_info(_details_of(error))
    return dict(info.metadata) if info is not None else {}


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def answered_error(number: int, message: str, reason: str) -> grpc.aio.AioRpcError:
    """`rpc_error` of a status sent as its number (a batched answer's code)."""
    return rpc_error(_CODES.get(number, grpc.StatusCode.UNKNOWN), message, reason)


def rpc_error(
    code: grpc.StatusCode, message: str, reason: str, metadata: Mapping[str, str] | None = None
) -> grpc.aio.AioRpcError:
    """An AioRpcError as the single call would have raised it, with its reason (and the facts sent
    with it) (batched answers)."""
    trailing = grpc.aio.Metadata()
    if reason:
        trailing.add(STATUS_DETAILS_KEY, status_details(code, message, reason, metadata=metadata))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, message, "")

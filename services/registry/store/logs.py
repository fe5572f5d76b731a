"""Runs' logs: append-only chunks keyed by execution and byte offset (SQLite and PostgreSQL alike).

An append lands at the log's current end (the end of its last chunk), in pieces of at most
`CHUNK_BYTES`. Appends to one log are serialized by the caller's transaction: `append_logs` locks the
executions' rows (PostgreSQL; on SQLite the caller's serialized session holds the write lock), so two
registry replicas appending at once never pick the same offset. Reads return whole lines where they can: a page
is cut after its last newline unless a single line is longer than the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from services.common.errors import DomainError, InvalidArgument, Reason
from services.common.log_lines import split_at_lines
from services.common.vocabulary import LIVE_STATUSES
from services.registry.models import ExecutionLogChunkRow, ExecutionRow
from services.registry.store.executions import execution_not_found, get_execution

CHUNK_BYTES = 256 * 1024
DEFAULT_PAGE_BYTES = 1024 * 1024
MAX_PAGE_BYTES = 4 * 1024 * 1024
MAX_APPEND_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LogPage:
    data: bytes
    offset: int
    next_offset: int
    # The log's size now.
    size: int
    # The run has ended: the log is complete.
    complete: bool
    status: str


def log_end(session: Session, execution_id: int) -> int:
    end = session.scalar(
        select(func.max(ExecutionLogChunkRow.offset + ExecutionLogChunkRow.size)).where(
            ExecutionLogChunkRow.execution_id == execution_id
        )
    )
    return int(end or 0)


def append_log(session: Session, execution_id: int, data: bytes) -> int:
    """Appends `data` to the run's log (NOT_FOUND when the run is gone); returns the new end."""
    end = append_logs(session, [(execution_id, data)])[0]
    if isinstance(end, DomainError):
        raise end
    return end


def append_logs(session: Session, appends: Sequence[tuple[int, bytes]]) -> list[int | DomainError]:
    """Appends each (execution_id, data) in order, with a statement per step for all of them (the
    scheduler's batches carry the lines of hundreds of runs): each gets its log's new end, or its
    error (NOT_FOUND when the run is gone, INVALID_ARGUMENT when too large)."""
    ids = sorted({execution_id for execution_id, _ in appends})
    # Locked in one order (PostgreSQL): concurrent batches never wait on each other in a circle.
    existing = set(
        session.scalars(
            select(ExecutionRow.id)
            .where(ExecutionRow.id.in_(ids))
            .order_by(ExecutionRow.id)
            .with_for_update()
        )
    )
    ends: dict[int, int] = dict.fromkeys(existing, 0)
    if existing:
        ends.update(
            (execution_id, int(end))
            for execution_id, end in session.execute(
                select(
                    ExecutionLogChunkRow.execution_id,
                    func.max(ExecutionLogChunkRow.offset + ExecutionLogChunkRow.size),
                )
                .where(ExecutionLogChunkRow.execution_id.in_(existing))
                .group_by(ExecutionLogChunkRow.execution_id)
            )
        )
    outcomes: list[int | DomainError] = []
    chunks: list[dict[str, Any]] = []
    for execution_id, data in appends:
        if execution_id not in existing:
            outcomes.append(execution_not_found(execution_id))
            continue
        if len(data) > MAX_APPEND_BYTES:
            outcomes.append(
                InvalidArgument(f"一次最多追加 {MAX_APPEND_BYTES} 字节日志", reason=Reason.RUN_UPDATE_INVALID)
            )
            continue
        end = ends[execution_id]
        for piece in split_at_lines(data, CHUNK_BYTES):
            chunks.append({"execution_id": execution_id, "offset": end, "size": len(piece), "data": piece})
            end += len(piece)
        ends[execution_id] = end
        outcomes.append(end)
    if chunks:
        session.execute(insert(ExecutionLogChunkRow), chunks)
    return outcomes


def read_log(session: Session, execution_id: int, offset: int, limit: int) -> LogPage:
    """Up to `limit` bytes of the run's log from `offset` (NOT_FOUND when the run is gone)."""
    if offset < 0:
        raise InvalidArgument("offset 不能为负数", reason=Reason.INVALID_ARGUMENT)
    if limit < 0 or limit > MAX_PAGE_BYTES:
        raise InvalidArgument(f"limit 必须在 0 到 {MAX_PAGE_BYTES} 之间", reason=Reason.INVALID_ARGUMENT)
    limit = limit or DEFAULT_PAGE_BYTES
    row = get_execution(session, execution_id)
    # Read before the chunks: a run seen ended has its whole log stored (its end is recorded last).
    complete = row.status not in LIVE_STATUSES
    chunks = session.execute(
        select(ExecutionLogChunkRow.offset, ExecutionLogChunkRow.data)
        .where(
            ExecutionLogChunkRow.execution_id == execution_id,
            ExecutionLogChunkRow.offset + ExecutionLogChunkRow.size > offset,
        )
        .order_by(ExecutionLogChunkRow.offset)
        .limit(limit // CHUNK_BYTES + 2)
    ).all()
    size = log_end(session, execution_id)
    data = bytearray()
    for chunk_offset, chunk in chunks:
        data += chunk[max(0, offset - chunk_offset) :]
        if len(data) >= limit:
            break
    if len(data) > limit:
        cut = data.rfind(b"\n", 0, limit)
        del data[cut + 1 if cut >= 0 else limit :]
    start = min(offset, size)
    return LogPage(bytes(data), start, start + len(data), size, complete, row.status)

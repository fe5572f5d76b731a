"""A workflow config checked against the database: its tasks exist and are enabled, and no nested
workflow contains the one being saved. The plan's own rules (shape, dependencies, cycles) are
``services.common.workflow_plan``'s; the messages are the user guide's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.vocabulary import TaskType
from services.common.workflow_plan import (
    Plan,
    PlanInvalid,
    cycle_error,
    referenced_task_ids,
)
from services.registry.models import TaskRow


def validate_workflow(session: Session, config: Mapping[str, Any], workflow_id: int = 0) -> Plan:
    """Full validation, in the original's order: shape, tasks missing, tasks disabled, structure
    (self-reference and cycles included), nested cycles. Raises InvalidArgument (PlanInvalid)."""
    plan = Plan.parse(config)
    ids = plan.task_ids
    # FOR SHARE (PostgreSQL): a delete or disable of a sub-task waits for this save to commit (and
    # then finds the workflow using it), or commits first and this save is refused.
    held = select(TaskRow).where(TaskRow.id.in_(ids)).with_for_update(read=True)
    held = held.execution_options(populate_existing=True)  # as locked, not as read before
    rows = {row.id: row for row in session.scalars(held)}
    missing = sorted(set(ids) - set(rows))
    if missing:
        raise PlanInvalid(f"以下任务不存在: {{{', '.join(map(str, missing))}}}", task_ids=tuple(missing))
    disabled = [task_id for task_id in ids if not rows[task_id].enabled]
    if disabled:
        raise PlanInvalid(f"以下任务未启用: {disabled}", task_ids=tuple(disabled))
    plan.check_structure(workflow_id)
    _check_nested(session, rows, workflow_id)
    return plan


def _check_nested(session: Session, rows: dict[int, TaskRow], workflow_id: int) -> None:
    """No nested workflow may (transitively) contain the workflow being saved."""
    pending = [row for row in rows.values() if row.task_type == TaskType.WORKFLOW]
    seen: set[int] = set()
    while pending:
        row = pending.pop()
        if row.id in seen:
            continue
        seen.add(row.id)
        for child_id in referenced_task_ids(row.config):
            if child_id == workflow_id:
                raise cycle_error(row.id)
            child = session.get(TaskRow, child_id)
            if child is not None and child.task_type == TaskType.WORKFLOW:
                pending.append(child)


def child_task_ids(session: Session) -> set[int]:
    """Ids of every task referenced by some workflow (hidden from the default task list)."""
    configs = session.scalars(select(TaskRow.config).where(TaskRow.task_type == TaskType.WORKFLOW))
    return {task_id for config in configs for task_id in referenced_task_ids(config)}

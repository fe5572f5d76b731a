"""The shared vocabulary: wire strings are the REST contract's, and the named sets of statuses
split the statuses the way every service relies on."""

from __future__ import annotations

import json

import pytest

from services.common.vocabulary import (
    FAILED_STATUSES,
    FINAL_STATUSES,
    LIVE_STATUSES,
    ConcurrencyPolicy,
    ExecutionStatus,
    FailurePolicy,
    MisfirePolicy,
    TaskType,
    Trigger,
    WorkflowType,
    listed,
    word_of,
)

S = ExecutionStatus


def test_wire_strings_are_the_rest_contracts_in_their_documented_order() -> None:
    assert listed(ExecutionStatus) == "pending, running, success, failed, terminated, skipped"
    assert listed(Trigger) == "schedule, manual, retry, workflow, backfill"
    assert (
        listed(TaskType)
        == "example_task, manual_task, common_task, workflow, data_sync_stock_list, data_sync_trading_calendar, data_sync_daily_data, data_sync_all_daily_data"
    )
    assert listed(ConcurrencyPolicy) == "forbid, allow, replace"
    assert listed(MisfirePolicy) == "run_once, skip"
    assert listed(WorkflowType) == "serial, parallel"
    assert listed(FailurePolicy) == "stop, continue"


def test_every_status_is_either_live_or_final() -> None:
    assert {S.PENDING, S.RUNNING} == LIVE_STATUSES
    assert {S.SUCCESS, S.FAILED, S.TERMINATED, S.SKIPPED} == FINAL_STATUSES
    assert LIVE_STATUSES.isdisjoint(FINAL_STATUSES)
    assert set(ExecutionStatus) == LIVE_STATUSES | FINAL_STATUSES


def test_failed_statuses_are_the_final_ones_that_ran_without_success() -> None:
    assert FINAL_STATUSES - {S.SUCCESS, S.SKIPPED} == FAILED_STATUSES


def test_members_stand_for_their_strings_on_the_wire() -> None:
    # Read from a proto, the database or JSON, a status is a plain string: it must match the member.
    assert "running" in LIVE_STATUSES and "skipped" in FINAL_STATUSES
    assert f"{S.FAILED}" == str(S.FAILED) == "failed"
    assert json.dumps({"status": S.SUCCESS, "policy": ConcurrencyPolicy.FORBID}) == (
        '{"status": "success", "policy": "forbid"}'
    )


@pytest.mark.parametrize("value", ["Forbid", "forbid ", "", None, 1, True, ["forbid"], {"forbid": 1}])
def test_word_of_refuses_anything_but_an_exact_wire_string(value: object) -> None:
    assert word_of(ConcurrencyPolicy, value) is None


def test_word_of_reads_an_exact_wire_string() -> None:
    assert word_of(ConcurrencyPolicy, "replace") is ConcurrencyPolicy.REPLACE
    assert word_of(TaskType, "manual_task") is TaskType.MANUAL

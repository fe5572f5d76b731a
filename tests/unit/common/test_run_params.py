"""A run's logical date, parameters and config templates: checked when saved or triggered, filled
in for the run."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.common.errors import InvalidArgument, Reason
from services.common.run_params import (
    RunDates,
    check_params,
    check_templates,
    logical_date_of,
    parse_logical_date,
    run_config,
)


def test_the_logical_date_is_the_planned_times_date_in_the_tasks_zone() -> None:
    planned = datetime(2024, 1, 1, 16, 30, tzinfo=UTC)  # 00:30 on 2 January in Shanghai
    assert logical_date_of(planned, "Asia/Shanghai") == date(2024, 1, 2)
    assert logical_date_of(planned, "UTC") == date(2024, 1, 1)


@pytest.mark.parametrize("text", ["2024-1-2", "20240102", "2024-02-30", "", "2024-01-02T00:00"])
def test_a_logical_date_must_be_a_real_yyyy_mm_dd_date(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_logical_date(text)
    assert caught.value.reason == Reason.RUN_PARAMS_INVALID


def test_templates_are_filled_in_everywhere_in_the_config_after_the_params_are_merged() -> None:
    config = {
        "command": "sync --date {{ logical_date }}",
        "symbols": ["a"],
        "nested": {"d": "{{logical_date_nodash}}"},
    }
    params = {"symbols": ["600000"], "out": "/data/{{ logical_date }}.csv"}
    assert run_config(config, params, RunDates.of(date(2024, 1, 2))) == {
        "command": "sync --date 2024-01-02",
        "symbols": ["600000"],
        "nested": {"d": "20240102"},
        "out": "/data/2024-01-02.csv",
    }


def test_prev_trading_day_is_the_day_the_scheduler_sent_or_without_one_the_previous_weekday() -> None:
    config = {"command": "sync --from {{ prev_trading_day }} --to {{ logical_date }}"}
    check_templates(config, "配置")
    check_templates({"out": "{{ prev_trading_day_nodash }}.csv"}, "配置")
    # After Spring Festival 2024 by XSHG (the scheduler computes it from the task's calendar).
    by_calendar = RunDates.of(date(2024, 2, 19), date(2024, 2, 8))
    assert run_config(config, {"out": "{{prev_trading_day_nodash}}"}, by_calendar) == {
        "command": "sync --from 2024-02-08 --to 2024-02-19",
        "out": "20240208",
    }
    monday = RunDates.of(date(2024, 1, 8))
    assert run_config(config, {}, monday) == {"command": "sync --from 2024-01-05 --to 2024-01-08"}


def test_an_unknown_template_variable_is_refused_with_its_name() -> None:
    check_templates({"command": "echo {{ logical_date }}", "n": 3}, "配置")
    with pytest.raises(InvalidArgument) as caught:
        check_templates({"args": ["{{ prev_day }}"]}, "配置")
    assert caught.value.reason == Reason.TEMPLATE_INVALID
    assert "prev_day" in caught.value.message


def test_params_must_be_an_object_and_may_not_change_the_program_without_the_admin_role() -> None:
    with pytest.raises(InvalidArgument) as not_object:
        check_params(["a"], privileged=True)
    assert not_object.value.reason == Reason.RUN_PARAMS_INVALID
    with pytest.raises(InvalidArgument) as guarded:
        check_params({"command": "rm -rf /"}, privileged=False)
    assert "command" in guarded.value.message
    assert check_params({"command": "true"}, privileged=True) == {"command": "true"}
    assert check_params({"symbol": "600000"}, privileged=False) == {"symbol": "600000"}

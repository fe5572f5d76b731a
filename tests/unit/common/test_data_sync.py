"""The data-sync config rule: what saving refuses (with the reason the user sees) and the settings a
run gets, its dates defaulting to the logical date."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.data_sync import (
    DATA_SYNC_TYPES,
    Provider,
    data_sync_settings,
    data_sync_type,
    normalize_symbol,
)
from services.common.job_config import ConfigInvalid, check_task_config
from services.common.vocabulary import TaskType

DAY = date(2024, 1, 10)


@pytest.mark.parametrize(
    ("raw", "symbol"),
    [
        ("600000.SH", "600000.SH"),
        ("000001.sz", "000001.SZ"),
        ("600000", "600000.SH"),
        ("300750", "300750.SZ"),
        ("830799", "830799.BJ"),
        ("sh600000", "600000.SH"),
        ("SZ.000001", "000001.SZ"),
    ],
)
def test_symbols_are_stored_in_one_form_whatever_form_they_are_given_in(raw: str, symbol: str) -> None:
    assert normalize_symbol(raw) == symbol


@pytest.mark.parametrize(
    ("task_type", "config", "reason"),
    [
        ("data_sync_daily_data", {}, "必须指定 symbol"),
        ("data_sync_daily_data", {"symbol": "60000"}, "股票代码无效: 60000"),
        ("data_sync_daily_data", {"symbol": 600000}, "股票代码无效"),
        (
            "data_sync_daily_data",
            {"symbol": "600000", "start_date": "2024/01/02"},
            "start_date 必须是 YYYY-MM-DD",
        ),
        (
            "data_sync_daily_data",
            {"symbol": "600000", "start_date": "2024-02-01", "end_date": "2024-01-01"},
            "开始日期 2024-02-01 晚于结束日期 2024-01-01",
        ),
        (
            "data_sync_daily_data",
            {"symbol": "600000", "start_date": "1900-01-01", "end_date": "2024-01-01"},
            "日期范围不能超过",
        ),
        (
            "data_sync_stock_list",
            {"provider": "yahoo"},
            "配置项 provider 无效: yahoo（支持: akshare, baostock, tushare, recorded）",
        ),
        ("data_sync_stock_list", {"start": "2024-01-01"}, "data_sync_stock_list 不支持的配置项: start"),
        ("data_sync_stock_list", {"target_url": "not a url"}, "target_url 不是有效的 SQLAlchemy 数据库 URL"),
        ("data_sync_stock_list", {"target_url": 5}, "target_url 必须是 SQLAlchemy 数据库 URL 字符串"),
        ("data_sync_all_daily_data", {"symbols": ["600000", "bad"]}, "股票代码无效: bad"),
        ("data_sync_all_daily_data", {"symbols": {"a": 1}}, "symbols 必须是股票代码列表"),
        ("data_sync_all_daily_data", {"resume": "yes"}, "resume 必须是 true 或 false"),
        (
            "data_sync_all_daily_data",
            {"fetch_delay_seconds": -1},
            "fetch_delay_seconds 必须是0 到 60 之间的秒数",
        ),
        ("data_sync_trading_calendar", {"calendar": "MOON"}, "未知的交易日历: MOON"),
        ("data_sync_trading_calendar", {"calendar": "XNYS", "provider": "akshare"}, "只提供沪深交易日历"),
        ("common_task", {"task_action": "data_sync_daily_data"}, "必须指定 symbol"),
        (
            "manual_task",
            {"task_action": "data_sync_all_daily_data", "symbols": "600000,x"},
            "股票代码无效: x",
        ),
    ],
)
def test_a_config_that_cannot_run_is_refused_with_its_reason(
    task_type: str, config: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ConfigInvalid) as refused:
        check_task_config(task_type, config)
    assert reason in refused.value.message


@pytest.mark.parametrize(
    ("task_type", "config"),
    [
        ("data_sync_stock_list", {}),
        ("data_sync_stock_list", {"provider": "tushare", "target_url": "postgresql://u@db/market"}),
        ("data_sync_trading_calendar", {"calendar": "XHKG", "start_date": "2024-01-01"}),
        ("data_sync_trading_calendar", {"calendar": "XSHE", "provider": "baostock"}),
        ("data_sync_daily_data", {"symbol": "600000.SH", "start_date": "{{ logical_date }}"}),
        (
            "data_sync_all_daily_data",
            {"symbols": "600000, 000001.SZ", "resume": False, "fetch_delay_seconds": 0.5},
        ),
        ("common_task", {"task_action": "data_sync_stock_list", "provider": "recorded"}),
    ],
)
def test_a_config_that_can_run_is_accepted(task_type: str, config: dict[str, Any]) -> None:
    check_task_config(task_type, config)


def test_a_runs_dates_default_to_its_logical_date() -> None:
    settings = data_sync_settings(TaskType.DATA_SYNC_DAILY_DATA, {"symbol": "600000"}, DAY)
    assert (settings.start_date, settings.end_date, settings.symbol) == (DAY, DAY, "600000.SH")
    settings = data_sync_settings(TaskType.DATA_SYNC_ALL_DAILY_DATA, {"start_date": "2024-01-02"}, DAY)
    assert (settings.start_date, settings.end_date, settings.resume) == (date(2024, 1, 2), DAY, True)


def test_a_calendar_sync_covers_the_logical_dates_year_and_the_next_from_the_offline_library() -> None:
    settings = data_sync_settings(TaskType.DATA_SYNC_TRADING_CALENDAR, {}, DAY)
    assert (settings.calendar, settings.provider) == ("XSHG", Provider.EXCHANGE_CALENDARS)
    assert (settings.start_date, settings.end_date) == (date(2024, 1, 1), date(2025, 12, 31))


def test_the_executors_default_provider_applies_when_the_task_names_none() -> None:
    settings = data_sync_settings(TaskType.DATA_SYNC_STOCK_LIST, {}, DAY, Provider.BAOSTOCK)
    assert settings.provider == Provider.BAOSTOCK
    assert data_sync_settings(TaskType.DATA_SYNC_STOCK_LIST, {}, DAY).provider == Provider.AKSHARE


def test_symbols_keep_their_order_without_duplicates() -> None:
    config = {"symbols": ["000001", "600000.SH", "sz000001"]}
    assert data_sync_settings(TaskType.DATA_SYNC_ALL_DAILY_DATA, config, DAY).symbols == (
        "000001.SZ",
        "600000.SH",
    )


def test_a_common_task_runs_a_data_sync_type_named_as_its_action_but_a_command_comes_first() -> None:
    assert (
        data_sync_type("common_task", {"task_action": "data_sync_stock_list"})
        == TaskType.DATA_SYNC_STOCK_LIST
    )
    assert data_sync_type("common_task", {"command": "true", "task_action": "data_sync_stock_list"}) is None
    assert data_sync_type("example_task", {"task_action": "data_sync_stock_list"}) is None
    assert data_sync_type("data_sync_daily_data", {}) == TaskType.DATA_SYNC_DAILY_DATA


json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
)
near_keys = st.sampled_from(
    ["provider", "symbol", "symbols", "calendar", "start_date", "end_date", "resume", "fetch_delay_seconds"]
)


@settings(max_examples=100, deadline=None)
@given(
    task_type=st.sampled_from(sorted(DATA_SYNC_TYPES)),
    config=st.dictionaries(
        near_keys | st.just("target_url"), json_value | st.sampled_from(["600000", "2024-01-02"])
    ),
)
def test_any_json_config_is_either_accepted_or_refused_with_a_reason_never_a_crash(
    task_type: str, config: dict[str, Any]
) -> None:
    try:
        check_task_config(task_type, config)
    except ConfigInvalid as refused:
        assert refused.message

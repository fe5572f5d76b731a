"""Each provider turns its library's answer into the same rows: symbols as 600000.SH, volume in
shares, amount in yuan, bars oldest first. The libraries are replaced by modules that answer in
their documented shapes (column names and units of akshare 1.19, baostock 0.9, tushare 1.4): the
tests need no network and no extra installed."""

from __future__ import annotations

import sys
from datetime import date
from types import ModuleType, SimpleNamespace
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # no pandas stubs pinned: frames built as the libraries do
import pytest

from services.common.data_sync import Provider
from services.executor.data_sync.providers import DailyBar, ProviderError, Stock, open_provider

JAN_2, JAN_3 = date(2024, 1, 2), date(2024, 1, 3)
BAR_2 = DailyBar("600000.SH", JAN_2, 6.5, 6.6, 6.4, 6.55, 123400.0, 808270.0)
BAR_3 = DailyBar("600000.SH", JAN_3, 6.55, 6.7, 6.5, 6.6, 100000.0, 660000.0)


def install(monkeypatch: pytest.MonkeyPatch, name: str, **attributes: Any) -> None:
    module = ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


def test_akshare_answers_are_normalized(monkeypatch: pytest.MonkeyPatch) -> None:
    hist = pd.DataFrame(
        {
            "日期": [JAN_2, JAN_3],
            "股票代码": ["600000", "600000"],
            "开盘": [6.5, 6.55],
            "收盘": [6.55, 6.6],
            "最高": [6.6, 6.7],
            "最低": [6.4, 6.5],
            "成交量": [1234, 1000],  # lots of 100 shares
            "成交额": [808270.0, 660000.0],
        }
    )
    install(
        monkeypatch,
        "akshare",
        stock_info_a_code_name=lambda: pd.DataFrame(
            {"code": ["600000", "000001", "830799"], "name": ["a", "b", "c"]}
        ),
        stock_zh_a_hist=lambda **kwargs: hist if kwargs["symbol"] == "600000" else None,
        tool_trade_date_hist_sina=lambda: pd.DataFrame({"trade_date": [date(2023, 12, 29), JAN_2, JAN_3]}),
    )
    provider = open_provider(Provider.AKSHARE)
    assert [stock.symbol for stock in provider.stocks()] == ["600000.SH", "000001.SZ", "830799.BJ"]
    assert provider.daily_bars("600000.SH", JAN_2, JAN_3) == [BAR_2, BAR_3]
    assert provider.trading_days(JAN_2, JAN_3) == [JAN_2, JAN_3]


class _Result:
    """A baostock ResultData: error_code, fields, next() / get_row_data()."""

    def __init__(self, fields: list[str], rows: list[list[str]], error_code: str = "0") -> None:
        self.error_code, self.error_msg, self.fields = error_code, "", fields
        self._rows = list(rows)
        self._row: list[str] = []

    def next(self) -> bool:
        if not self._rows:
            return False
        self._row = self._rows.pop(0)
        return True

    def get_row_data(self) -> list[str]:
        return self._row


def test_baostock_answers_are_normalized_and_its_session_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    basic = _Result(
        ["code", "code_name", "ipoDate", "outDate", "type", "status"],
        [
            ["sh.600000", "浦发银行", "1999-11-10", "", "1", "1"],
            ["sh.000001", "上证指数", "1991-07-15", "", "2", "1"],
        ],
    )
    bars = _Result(
        ["date", "open", "high", "low", "close", "volume", "amount"],
        [["2024-01-02", "6.5", "6.6", "6.4", "6.55", "123400", "808270.0"]],
    )

    def login() -> SimpleNamespace:
        calls.append("login")
        return SimpleNamespace(error_code="0", error_msg="")

    install(
        monkeypatch,
        "baostock",
        login=login,
        logout=lambda: calls.append("logout"),
        query_stock_basic=lambda: basic,
        query_history_k_data_plus=lambda code, fields, **kwargs: bars if code == "sh.600000" else None,
        query_trade_dates=lambda **kwargs: _Result(
            ["calendar_date", "is_trading_day"], [["2024-01-01", "0"], ["2024-01-02", "1"]]
        ),
    )
    provider = open_provider(Provider.BAOSTOCK)
    assert provider.stocks() == [
        Stock("600000.SH", "浦发银行", "SH", date(1999, 11, 10))
    ]  # the index is left out
    assert provider.daily_bars("600000.SH", JAN_2, JAN_2) == [BAR_2]
    assert provider.trading_days(date(2024, 1, 1), JAN_2) == [JAN_2]
    provider.close()
    assert calls == ["login", "logout"]


def test_tushare_answers_are_normalized_and_need_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    pro = SimpleNamespace(
        stock_basic=lambda **kwargs: pd.DataFrame(
            {"ts_code": ["600000.SH"], "name": ["浦发银行"], "list_date": ["19991110"]}
        ),
        daily=lambda **kwargs: pd.DataFrame(  # newest first; vol in lots, amount in thousands of yuan
            {
                "trade_date": ["20240103", "20240102"],
                "open": [6.55, 6.5],
                "high": [6.7, 6.6],
                "low": [6.5, 6.4],
                "close": [6.6, 6.55],
                "vol": [1000.0, 1234.0],
                "amount": [660.0, 808.27],
            }
        ),
        trade_cal=lambda **kwargs: pd.DataFrame({"cal_date": ["20240103", "20240102"]}),
    )
    install(monkeypatch, "tushare", pro_api=lambda token: pro if token == "secret" else None)
    monkeypatch.delenv("TUSHARE_TOKEN", raising=False)
    with pytest.raises(ProviderError, match="TUSHARE_TOKEN"):
        open_provider(Provider.TUSHARE)
    monkeypatch.setenv("TUSHARE_TOKEN", "secret")
    provider = open_provider(Provider.TUSHARE)
    assert provider.stocks() == [Stock("600000.SH", "浦发银行", "SH", date(1999, 11, 10))]
    bars = provider.daily_bars("600000.SH", JAN_2, JAN_3)
    assert [(bar.trade_date, bar.volume, bar.amount) for bar in bars] == [
        (JAN_2, 123400.0, pytest.approx(808270.0)),
        (JAN_3, 100000.0, 660000.0),
    ]
    assert provider.trading_days(JAN_2, JAN_3) == [JAN_2, JAN_3]

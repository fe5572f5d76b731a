"""Where market data comes from: one small interface, a provider per data library, rows normalized.

A provider answers three questions with plain rows (`Stock`, `DailyBar`, trading days), whatever
library is behind it. Every call blocks (network, the libraries are synchronous): the jobs call
providers from a worker thread, never on the event loop.

- ``akshare`` (the default): free, no account or token, the library the Chinese quant community
  uses most (Eastmoney / Sina behind it). Its endpoints change and rate-limit: pin the version and
  set ``fetch_delay_seconds`` for whole-market syncs.
- ``baostock``: free, needs a login session (anonymous), stable history; no Beijing exchange.
- ``tushare``: tushare pro with the token from the executor's environment variable
  ``TUSHARE_TOKEN``; the most complete and best documented, rate limits by account level.
- ``recorded``: normalized responses stored as JSON (``tests/data/providers/recorded`` or
  ``ZQ_DATA_SYNC_RECORDED_DIR``): tests and demos without a network.

The libraries are optional extras (``pip install -e '.[data-akshare]'``, ``data-baostock``,
``data-tushare``, or ``data`` for all) imported when a run first uses them; a missing one fails the
run with the command that installs it.

Units after normalization: prices in yuan, ``volume`` in shares, ``amount`` in yuan (akshare and
tushare give lots of 100 shares, tushare thousands of yuan: converted here).
"""

from __future__ import annotations

import importlib
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from services.common.data_sync import Provider, exchange_of, normalize_symbol
from services.common.settings import REPO_ROOT

DEFAULT_RECORDED_DIR = REPO_ROOT / "tests" / "data" / "providers" / "recorded"
TUSHARE_TOKEN_ENV = "TUSHARE_TOKEN"


class ProviderError(Exception):
    """A provider cannot answer (library missing, login refused, a bad response): the message says why."""


@dataclass(frozen=True, slots=True)
class Stock:
    symbol: str  # 600000.SH
    name: str
    exchange: str  # SH | SZ | BJ
    list_date: date | None = None


@dataclass(frozen=True, slots=True)
class DailyBar:
    symbol: str
    trade_date: date
    open: float
    high: float
    low: float
    close: float
    volume: float  # shares
    amount: float  # yuan


class MarketDataProvider(ABC):
    """The provider interface. Calls block; `close` ends a session the library keeps (baostock)."""

    name: Provider

    @abstractmethod
    def stocks(self) -> list[Stock]:
        """Every listed A-share."""

    @abstractmethod
    def daily_bars(self, symbol: str, start: date, end: date) -> list[DailyBar]:
        """Unadjusted daily bars of `symbol` from `start` to `end`, inclusive, oldest first."""

    @abstractmethod
    def trading_days(self, start: date, end: date) -> list[date]:
        """The Shanghai / Shenzhen sessions from `start` to `end`, inclusive."""

    def close(self) -> None:  # noqa: B027 - most providers hold nothing
        """Ends whatever session the provider holds."""


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ProviderError(
            f"数据源库 {module} 未安装: 在执行器上运行 pip install -e '.[{extra}]' ({exc})"
        ) from None


def _day(value: object) -> date:
    """A date from a library's value: a date, a Timestamp, '2024-01-02' or '20240102'."""
    if isinstance(value, datetime):  # pandas' Timestamp too
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()[:10]
    return date.fromisoformat(text if "-" in text else f"{text[:4]}-{text[4:6]}-{text[6:8]}")


def _float(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return number if number == number else 0.0  # NaN -> 0


def _records(frame: Any) -> list[dict[str, Any]]:
    """A pandas DataFrame's rows as dicts (an empty or missing frame: none)."""
    if frame is None or len(frame) == 0:
        return []
    rows: list[dict[str, Any]] = frame.to_dict("records")
    return rows


class AkshareProvider(MarketDataProvider):
    name = Provider.AKSHARE

    def __init__(self) -> None:
        self._ak = _import("akshare", "data-akshare")

    def stocks(self) -> list[Stock]:
        rows = _records(self._ak.stock_info_a_code_name())
        return [
            Stock(normalize_symbol(str(row["code"])), str(row["name"]), exchange_of(str(row["code"])))
            for row in rows
        ]

    def daily_bars(self, symbol: str, start: date, end: date) -> list[DailyBar]:
        frame = self._ak.stock_zh_a_hist(
            symbol=symbol[:6],
            period="daily",
            start_date=start.strftime("%Y%m%d"),
            end_date=end.strftime("%Y%m%d"),
            adjust="",
        )
        return [
            DailyBar(
                symbol=symbol,
                trade_date=_day(row["日期"]),
                open=_float(row["开盘"]),
                high=_float(row["最高"]),
                low=_float(row["最低"]),
                close=_float(row["收盘"]),
                volume=_float(row["成交量"]) * 100,  # lots -> shares
                amount=_float(row["成交额"]),
            )
            for row in _records(frame)
        ]

    def trading_days(self, start: date, end: date) -> list[date]:
        days = (_day(row["trade_date"]) for row in _records(self._ak.tool_trade_date_hist_sina()))
        return sorted(day for day in days if start <= day <= end)


class BaostockProvider(MarketDataProvider):
    name = Provider.BAOSTOCK

    def __init__(self) -> None:
        self._bs = _import("baostock", "data-baostock")
        login = self._bs.login()
        if str(login.error_code) != "0":
            raise ProviderError(f"baostock 登录失败: {login.error_msg}")

    def _rows(self, result: Any) -> list[dict[str, str]]:
        if str(result.error_code) != "0":
            raise ProviderError(f"baostock 查询失败: {result.error_msg}")
        rows = []
        while result.next():
            rows.append(dict(zip(result.fields, result.get_row_data(), strict=True)))
        return rows

    def stocks(self) -> list[Stock]:
        found = []
        for row in self._rows(self._bs.query_stock_basic()):
            # type 1 = stock, status 1 = listed.
            if row.get("type") == "1" and row.get("status") == "1":
                symbol = normalize_symbol(row["code"])
                listed = row.get("ipoDate") or ""
                found.append(Stock(symbol, row["code_name"], symbol[-2:], _day(listed) if listed else None))
        return found

    def daily_bars(self, symbol: str, start: date, end: date) -> list[DailyBar]:
        code = f"{symbol[-2:].lower()}.{symbol[:6]}"
        result = self._bs.query_history_k_data_plus(
            code,
            "date,open,high,low,close,volume,amount",
            start_date=start.isoformat(),
            end_date=end.isoformat(),
            frequency="d",
            adjustflag="3",  # unadjusted
        )
        return [
            DailyBar(
                symbol=symbol,
                trade_date=_day(row["date"]),
                open=_float(row["open"]),
                high=_float(row["high"]),
                low=_float(row["low"]),
                close=_float(row["close"]),
                volume=_float(row["volume"]),
                amount=_float(row["amount"]),
            )
            for row in self._rows(result)
        ]

    def trading_days(self, start: date, end: date) -> list[date]:
        rows = self._rows(self._bs.query_trade_dates(start_date=start.isoformat(), end_date=end.isoformat()))
        return [_day(row["calendar_date"]) for row in rows if row.get("is_trading_day") == "1"]

    def close(self) -> None:
        self._bs.logout()


class TushareProvider(MarketDataProvider):
    name = Provider.TUSHARE

    def __init__(self, token: str | None = None) -> None:
        token = token or os.environ.get(TUSHARE_TOKEN_ENV, "").strip()
        if not token:
            raise ProviderError(f"tushare 需要令牌: 在执行器的环境变量 {TUSHARE_TOKEN_ENV} 中设置")
        self._pro = _import("tushare", "data-tushare").pro_api(token)

    def stocks(self) -> list[Stock]:
        frame = self._pro.stock_basic(exchange="", list_status="L", fields="ts_code,name,list_date")
        return [
            Stock(
                normalize_symbol(str(row["ts_code"])),
                str(row["name"]),
                str(row["ts_code"])[-2:],
                _day(row["list_date"]) if row.get("list_date") else None,
            )
            for row in _records(frame)
        ]

    def daily_bars(self, symbol: str, start: date, end: date) -> list[DailyBar]:
        frame = self._pro.daily(
            ts_code=symbol, start_date=start.strftime("%Y%m%d"), end_date=end.strftime("%Y%m%d")
        )
        bars = [
            DailyBar(
                symbol=symbol,
                trade_date=_day(row["trade_date"]),
                open=_float(row["open"]),
                high=_float(row["high"]),
                low=_float(row["low"]),
                close=_float(row["close"]),
                volume=_float(row["vol"]) * 100,  # lots -> shares
                amount=_float(row["amount"]) * 1000,  # thousands of yuan -> yuan
            )
            for row in _records(frame)
        ]
        return sorted(bars, key=lambda bar: bar.trade_date)  # tushare gives newest first

    def trading_days(self, start: date, end: date) -> list[date]:
        frame = self._pro.trade_cal(
            exchange="SSE", start_date=start.strftime("%Y%m%d"), end_date=end.strftime("%Y%m%d"), is_open="1"
        )
        return sorted(_day(row["cal_date"]) for row in _records(frame))


class RecordedProvider(MarketDataProvider):
    """Normalized rows stored as JSON: `stocks.json` ([{symbol, name, exchange, list_date}]),
    `daily_bars.json` ({"fields": [...], "bars": {symbol: [[date, open, high, low, close, volume,
    amount], ...]}}) and `trading_days.json` (["2024-01-02", ...]). `scripts/record_provider.py`
    writes them from a live provider."""

    name = Provider.RECORDED

    def __init__(self, directory: Path = DEFAULT_RECORDED_DIR) -> None:
        self._dir = directory
        if not (directory / "stocks.json").is_file():
            raise ProviderError(f"录制的数据源数据不存在: {directory}")
        self._bars: dict[str, list[list[Any]]] | None = None

    def _load(self, name: str) -> Any:
        return json.loads((self._dir / name).read_text(encoding="utf-8"))

    def stocks(self) -> list[Stock]:
        return [
            Stock(
                row["symbol"],
                row["name"],
                row["exchange"],
                _day(row["list_date"]) if row.get("list_date") else None,
            )
            for row in self._load("stocks.json")
        ]

    def daily_bars(self, symbol: str, start: date, end: date) -> list[DailyBar]:
        if self._bars is None:
            self._bars = self._load("daily_bars.json")["bars"]
        bars = []
        for day, open_, high, low, close, volume, amount in self._bars.get(symbol, []):
            trade_date = date.fromisoformat(day)
            if start <= trade_date <= end:
                bars.append(DailyBar(symbol, trade_date, open_, high, low, close, volume, amount))
        return bars

    def trading_days(self, start: date, end: date) -> list[date]:
        days = (date.fromisoformat(day) for day in self._load("trading_days.json"))
        return [day for day in days if start <= day <= end]


def open_provider(name: Provider, recorded_dir: Path = DEFAULT_RECORDED_DIR) -> MarketDataProvider:
    """The provider `name`, its library imported now (blocks: call it from a worker thread)."""
    if name == Provider.AKSHARE:
        return AkshareProvider()
    if name == Provider.BAOSTOCK:
        return BaostockProvider()
    if name == Provider.TUSHARE:
        return TushareProvider()
    if name == Provider.RECORDED:
        return RecordedProvider(recorded_dir)
    raise ProviderError(f"{name} 不是行情数据源")

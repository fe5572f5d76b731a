"""Opt-in: the real providers answer in the normalized form the jobs store.

Runs only when asked, with ``ZQ_LIVE_PROVIDERS=akshare,baostock,tushare`` (any of them), and skips
with the reason when a provider's library is not installed (``pip install -e '.[data]'``), its
host cannot be reached, or tushare has no ``TUSHARE_TOKEN``. Nothing else in the suite needs a
network: the other tests replay tests/data/providers/recorded.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from datetime import date

import pytest

from services.common.calendars import builtin_calendar
from services.common.data_sync import Provider
from services.executor.data_sync.providers import TUSHARE_TOKEN_ENV, open_provider

# A host each provider's library talks to, to tell "no network" from a failure.
HOSTS = {
    Provider.AKSHARE: ("push2his.eastmoney.com", 443),
    Provider.BAOSTOCK: ("public-api.baostock.com", 10030),
    Provider.TUSHARE: ("api.tushare.pro", 443),
}
ASKED = [name.strip() for name in os.environ.get("ZQ_LIVE_PROVIDERS", "").split(",") if name.strip()]


@pytest.mark.parametrize("name", [Provider.AKSHARE, Provider.BAOSTOCK, Provider.TUSHARE])
def test_a_live_provider_gives_stocks_bars_and_the_shanghai_calendar(name: Provider) -> None:
    if name not in ASKED:
        pytest.skip(f"live provider test is opt-in: set ZQ_LIVE_PROVIDERS={name} to run it (needs a network)")
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed: pip install -e '.[data-{name}]'")
    if name == Provider.TUSHARE and not os.environ.get(TUSHARE_TOKEN_ENV):
        pytest.skip(f"tushare needs a token in {TUSHARE_TOKEN_ENV}")
    try:
        socket.create_connection(HOSTS[name], timeout=5).close()
    except OSError as exc:
        pytest.skip(f"no network to {name} ({HOSTS[name][0]}): {exc}")

    provider = open_provider(name)
    try:
        stocks = {stock.symbol: stock for stock in provider.stocks()}
        assert len(stocks) > 3000 and "600000.SH" in stocks
        start, end = date(2024, 1, 2), date(2024, 1, 12)
        bars = provider.daily_bars("600000.SH", start, end)
        sessions = sorted(day for day in builtin_calendar("XSHG").sessions if start <= day <= end)
        assert [bar.trade_date for bar in bars] == sessions
        assert all(
            bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high for bar in bars
        )
        assert all(bar.volume > 0 and bar.amount > bar.volume for bar in bars)  # shares and yuan, not lots
        assert provider.trading_days(date(2024, 2, 1), date(2024, 2, 29)) == sorted(
            day for day in builtin_calendar("XSHG").sessions if date(2024, 2, 1) <= day <= date(2024, 2, 29)
        )
    finally:
        provider.close()

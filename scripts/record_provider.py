"""Writes the recorded provider's files (services/executor/data_sync/providers.py, RecordedProvider).

    python scripts/record_provider.py --provider akshare --count 50 --start 2024-01-02 --end 2024-01-15
        records a live provider's normalized answers (needs its library and a network)
    python scripts/record_provider.py --synthetic
        writes the files the repository ships (tests/data/providers/recorded): 50 symbols, 10 XSHG
        sessions of January 2024, prices from a seeded random walk. The machine that made them could
        not reach any provider; re-record with a live one where a network is available.

Either way the output is what the provider interface returns, so the recorded provider replays
exactly what a job would have stored.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import date
from pathlib import Path
from typing import Any

from services.common.calendars import builtin_calendar
from services.common.data_sync import Provider
from services.executor.data_sync.providers import DEFAULT_RECORDED_DIR, DailyBar, Stock, open_provider

SYNTHETIC_START, SYNTHETIC_END = date(2024, 1, 2), date(2024, 1, 15)
CALENDAR_START, CALENDAR_END = date(2024, 1, 1), date(2024, 3, 31)


def _bar(bar: DailyBar) -> list[Any]:
    return [bar.trade_date.isoformat(), bar.open, bar.high, bar.low, bar.close, bar.volume, bar.amount]


def write(
    out: Path, stocks: list[Stock], bars: dict[str, list[DailyBar]], days: list[date], source: str
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stock_rows = [
        {
            "symbol": stock.symbol,
            "name": stock.name,
            "exchange": stock.exchange,
            "list_date": stock.list_date.isoformat() if stock.list_date else None,
        }
        for stock in stocks
    ]
    (out / "stocks.json").write_text(
        json.dumps(stock_rows, ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
    )
    recorded = {
        "source": source,
        "fields": ["trade_date", "open", "high", "low", "close", "volume", "amount"],
        "bars": {symbol: [_bar(bar) for bar in rows] for symbol, rows in bars.items()},
    }
    (out / "daily_bars.json").write_text(json.dumps(recorded, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "trading_days.json").write_text(
        json.dumps([day.isoformat() for day in days]) + "\n", encoding="utf-8"
    )


def synthetic() -> tuple[list[Stock], dict[str, list[DailyBar]], list[date]]:
    rng = random.Random(20240102)
    codes = [f"6000{n:02d}" for n in range(20)] + [f"0000{n:02d}" for n in range(1, 16)]
    codes += [f"3000{n:02d}" for n in range(1, 13)] + ["830799", "831010", "832000"]
    exchanges = {"6": "SH", "0": "SZ", "3": "SZ", "8": "BJ"}
    stocks = [
        Stock(f"{code}.{exchanges[code[0]]}", f"测试股票{i + 1:02d}", exchanges[code[0]])
        for i, code in enumerate(codes)
    ]
    sessions = sorted(builtin_calendar("XSHG").sessions)
    bar_days = [day for day in sessions if SYNTHETIC_START <= day <= SYNTHETIC_END]
    bars: dict[str, list[DailyBar]] = {}
    for stock in stocks:
        close = round(rng.uniform(3, 80), 2)
        rows = []
        for day in bar_days:
            open_ = round(close * (1 + rng.uniform(-0.02, 0.02)), 2)
            close = round(open_ * (1 + rng.uniform(-0.05, 0.05)), 2)
            high = round(max(open_, close) * (1 + rng.uniform(0, 0.02)), 2)
            low = round(min(open_, close) * (1 - rng.uniform(0, 0.02)), 2)
            volume = float(rng.randrange(100_000, 50_000_000, 100))
            rows.append(
                DailyBar(stock.symbol, day, open_, high, low, close, volume, round(volume * close, 2))
            )
        bars[stock.symbol] = rows
    days = [day for day in sessions if CALENDAR_START <= day <= CALENDAR_END]
    return stocks, bars, days


def record(
    provider_name: Provider, count: int, start: date, end: date
) -> tuple[list[Stock], dict[str, list[DailyBar]], list[date]]:
    provider = open_provider(provider_name)
    try:
        stocks = provider.stocks()[:count]
        bars = {stock.symbol: provider.daily_bars(stock.symbol, start, end) for stock in stocks}
        days = provider.trading_days(start, end)
    finally:
        provider.close()
    return stocks, bars, days


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--synthetic", action="store_true", help="write the seeded files the repository ships"
    )
    parser.add_argument("--provider", choices=[Provider.AKSHARE, Provider.BAOSTOCK, Provider.TUSHARE])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--start", type=date.fromisoformat, default=SYNTHETIC_START)
    parser.add_argument("--end", type=date.fromisoformat, default=SYNTHETIC_END)
    parser.add_argument("--out", type=Path, default=DEFAULT_RECORDED_DIR)
    args = parser.parse_args(argv)
    if args.synthetic:
        write(
            args.out,
            *synthetic(),
            source="synthetic: seeded random walk (scripts/record_provider.py --synthetic)",
        )
    elif args.provider:
        stocks, bars, days = record(Provider(args.provider), args.count, args.start, args.end)
        write(args.out, stocks, bars, days, source=f"recorded from {args.provider}")
    else:
        parser.error("give --provider NAME or --synthetic")
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The data-sync jobs: provider rows into the target database (services/executor/data_sync/).

Provider calls and database writes block, so each step runs in a worker thread and the event loop
only reports progress between steps. ``data_sync_all_daily_data`` works symbol by symbol: before
each provider call the symbol's checkpoint is marked ``fetching`` (its ``fetches`` counted), its
bars and its ``done`` are written in one transaction, and progress is reported per symbol
(``current_step`` / ``total_steps`` / ``current_item``). A run of the same task and logical date
(a retry after a crash or a kill -9 of its executor, a rerun, a second manual trigger) starts
from the symbols that are not ``done``; ``"resume": false`` syncs every symbol again. A symbol the
provider fails on is recorded ``failed`` and the others go on; the run then fails naming them, and
its retry fetches only those. After a complete run the task's checkpoints of logical dates more
than a month older are dropped.

``data_sync_trading_calendar`` also puts the sessions it fetched into its result (the range, the
weekday holidays, the weekend sessions: ``calendars.SyncedSessions``); the registry records them as
that calendar's data when the run succeeds, so the scheduler's calendars (and the data end the
calendar list shows) move with it, not only the table here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Engine

from services.common.calendars import CalendarUnknown, SyncedSessions, builtin_calendar
from services.common.data_sync import DataSyncSettings, Provider, data_sync_settings
from services.common.log_lines import LogStream
from services.common.vocabulary import TaskType
from services.executor.data_sync import store
from services.executor.data_sync.providers import MarketDataProvider, ProviderError, open_provider
from services.executor.jobs.context import JobContext, JobFailed

T = TypeVar("T")
# Symbols named in a failed run's message and result.
_SHOWN_FAILURES = 20


class _Sync:
    """One run: its settings, its target engine and provider (opened lazily, closed at the end)."""

    def __init__(self, ctx: JobContext, settings: DataSyncSettings, url: str) -> None:
        self.ctx = ctx
        self.settings = settings
        self.url = url
        self.engine: Engine | None = None
        self.provider: MarketDataProvider | None = None

    async def call(self, work: Callable[[], T]) -> T:
        """`work` in a worker thread; a provider's failure becomes the run's."""
        try:
            return await asyncio.to_thread(work)
        except ProviderError as exc:
            raise JobFailed(str(exc)) from None

    def open(self, with_provider: bool = True) -> None:
        if self.engine is None:
            try:
                self.engine = store.open_target(self.url)
            except Exception as exc:
                raise JobFailed(f"无法连接数据同步目标数据库: {type(exc).__name__}: {exc}") from None
        if with_provider and self.provider is None:
            self.provider = open_provider(self.settings.provider, self.ctx.data_sync.recorded_dir)

    def close(self) -> None:
        if self.provider is not None:
            self.provider.close()
        if self.engine is not None:
            self.engine.dispose()

    def log(self, line: str) -> None:
        self.ctx.log.write(LogStream.STDOUT, line)


async def run_data_sync(ctx: JobContext, sync_type: TaskType) -> dict[str, Any]:
    settings = data_sync_settings(sync_type, ctx.config, ctx.logical_date, ctx.data_sync.provider)
    url = settings.target_url or ctx.data_sync.url
    if not url:
        raise JobFailed("数据同步没有目标数据库: 任务配置 target_url，或在执行器上设置 ZQ_DATA_SYNC_URL")
    sync = _Sync(ctx, settings, url)
    try:
        if sync_type == TaskType.DATA_SYNC_STOCK_LIST:
            return await _stock_list(sync)
        if sync_type == TaskType.DATA_SYNC_TRADING_CALENDAR:
            return await _trading_calendar(sync)
        if sync_type == TaskType.DATA_SYNC_DAILY_DATA:
            return await _daily_data(sync)
        return await _all_daily_data(sync)
    finally:
        await asyncio.to_thread(sync.close)


async def _stock_list(sync: _Sync) -> dict[str, Any]:
    provider_name = sync.settings.provider

    def work() -> int:
        sync.open()
        assert sync.engine is not None and sync.provider is not None
        found = sync.provider.stocks()
        with sync.engine.begin() as conn:
            return store.upsert(conn, store.stocks, store.stock_rows(found, provider_name))

    count = await sync.call(work)
    sync.log(f"股票列表: {count} 只（数据源 {provider_name}）")
    return {"message": f"同步股票列表 {count} 只", "count": count, "provider": provider_name}


async def _trading_calendar(sync: _Sync) -> dict[str, Any]:
    settings = sync.settings
    assert settings.start_date is not None and settings.end_date is not None
    start, end, name = settings.start_date, settings.end_date, settings.calendar

    def work() -> tuple[int, date, date, list[date]]:
        offline = settings.provider == Provider.EXCHANGE_CALENDARS
        sync.open(with_provider=not offline)
        assert sync.engine is not None
        if offline:
            try:
                calendar = builtin_calendar(name)
            except CalendarUnknown as exc:
                raise ProviderError(str(exc)) from None
            # Only what the data covers is stored: beyond it nothing is known, never guessed.
            first, last = max(start, calendar.covered_from), min(end, calendar.covered_until)
            days = [day for day in calendar.sessions if first <= day <= last]
        else:
            assert sync.provider is not None
            first, last = start, end
            days = sync.provider.trading_days(start, end)
        if first > last:
            return 0, first, last, []
        with sync.engine.begin() as conn:
            count = store.replace_sessions(conn, name, first, last, days, settings.provider)
        return count, first, last, days

    count, first, last, days = await sync.call(work)
    result: dict[str, Any] = {
        "message": f"同步交易日历 {name}: {count} 个交易日",
        "count": count,
        "calendar": name,
        "provider": settings.provider,
    }
    if first <= last:
        # The sessions fetched, compactly (holidays on weekdays, weekend sessions): the registry
        # records them as the calendar's data when the run succeeds, for the scheduler to use.
        result.update(SyncedSessions.of_sessions(name, first, last, days).result_fields())
    if last < end:
        result["covered_until"] = last.isoformat()
        result["message"] += f"（数据截至 {last.isoformat()}）"
    sync.log(result["message"])
    return result


async def _daily_data(sync: _Sync) -> dict[str, Any]:
    settings = sync.settings
    assert settings.start_date is not None and settings.end_date is not None
    start, end, symbol = settings.start_date, settings.end_date, settings.symbol

    def work() -> int:
        sync.open()
        assert sync.engine is not None and sync.provider is not None
        bars = sync.provider.daily_bars(symbol, start, end)
        with sync.engine.begin() as conn:
            return store.upsert(conn, store.daily_bars, store.bar_rows(bars, settings.provider))

    count = await sync.call(work)
    message = f"{symbol} {start.isoformat()} ~ {end.isoformat()}: {count} 条日线"
    sync.log(message)
    return {"message": message, "count": count, "symbol": symbol, "provider": settings.provider}


async def _all_daily_data(sync: _Sync) -> dict[str, Any]:
    ctx, settings = sync.ctx, sync.settings
    assert settings.start_date is not None and settings.end_date is not None
    start, end = settings.start_date, settings.end_date
    task_id, logical_date, execution_id = ctx.spec.task_id, ctx.logical_date, ctx.spec.execution_id

    def prepare() -> tuple[list[str], set[str]]:
        sync.open()
        assert sync.engine is not None and sync.provider is not None
        symbols = list(settings.symbols)
        if not symbols:
            listed = sync.provider.stocks()
            with sync.engine.begin() as conn:
                store.upsert(conn, store.stocks, store.stock_rows(listed, settings.provider))
            symbols = [stock.symbol for stock in listed]
        with sync.engine.connect() as conn:
            done = store.done_symbols(conn, task_id, logical_date) if settings.resume else set()
        return symbols, done

    symbols, done = await sync.call(prepare)
    todo = [symbol for symbol in symbols if symbol not in done]
    total, finished = len(symbols), len(symbols) - len(todo)
    if finished:
        sync.log(f"续传: {finished} 只股票已在之前的运行中同步（逻辑日期 {logical_date.isoformat()}），跳过")
    counts = {"rows_written": 0, "success_count": 0, "failed_count": 0}
    failures: list[str] = []
    ctx.progress(
        {
            "current_step": finished,
            "total_steps": total,
            "resumed_count": finished,
            **counts,
            "message": f"开始同步 {len(todo)} 只股票的日线（共 {total} 只）",
        }
    )

    def one(symbol: str) -> tuple[int, str]:
        assert sync.engine is not None and sync.provider is not None
        with sync.engine.begin() as conn:
            store.mark(conn, task_id, logical_date, symbol, execution_id, store.FETCHING)
        if settings.fetch_delay_seconds:
            time.sleep(settings.fetch_delay_seconds)  # a worker thread: politeness towards the provider
        try:
            bars = sync.provider.daily_bars(symbol, start, end)
        except Exception as exc:  # one symbol's failure does not stop the others
            error = f"{type(exc).__name__}: {exc}"
            with sync.engine.begin() as conn:
                store.mark(conn, task_id, logical_date, symbol, execution_id, store.FAILED, error=error)
            return -1, error
        with sync.engine.begin() as conn:
            written = store.upsert(conn, store.daily_bars, store.bar_rows(bars, settings.provider))
            store.mark(conn, task_id, logical_date, symbol, execution_id, store.DONE, rows=written)
        return written, ""

    for symbol in todo:
        written, error = await sync.call(partial(one, symbol))
        finished += 1
        if written < 0:
            counts["failed_count"] += 1
            failures.append(symbol)
            sync.log(f"{symbol} 同步失败: {error}")
            message = f"{symbol} 同步失败 ({finished}/{total})"
        else:
            counts["success_count"] += 1
            counts["rows_written"] += written
            message = f"{symbol} 已同步 {written} 条 ({finished}/{total})"
        ctx.progress(
            {
                "current_step": finished,
                "total_steps": total,
                "current_item": symbol,
                **counts,
                "message": message,
            }
        )
    summary: dict[str, Any] = {
        "total_count": total,
        "resumed_count": total - len(todo),
        **counts,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "provider": settings.provider,
    }
    if failures:
        summary["failed_symbols"] = failures[:_SHOWN_FAILURES]
        shown = ", ".join(failures[:_SHOWN_FAILURES]) + (" ..." if len(failures) > _SHOWN_FAILURES else "")
        raise JobFailed(f"{len(failures)} 只股票同步失败（重试时只同步未完成的股票）: {shown}", summary)

    def prune() -> None:
        assert sync.engine is not None
        with sync.engine.begin() as conn:
            store.prune_checkpoints(conn, task_id, logical_date)

    await sync.call(prune)
    summary["message"] = f"同步 {len(todo)} 只股票的日线，写入 {counts['rows_written']} 条" + (
        f"；{total - len(todo)} 只已在之前同步" if len(todo) < total else ""
    )
    sync.log(summary["message"])
    return summary

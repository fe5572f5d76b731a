"""The data-sync jobs on a real target database (SQLite and PostgreSQL) with the recorded provider:
upserts keyed by symbol and date, checkpoints that let a run of the same day resume, the offline
trading calendar."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select

from services.common.db_url import normalize_url
from services.executor.data_sync import store
from services.executor.data_sync.providers import DEFAULT_RECORDED_DIR
from services.executor.jobs import run_job
from services.executor.jobs.context import JobContext, JobFailed
from services.executor.jobs.plugin import PluginRegistry
from services.executor.models import RunSpec
from services.executor.run_log import DEFAULT_LOG_MAX_BYTES, RunLog
from services.executor.settings import DataSyncDefaults
from tests.conftest import postgres_schema_url

DAY = date(2024, 1, 15)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/market.db"
    else:
        with postgres_schema_url("zq_sync") as url:
            yield url


@pytest.fixture
def engine(target: str) -> Iterator[Engine]:
    engine = create_engine(normalize_url(target))
    yield engine
    engine.dispose()


def run(
    target: str,
    task_type: str,
    config: dict[str, Any],
    recorded: Path = DEFAULT_RECORDED_DIR,
    execution_id: int = 1,
    progress: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec = RunSpec(execution_id, 1, 7, "sync", task_type, config, 0, DAY)
    ctx = JobContext(
        spec=spec,
        log=RunLog(DEFAULT_LOG_MAX_BYTES, lambda _: None),
        work_dir=Path("."),
        output_tail_bytes=4096,
        kill_grace_seconds=1,
        rng=random.Random(0),
        job_user=None,
        emit=(progress.append if progress is not None else lambda _: None),
        data_sync=DataSyncDefaults(url=target, recorded_dir=recorded),
    )
    return asyncio.run(run_job(ctx, PluginRegistry()))


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def bars_of(engine: Engine) -> list[tuple[Any, ...]]:
    columns = [c for c in store.daily_bars.c if c.name != "updated_at"]
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(*columns).order_by(*store.daily_bars.primary_key))]


def checkpoints(engine: Engine) -> dict[str, tuple[str, int]]:
    c = store.checkpoints.c
    with engine.connect() as conn:
        return {
            row.symbol: (row.status, row.fetches)
            for row in conn.execute(select(c.symbol, c.status, c.fetches))
        }


def test_an_upsert_keyed_by_symbol_and_date_rewrites_a_row_instead_of_adding_one(engine: Engine) -> None:
    store.metadata.create_all(engine)
    now = datetime.now(UTC)
    row = {"symbol": "600000.SH", "trade_date": DAY, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5}
    row |= {"volume": 100.0, "amount": 150.0, "provider": "recorded", "updated_at": now}
    with engine.begin() as conn:
        store.upsert(conn, store.daily_bars, [row, {**row, "trade_date": date(2024, 1, 16)}])
    with engine.begin() as conn:
        assert store.upsert(conn, store.daily_bars, [{**row, "close": 1.8}]) == 1
    assert count(engine, store.daily_bars) == 2
    assert [bar[5] for bar in bars_of(engine)] == [1.8, 1.5]


def test_the_stock_list_and_one_symbols_bars_are_stored_and_a_rerun_changes_nothing(
    target: str, engine: Engine
) -> None:
    listed = run(target, "data_sync_stock_list", {"provider": "recorded"})
    assert listed["count"] == 50 and count(engine, store.stocks) == 50
    config = {"provider": "recorded", "symbol": "600000", "start_date": "2024-01-02"}
    first = run(target, "data_sync_daily_data", config)
    assert (first["count"], first["symbol"]) == (10, "600000.SH")
    stored = bars_of(engine)
    run(target, "data_sync_daily_data", config)
    assert bars_of(engine) == stored and len(stored) == 10
    # Its dates default to the logical date: one bar.
    assert run(target, "data_sync_daily_data", {"provider": "recorded", "symbol": "000001"})["count"] == 1


def test_a_whole_market_sync_writes_every_symbol_once_and_a_second_run_of_the_day_fetches_nothing(
    target: str, engine: Engine
) -> None:
    progress: list[dict[str, Any]] = []
    config = {"provider": "recorded", "start_date": "2024-01-02"}
    result = run(
        target, "common_task", {"task_action": "data_sync_all_daily_data", **config}, progress=progress
    )
    assert (result["total_count"], result["success_count"], result["rows_written"]) == (50, 50, 500)
    assert count(engine, store.daily_bars) == 500 and count(engine, store.stocks) == 50
    items = [snapshot["current_item"] for snapshot in progress if "current_item" in snapshot]
    assert len(items) == 50 and items[0] == "600000.SH"
    assert progress[-1]["current_step"] == progress[-1]["total_steps"] == 50
    assert set(checkpoints(engine).values()) == {("done", 1)}

    again = run(target, "data_sync_all_daily_data", config, execution_id=2)
    assert (again["resumed_count"], again["success_count"]) == (50, 0)
    assert set(checkpoints(engine).values()) == {("done", 1)}
    stored = bars_of(engine)
    # resume: false syncs the day again: every symbol fetched once more, the same rows.
    run(target, "data_sync_all_daily_data", {**config, "resume": False}, execution_id=3)
    assert set(checkpoints(engine).values()) == {("done", 2)}
    assert bars_of(engine) == stored


def test_a_symbol_the_provider_fails_on_fails_the_run_and_its_retry_fetches_only_that_symbol(
    target: str, engine: Engine, tmp_path: Path
) -> None:
    recorded = tmp_path / "recorded"
    shutil.copytree(DEFAULT_RECORDED_DIR, recorded)
    path = recorded / "daily_bars.json"
    good = json.loads(path.read_text())
    broken = json.loads(path.read_text())
    broken["bars"]["000001.SZ"] = [["2024-01-02", 1.0]]  # a response that cannot be read
    path.write_text(json.dumps(broken))
    config = {"provider": "recorded", "symbols": ["600000", "000001", "300001"]}
    with pytest.raises(JobFailed) as failed:
        run(target, "data_sync_all_daily_data", config, recorded)
    assert "1 只股票同步失败" in failed.value.message and "000001.SZ" in failed.value.message
    assert failed.value.result["failed_symbols"] == ["000001.SZ"]
    assert checkpoints(engine) == {
        "600000.SH": ("done", 1),
        "000001.SZ": ("failed", 1),
        "300001.SZ": ("done", 1),
    }

    path.write_text(json.dumps(good))
    retried = run(target, "data_sync_all_daily_data", config, recorded, execution_id=2)
    assert (retried["resumed_count"], retried["success_count"]) == (2, 1)
    assert set(checkpoints(engine).values()) == {("done", 1), ("done", 2)}
    assert checkpoints(engine)["000001.SZ"] == ("done", 2)


def test_the_trading_calendar_is_stored_offline_and_only_as_far_as_its_data_reaches(
    target: str, engine: Engine
) -> None:
    result = run(target, "data_sync_trading_calendar", {"start_date": "2024-01-01", "end_date": "2024-12-31"})
    assert (result["calendar"], result["count"], result["provider"]) == ("XSHG", 242, "exchange_calendars")
    c = store.trading_sessions.c
    with engine.connect() as conn:
        days = set(conn.execute(select(c.session_date).where(c.calendar == "XSHG")).scalars())
    assert date(2024, 2, 8) in days and date(2024, 2, 9) not in days  # Spring Festival
    assert date(2024, 2, 4) not in days  # a make-up working Sunday: the exchange stays closed
    assert date(2024, 10, 8) in days and date(2024, 10, 7) not in days  # National Day
    assert (
        run(target, "data_sync_trading_calendar", {"start_date": "2024-01-01", "end_date": "2024-12-31"})[
            "count"
        ]
        == 242
    )
    assert count(engine, store.trading_sessions) == 242

    beyond = run(target, "data_sync_trading_calendar", {"start_date": "2026-12-01", "end_date": "2027-03-31"})
    assert beyond["covered_until"] == "2026-12-31" and "数据截至 2026-12-31" in beyond["message"]


def test_a_run_without_a_target_database_fails_with_the_reason() -> None:
    with pytest.raises(JobFailed, match="没有目标数据库"):
        run("", "data_sync_stock_list", {"provider": "recorded"})


@pytest.mark.skipif(importlib.util.find_spec("baostock") is not None, reason="baostock is installed here")
def test_a_provider_library_that_is_not_installed_fails_the_run_with_how_to_install_it(
    tmp_path: Path,
) -> None:
    with pytest.raises(JobFailed, match=r"baostock 未安装.*data-baostock"):
        run(f"sqlite:///{tmp_path}/market.db", "data_sync_stock_list", {"provider": "baostock"})


def test_a_complete_run_drops_the_tasks_checkpoints_of_days_over_a_month_older(
    target: str, engine: Engine
) -> None:
    store.metadata.create_all(engine)
    with engine.begin() as conn:
        for day in (date(2023, 12, 1), date(2023, 12, 20)):
            store.mark(conn, 7, day, "600000.SH", 1, store.DONE)
        store.mark(conn, 8, date(2023, 12, 1), "600000.SH", 1, store.DONE)  # another task's
    run(target, "data_sync_all_daily_data", {"provider": "recorded", "symbols": ["600000"]})
    c = store.checkpoints.c
    with engine.connect() as conn:
        kept = sorted(
            (row.task_id, row.logical_date) for row in conn.execute(select(c.task_id, c.logical_date))
        )
    assert kept == [(7, date(2023, 12, 20)), (7, DAY), (8, date(2023, 12, 1))]

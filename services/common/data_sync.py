"""The guide's data-sync task types and what their config must hold: one rule, run by the registry
when a task is saved or triggered (a bad config is a 400 with its reason) and by the executor
before the job starts.

Four task types (``TaskType.DATA_SYNC_*``; a common or manual task may also name one as its
``task_action``):

- ``data_sync_stock_list``: the provider's A-share list into ``zq_data_stocks``.
- ``data_sync_trading_calendar``: one calendar's sessions into ``zq_data_trading_sessions``, by
  default offline from ``exchange-calendars`` (``provider``: ``exchange_calendars``).
- ``data_sync_daily_data``: one symbol's daily bars for a date range into ``zq_data_daily_bars``.
- ``data_sync_all_daily_data``: every symbol's daily bars (``symbols``, or the provider's whole
  list), progress per symbol, resumable through ``zq_data_sync_checkpoints``.

Dates are ``YYYY-MM-DD`` and default to the run's logical date (a template such as
``{{ logical_date }}`` is accepted on save and filled in before the run). Symbols are written the
way the whole module stores them: ``600000.SH``, ``000001.SZ``, ``830799.BJ`` (a bare six-digit
code gets its exchange from its first digits; ``sh600000`` and ``sh.600000`` are accepted too).

Pure functions, no I/O, no provider imports: the registry validates without the data libraries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from services.common.job_config import ConfigInvalid, config_number
from services.common.run_params import TEMPLATE
from services.common.vocabulary import TaskType

DATA_SYNC_TYPES = frozenset(
    {
        TaskType.DATA_SYNC_STOCK_LIST,
        TaskType.DATA_SYNC_TRADING_CALENDAR,
        TaskType.DATA_SYNC_DAILY_DATA,
        TaskType.DATA_SYNC_ALL_DAILY_DATA,
    }
)


class Provider(StrEnum):
    """Where the data comes from. The libraries are optional extras, imported when a run uses them."""

    AKSHARE = "akshare"  # the default: no account, no token
    BAOSTOCK = "baostock"
    TUSHARE = "tushare"  # needs TUSHARE_TOKEN in the executor's environment
    RECORDED = "recorded"  # responses stored in the repository (tests, demos; no network)
    # Trading calendar only: the exchange-calendars library (offline; the default for that type).
    EXCHANGE_CALENDARS = "exchange_calendars"


DEFAULT_PROVIDER = Provider.AKSHARE
DEFAULT_CALENDAR = "XSHG"
# The providers that publish China A-share data (stocks, bars, the SSE/SZSE calendar).
MARKET_PROVIDERS = (Provider.AKSHARE, Provider.BAOSTOCK, Provider.TUSHARE, Provider.RECORDED)
# Calendars whose sessions a market provider can give (the Shanghai and Shenzhen exchanges share one).
PROVIDER_CALENDARS = frozenset({"XSHG", "XSHE"})
# A daily-data range beyond this many days is refused (a typo in a year, not a wish).
MAX_RANGE_DAYS = 366 * 30
MAX_SYMBOLS = 20000
MAX_FETCH_DELAY_SECONDS = 60.0

_SYMBOL = re.compile(r"(\d{6})\.(SH|SZ|BJ)")
_PREFIXED = re.compile(r"(sh|sz|bj)\.?(\d{6})", re.IGNORECASE)
_BARE = re.compile(r"\d{6}")

# Keys every task type may have, besides its own.
_COMMON_KEYS = frozenset({"provider", "target_url", "log_max_bytes", "task_action", "fetch_delay_seconds"})
_OWN_KEYS: dict[TaskType, frozenset[str]] = {
    TaskType.DATA_SYNC_STOCK_LIST: frozenset(),
    TaskType.DATA_SYNC_TRADING_CALENDAR: frozenset({"calendar", "start_date", "end_date"}),
    TaskType.DATA_SYNC_DAILY_DATA: frozenset({"symbol", "start_date", "end_date"}),
    TaskType.DATA_SYNC_ALL_DAILY_DATA: frozenset({"symbols", "start_date", "end_date", "resume"}),
}


def exchange_of(code: str) -> str:
    """The exchange of a bare six-digit A-share code: 6 / 9 Shanghai, 0 / 2 / 3 Shenzhen, 4 / 8 Beijing."""
    if code[0] in "69":
        return "SH"
    if code[0] in "48":
        return "BJ"
    return "SZ"


def normalize_symbol(raw: object) -> str:
    """`600000.SH` from 600000.SH, 600000.sh, 600000, sh600000 or sh.600000; ConfigInvalid otherwise."""
    if isinstance(raw, str):
        text = raw.strip()
        if match := _SYMBOL.fullmatch(text.upper()):
            return f"{match[1]}.{match[2]}"
        if match := _PREFIXED.fullmatch(text):
            return f"{match[2]}.{match[1].upper()}"
        if _BARE.fullmatch(text):
            return f"{text}.{exchange_of(text)}"
    shown = raw if isinstance(raw, str) else repr(raw)
    raise ConfigInvalid(f"股票代码无效: {shown}（例如 600000.SH、000001.SZ 或 600000）")


@dataclass(frozen=True, slots=True)
class DataSyncSettings:
    """One run's settings, every default applied. Dates are None only when checked before a run
    (a template, or a default that is the run's logical date)."""

    task_type: TaskType
    provider: Provider
    # "" = the executor's default target (ZQ_DATA_SYNC_URL, else its own database).
    target_url: str
    fetch_delay_seconds: float
    start_date: date | None
    end_date: date | None
    calendar: str = DEFAULT_CALENDAR
    # data_sync_daily_data: the one symbol.
    symbol: str = ""
    # data_sync_all_daily_data: () = the provider's whole stock list.
    symbols: tuple[str, ...] = ()
    # data_sync_all_daily_data: continue from the checkpoints of this task and logical date.
    resume: bool = True


def _has_template(value: object) -> bool:
    return isinstance(value, str) and TEMPLATE.search(value) is not None


def _date(config: Mapping[str, Any], key: str) -> date | None:
    value = config.get(key)
    if value is None or value == "" or _has_template(value):
        return None
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    shown = value if isinstance(value, str) else repr(value)
    raise ConfigInvalid(f"配置项 {key} 必须是 YYYY-MM-DD 格式的日期，例如 2024-01-02（现为 {shown}）")


def _provider(task_type: TaskType, config: Mapping[str, Any], default: Provider) -> Provider:
    raw = config.get("provider")
    if raw is None or raw == "":
        return default
    allowed = list(MARKET_PROVIDERS)
    if task_type == TaskType.DATA_SYNC_TRADING_CALENDAR:
        allowed.append(Provider.EXCHANGE_CALENDARS)
    if not isinstance(raw, str) or raw not in allowed:
        raise ConfigInvalid(f"配置项 provider 无效: {raw}（支持: {', '.join(allowed)}）")
    return Provider(raw)


def _target_url(config: Mapping[str, Any]) -> str:
    raw = config.get("target_url", "")
    if raw is None or raw == "":
        return ""
    if not isinstance(raw, str) or _has_template(raw):
        raise ConfigInvalid("配置项 target_url 必须是 SQLAlchemy 数据库 URL 字符串")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(raw)
    except (ArgumentError, ValueError):
        raise ConfigInvalid(
            "配置项 target_url 不是有效的 SQLAlchemy 数据库 URL（例如 postgresql://user@host/db 或 sqlite:////path/data.db）"
        ) from None
    return raw


def _symbols(config: Mapping[str, Any]) -> tuple[str, ...]:
    raw = config.get("symbols")
    if raw is None or raw == "" or raw == []:
        return ()
    if isinstance(raw, str):  # "600000.SH, 000001.SZ" from a form field
        raw = [part for part in re.split(r"[\s,，]+", raw) if part]
    if not isinstance(raw, list):
        raise ConfigInvalid("配置项 symbols 必须是股票代码列表")
    if len(raw) > MAX_SYMBOLS:
        raise ConfigInvalid(f"配置项 symbols 最多 {MAX_SYMBOLS} 个股票代码")
    # Order kept, duplicates dropped.
    return tuple(dict.fromkeys(normalize_symbol(item) for item in raw))


def data_sync_settings(
    task_type: TaskType,
    config: Mapping[str, Any],
    logical_date: date | None = None,
    default_provider: Provider = DEFAULT_PROVIDER,
) -> DataSyncSettings:
    """The settings of a data-sync run, or ConfigInvalid with the reason.

    `logical_date` None: checking a saved config (templates and date defaults stay open); given: a
    run's settings (dates default to it; the calendar's range to its year and the next)."""
    unknown = sorted(set(config) - _COMMON_KEYS - _OWN_KEYS[task_type])
    if unknown:
        known = ", ".join(sorted(_COMMON_KEYS | _OWN_KEYS[task_type]))
        raise ConfigInvalid(f"{task_type} 不支持的配置项: {', '.join(unknown)}（支持: {known}）")
    calendar_type = task_type == TaskType.DATA_SYNC_TRADING_CALENDAR
    provider = _provider(
        task_type, config, Provider.EXCHANGE_CALENDARS if calendar_type else default_provider
    )
    delay = config_number(
        config, "fetch_delay_seconds", 0, lambda v: 0 <= v <= MAX_FETCH_DELAY_SECONDS, "0 到 60 之间的秒数"
    )
    start, end = _date(config, "start_date"), _date(config, "end_date")
    if logical_date is not None:
        if calendar_type:
            start = start or date(logical_date.year, 1, 1)
            end = end or date(logical_date.year + 1, 12, 31)
        else:
            start, end = start or min(logical_date, end or logical_date), end or logical_date
    if start is not None and end is not None:
        if start > end:
            raise ConfigInvalid(f"开始日期 {start.isoformat()} 晚于结束日期 {end.isoformat()}")
        if end - start > timedelta(days=MAX_RANGE_DAYS):
            raise ConfigInvalid(f"日期范围不能超过 {MAX_RANGE_DAYS} 天")
    settings = DataSyncSettings(
        task_type=task_type,
        provider=provider,
        target_url=_target_url(config),
        fetch_delay_seconds=delay,
        start_date=start,
        end_date=end,
    )
    if calendar_type:
        return _calendar_settings(settings, config)
    if task_type == TaskType.DATA_SYNC_DAILY_DATA:
        if config.get("symbol") in (None, ""):
            raise ConfigInvalid("data_sync_daily_data 必须指定 symbol（股票代码，例如 600000.SH）")
        return replace(settings, symbol=normalize_symbol(config["symbol"]))
    if task_type == TaskType.DATA_SYNC_ALL_DAILY_DATA:
        resume = config.get("resume", True)
        if not isinstance(resume, bool):
            raise ConfigInvalid("配置项 resume 必须是 true 或 false")
        return replace(settings, symbols=_symbols(config), resume=resume)
    return settings


def _calendar_settings(settings: DataSyncSettings, config: Mapping[str, Any]) -> DataSyncSettings:
    calendar = config.get("calendar", DEFAULT_CALENDAR) or DEFAULT_CALENDAR
    if not isinstance(calendar, str) or not re.fullmatch(r"[A-Za-z0-9_\-]{1,32}", calendar):
        raise ConfigInvalid("配置项 calendar 必须是交易日历名称，例如 XSHG")
    if settings.provider == Provider.EXCHANGE_CALENDARS:
        from services.common.calendars import builtin_names

        if calendar not in builtin_names():
            raise ConfigInvalid(
                f"未知的交易日历: {calendar}（exchange-calendars 提供的日历，例如 XSHG、XHKG、XNYS）"
            )
    elif calendar not in PROVIDER_CALENDARS:
        raise ConfigInvalid(
            f"provider {settings.provider} 只提供沪深交易日历（{', '.join(sorted(PROVIDER_CALENDARS))}），"
            f"{calendar} 请使用 exchange_calendars"
        )
    return replace(settings, calendar=calendar)


def data_sync_type(task_type: str, config: Mapping[str, Any]) -> TaskType | None:
    """The data-sync type a task runs: its own type, or a common/manual task's task_action; else None."""
    if task_type in DATA_SYNC_TYPES:
        return TaskType(task_type)
    action = config.get("task_action")
    if (
        task_type in (TaskType.COMMON, TaskType.MANUAL)
        and config.get("command") is None
        and action in DATA_SYNC_TYPES
    ):
        return TaskType(str(action))
    return None

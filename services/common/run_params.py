"""What one run adds to its task: a logical date, parameters, and the templates they fill in.

Every run is *for* a date, its logical date: the planned time's date in the task's time zone for a
scheduled or backfill run (a 00:30 Asia/Shanghai fire is for that Shanghai date even though it is
the day before in UTC), the given date (or today in the task's zone) for a manual trigger, the
first run's date for its retries, the workflow run's date for its nodes. Parameters are a JSON
object merged over the task's config (top-level keys) for that run only.

A config may name template variables, ``{{ logical_date }}`` in a command or any string value; they
are checked when a task is saved or triggered (an unknown name is refused then, never found at run
time) and filled in by the executor just before the job starts, after the parameters are merged.
``{{ prev_trading_day }}`` is the trading day before the logical date by the task's calendar
(``calendars.previous_session``: computed by the scheduler, which holds the calendars, and sent with
the run); a task without a calendar takes the previous weekday (Monday to Friday), the rule that also
applies beyond a calendar's data.

Pure functions, no I/O: the registry checks, the scheduler and the executor compute with them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.common.calendars import previous_session
from services.common.errors import InvalidArgument, Reason
from services.common.input_checks import shown

# `{{ name }}` with optional spaces inside the braces.
TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


@dataclass(frozen=True, slots=True)
class RunDates:
    """The dates a run's templates are made of."""

    logical_date: date
    prev_trading_day: date

    @classmethod
    def of(cls, day: date, prev_trading_day: date | None = None) -> RunDates:
        """`day`'s dates; without a known previous trading day, the previous weekday."""
        return cls(day, prev_trading_day or previous_session(None, day))


# What a template may name, and how each is made from the run's dates.
TEMPLATE_VARIABLES: dict[str, Callable[[RunDates], str]] = {
    "logical_date": lambda dates: dates.logical_date.isoformat(),  # 2024-01-02
    "logical_date_nodash": lambda dates: dates.logical_date.strftime("%Y%m%d"),  # 20240102
    "prev_trading_day": lambda dates: dates.prev_trading_day.isoformat(),  # 2023-12-29
    "prev_trading_day_nodash": lambda dates: dates.prev_trading_day.strftime("%Y%m%d"),  # 20231229
}

# Parameters that change which program runs, where, with what environment or into which database
# (a data sync's target_url): only an admin (who may change the task itself) may set them on a
# single run.
PRIVILEGED_PARAMS = frozenset({"command", "task_action", "work_dir", "env", "target_url"})


def logical_date_of(moment: datetime, timezone: str) -> date:
    """The date of `moment` (aware) in the task's time zone."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def parse_logical_date(
    text: str, label: str = "logical_date", reason: Reason = Reason.RUN_PARAMS_INVALID
) -> date:
    """A `YYYY-MM-DD` date; InvalidArgument naming `label` with `reason` otherwise."""
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"{label} 格式无效: {shown(text)}（需要 YYYY-MM-DD，例如 2024-01-02）", reason=reason
        ) from None


def _strings(value: Any) -> Iterator[str]:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def check_templates(value: Any, label: str) -> None:
    """Refuses (TEMPLATE_INVALID) a template naming anything but the known variables."""
    for text in _strings(value):
        for match in TEMPLATE.finditer(text):
            if match.group(1) not in TEMPLATE_VARIABLES:
                known = "、".join(f"{{{{ {name} }}}}" for name in TEMPLATE_VARIABLES)
                raise InvalidArgument(
                    f"{label}中的模板变量未知: {shown(match.group(0))}（可用: {known}）",
                    reason=Reason.TEMPLATE_INVALID,
                )


def check_params(params: Any, *, privileged: bool) -> dict[str, Any]:
    """A run's parameters as given: a JSON object whose templates are known; keys that change
    what runs only when `privileged`. InvalidArgument (RUN_PARAMS_INVALID / TEMPLATE_INVALID)."""
    if not isinstance(params, dict):
        raise InvalidArgument("params 必须是 JSON 对象", reason=Reason.RUN_PARAMS_INVALID)
    guarded = sorted(PRIVILEGED_PARAMS.intersection(params))
    if guarded and not privileged:
        raise InvalidArgument(
            f"只有管理员可以在触发时覆盖这些配置项: {', '.join(guarded)}", reason=Reason.RUN_PARAMS_INVALID
        )
    check_templates(params, "params")
    return params


def render(value: Any, dates: RunDates) -> Any:
    """`value` with every known template in its strings filled in from `dates`; unknown ones
    (which saving refuses) stay as they are."""
    if isinstance(value, str):
        return TEMPLATE.sub(lambda match: _fill(match, dates), value)
    if isinstance(value, Mapping):
        return {key: render(item, dates) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, dates) for item in value]
    return value


def _fill(match: re.Match[str], dates: RunDates) -> str:
    make = TEMPLATE_VARIABLES.get(match.group(1))
    return make(dates) if make is not None else match.group(0)


def run_config(config: Mapping[str, Any], params: Mapping[str, Any], dates: RunDates) -> dict[str, Any]:
    """The config one run sees: `params` over `config` (top-level keys), templates filled in."""
    merged: dict[str, Any] = render({**config, **params}, dates)
    return merged

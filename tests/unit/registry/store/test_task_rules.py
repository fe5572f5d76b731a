"""Every validation rule of a task (services.registry.store.task_rules), through the store's create,
update and list on a real SQLite session: each refusal with its message (the user guide's where it
has one) and its reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.common.calendars import builtin_calendar
from services.common.errors import AlreadyExists, DomainError, InvalidArgument, Reason
from services.registry.db import Database, migrate
from services.registry.models import TaskRow
from services.registry.store import task_listing, tasks

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
COMMAND = {"command": "echo hi"}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """SQLite only: the rules are the same on every backend (test_task_batches.py, test_task_tags.py
    and the integration tier cover PostgreSQL). Overrides the conftest fixture, emptied per test by `db`."""
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('rules')}/registry.db")
    migrate(db.engine)
    yield db
    db.dispose()


def create(db: Database, **fields: Any) -> TaskRow:
    fields.setdefault("name", "t")
    fields.setdefault("task_type", "common_task")
    if fields["task_type"] in ("common_task", "manual_task"):
        fields.setdefault("config", COMMAND)
    with db.session() as session:
        return tasks.create_task(session, fields, "admin", "Asia/Shanghai", NOW)


def update(db: Database, task_id: int, **changes: Any) -> TaskRow:
    with db.session() as session:
        return tasks.update_task(session, task_id, changes, "admin", NOW)


def refusal(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Reason]:
    with pytest.raises(DomainError) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, InvalidArgument)
    return info.value.message, info.value.reason


def refused(db: Database, **fields: Any) -> tuple[str, Reason]:
    return refusal(create, db, **fields)


def invalid(message: str) -> tuple[str, Reason]:
    return message, Reason.TASK_INVALID


# --- name -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", None])
def test_an_empty_name_is_refused(db: Database, name: str | None) -> None:
    assert refused(db, name=name) == invalid("任务名称不能为空")


def test_a_missing_name_is_refused(db: Database) -> None:
    with db.session() as session, pytest.raises(InvalidArgument) as info:
        tasks.create_task(session, {"task_type": "common_task", "config": COMMAND}, "admin", "UTC", NOW)
    assert (info.value.message, info.value.reason) == invalid("任务名称不能为空")


def test_a_name_is_text_of_at_most_100_characters(db: Database) -> None:
    assert refused(db, name=7) == invalid("任务名称必须是字符串")
    assert refused(db, name="名" * 101) == invalid("任务名称不能超过100个字符")
    assert create(db, name="  " + "名" * 100 + "  ").name == "名" * 100  # trimmed first


def test_a_taken_name_is_refused_on_create_and_on_rename(db: Database) -> None:
    create(db, name="daily")
    other = create(db, name="weekly")
    with pytest.raises(AlreadyExists) as on_create:
        create(db, name="daily")
    with pytest.raises(AlreadyExists) as on_rename:
        update(db, other.id, name=" daily ")
    for info in (on_create, on_rename):
        assert (info.value.message, info.value.reason) == ("任务名称 'daily' 已存在", Reason.TASK_NAME_TAKEN)


# --- schedules --------------------------------------------------------------------------------------


def test_an_invalid_cron_names_the_field_and_its_position(db: Database) -> None:
    assert refused(db, cron_expression="0 25 * * *") == (
        "Cron表达式无效: 第2个字段(时) '25': 超出范围 0-23",
        Reason.CRON_INVALID,
    )
    assert refused(db, cron_expression="* * *") == (
        "Cron表达式无效: 需要5个字段（分 时 日 月 周）或6个字段（秒 分 时 日 月 周），实际为 3 个",
        Reason.CRON_INVALID,
    )
    assert refused(db, cron_expression=5) == invalid("Cron表达式必须是字符串")


def test_a_valid_cron_is_stored_trimmed_and_an_empty_one_clears(db: Database) -> None:
    row = create(db, cron_expression="  0 9 * * 1-5 ")
    assert row.cron_expression == "0 9 * * 1-5"
    assert update(db, row.id, cron_expression="").cron_expression is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "间隔秒数必须在1到31622400之间"),
        (366 * 86400 + 1, "间隔秒数必须在1到31622400之间"),
        (1.5, "间隔秒数必须是整数"),
        ("10", "间隔秒数必须是整数"),
        (True, "间隔秒数必须是整数"),
    ],
)
def test_an_interval_is_a_whole_number_of_seconds_up_to_a_year(
    db: Database, value: Any, message: str
) -> None:
    assert refused(db, interval_seconds=value) == invalid(message)


def test_interval_bounds_are_accepted(db: Database) -> None:
    assert create(db, name="a", interval_seconds=1).interval_seconds == 1
    assert create(db, name="b", interval_seconds=366 * 86400.0).interval_seconds == 366 * 86400


def test_a_one_time_run_must_be_in_the_future(db: Database) -> None:
    assert refused(db, run_at="2026-12-01T08:00:00Z") == invalid("一次性运行时间必须晚于当前时间")
    assert refused(db, run_at="2020-01-01T00:00:00+08:00") == invalid("一次性运行时间必须晚于当前时间")
    row = create(db, run_at="2026-12-01T16:00:01+08:00")
    assert row.run_at == NOW + timedelta(seconds=1)


def test_a_one_time_run_needs_an_offset_and_rfc_3339(db: Database) -> None:
    assert refused(db, run_at="2027-01-01T18:00:00") == invalid(
        "一次性运行时间必须带时区偏移，例如 2026-01-01T18:00:00+08:00"
    )
    assert refused(db, run_at="tomorrow") == invalid(
        "一次性运行时间格式无效: tomorrow（需要 RFC 3339，例如 2026-01-01T18:00:00Z）"
    )
    assert refused(db, run_at=1234) == invalid("一次性运行时间必须是字符串")


def test_a_past_run_at_is_checked_only_when_an_update_sets_it(db: Database) -> None:
    row = create(db, run_at="2026-12-01T09:00:00Z")
    with db.session() as session:
        later = NOW + timedelta(hours=2)  # the run time has passed; other edits still work
        assert tasks.update_task(session, row.id, {"description": "x"}, "admin", later).description == "x"
        with pytest.raises(InvalidArgument) as info:
            tasks.update_task(session, row.id, {"run_at": "2026-12-01T09:30:00Z"}, "admin", later)
    assert info.value.message == "一次性运行时间必须晚于当前时间"


def test_only_one_schedule_may_be_set(db: Database) -> None:
    message = invalid("Cron表达式、间隔秒数和一次性运行时间只能设置其中一个")
    assert refused(db, cron_expression="0 9 * * *", interval_seconds=60) == message
    assert refused(db, interval_seconds=60, run_at="2027-01-01T00:00:00Z") == message
    row = create(db, interval_seconds=60)
    assert refusal(update, db, row.id, cron_expression="0 9 * * *") == message


def test_a_timezone_must_be_a_known_iana_zone(db: Database) -> None:
    assert refused(db, timezone="Mars/Olympus") == ("无效的时区: Mars/Olympus", Reason.TIMEZONE_INVALID)
    assert refused(db, timezone="  ") == ("时区不能为空", Reason.TIMEZONE_INVALID)
    assert refused(db, timezone=None) == ("时区不能为空", Reason.TIMEZONE_INVALID)
    assert refused(db, timezone=8) == invalid("时区必须是字符串")
    assert create(db).timezone == "Asia/Shanghai"  # the registry's default


# --- plain fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_enabled_must_be_a_boolean(db: Database, value: Any) -> None:
    assert refused(db, enabled=value) == invalid("enabled 必须是布尔值")


def test_a_description_has_at_most_2000_characters(db: Database) -> None:
    assert refused(db, description="x" * 2001) == invalid("任务描述不能超过2000个字符")
    assert refused(db, description=["x"]) == invalid("任务描述必须是字符串")
    assert create(db, description="x" * 2000).description == "x" * 2000


@pytest.mark.parametrize("value", [[], "echo", 3])
def test_a_config_must_be_a_json_object(db: Database, value: Any) -> None:
    assert refused(db, task_type="example_task", config=value) == invalid("任务配置必须是JSON对象")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_retries", 101, "最大重试次数必须在0到100之间"),
        ("max_retries", -1, "最大重试次数必须在0到100之间"),
        ("max_retries", "3", "最大重试次数必须是整数"),
        ("retry_interval", 86401, "重试间隔必须在0到86400之间"),
        ("timeout_seconds", 7 * 86400 + 1, "超时时间必须在0到604800之间"),
        ("misfire_grace_seconds", -1, "错过执行宽限时间必须在0到86400之间"),
    ],
)
def test_numeric_fields_have_their_ranges(db: Database, field: str, value: Any, message: str) -> None:
    assert refused(db, **{field: value}) == invalid(message)


@pytest.mark.parametrize("value", ["never", "", None, ["forbid"], {"forbid": 1}])
def test_the_concurrency_policy_is_one_of_three(db: Database, value: Any) -> None:
    assert refused(db, concurrency_policy=value) == invalid(
        f"无效的并发策略: {value}，支持: forbid, allow, replace"
    )


@pytest.mark.parametrize("value", ["catch_up", None, ["skip"]])
def test_the_misfire_policy_is_one_of_two(db: Database, value: Any) -> None:
    assert refused(db, misfire_policy=value) == invalid(f"无效的错过执行策略: {value}，支持: run_once, skip")


def test_defaults_of_a_new_task(db: Database) -> None:
    row = create(db)
    assert (row.concurrency_policy, row.misfire_policy, row.max_retries, row.retry_interval) == (
        "forbid",
        "run_once",
        3,
        60,
    )
    assert (row.enabled, row.paused, row.schedule_anchor, row.created_by) == (True, False, NOW, "admin")


def test_policies_are_stored_as_their_wire_strings(db: Database) -> None:
    row = create(db, concurrency_policy="replace", misfire_policy="skip")
    with db.session() as session:
        stored = session.get(TaskRow, row.id)
        assert stored is not None
        assert (stored.concurrency_policy, stored.misfire_policy) == ("replace", "skip")


# --- task types and their configs -------------------------------------------------------------------


@pytest.mark.parametrize("task_type", ["shell_task", "", None])
def test_the_task_type_is_one_of_four(db: Database, task_type: str | None) -> None:
    assert refused(db, task_type=task_type, config=COMMAND) == invalid(
        f"无效的任务类型: {task_type or ''}，支持: example_task, manual_task, common_task, workflow, data_sync_stock_list, data_sync_trading_calendar, data_sync_daily_data, data_sync_all_daily_data"
    )


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"cron_expression": "0 9 * * *"}, "手动任务不支持 Cron 表达式调度"),
        ({"interval_seconds": 60}, "手动任务不支持间隔调度"),
        ({"run_at": "2027-01-01T00:00:00Z"}, "手动任务不支持一次性定时调度"),
    ],
)
def test_a_manual_task_has_no_schedule(db: Database, schedule: dict[str, Any], message: str) -> None:
    assert refused(db, task_type="manual_task", **schedule) == invalid(message)


def test_command_or_task_action_is_required_for_common_and_manual_tasks(db: Database) -> None:
    assert refused(db, task_type="common_task", config={}) == invalid(
        "通用任务配置中必须包含 'command' 或 'task_action' 字段"
    )
    assert refused(db, task_type="manual_task", config={"command": ""}) == invalid(
        "手动任务配置中必须包含 'command' 或 'task_action' 字段"
    )
    assert (
        create(db, name="a", task_type="manual_task", config={"task_action": "sync"}).task_type
        == "manual_task"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"steps": 0}, "配置项 steps 必须是大于 0 的整数"),
        ({"steps": 2.5}, "配置项 steps 必须是大于 0 的整数"),
        ({"steps": "3"}, "配置项 steps 必须是大于 0 的整数"),
        ({"duration_seconds": -1}, "配置项 duration_seconds 必须是大于等于 0 的数字"),
        ({"duration_seconds": True}, "配置项 duration_seconds 必须是大于等于 0 的数字"),
        ({"success_rate": 1.5}, "配置项 success_rate 必须是介于 0 到 1 之间的数字"),
        ({"success_rate": -0.1}, "配置项 success_rate 必须是介于 0 到 1 之间的数字"),
    ],
)
def test_example_config_limits(db: Database, config: dict[str, Any], message: str) -> None:
    assert refused(db, task_type="example_task", config=config) == invalid(message)
    # The same limits hold for a common task that runs the example action.
    routed = {"task_action": "example_task", **config}
    assert refused(db, task_type="common_task", config=routed) == invalid(message)


def test_example_config_at_its_limits_is_accepted(db: Database) -> None:
    config = {"steps": 1, "duration_seconds": 0, "success_rate": 1}
    assert create(db, task_type="example_task", config=config).config == config


# --- workflows --------------------------------------------------------------------------------------


def workflow(db: Database, tasks_: list[dict[str, Any]], name: str = "wf", **fields: Any) -> TaskRow:
    return create(
        db, name=name, task_type="workflow", config={"workflow_type": "serial", "tasks": tasks_}, **fields
    )


def test_a_workflow_config_is_checked_with_the_plan_rules_behind_a_prefix(db: Database) -> None:
    assert refused(db, task_type="workflow", config={"tasks": [{"task_id": 1}]}) == (
        "编排任务配置无效: 编排任务配置中缺少 workflow_type，支持的模式：serial, parallel",
        Reason.WORKFLOW_INVALID,
    )
    a = create(db, name="a")
    assert refusal(workflow, db, [{"task_id": a.id, "dependencies": [a.id]}]) == (
        f"编排任务配置无效: 检测到循环依赖，任务 {a.id} 存在循环依赖关系",
        Reason.WORKFLOW_CYCLE,
    )


def test_a_workflow_names_only_existing_enabled_tasks(db: Database) -> None:
    a = create(db, name="a")
    off = create(db, name="off", enabled=False)
    assert refusal(workflow, db, [{"task_id": a.id}, {"task_id": 998}, {"task_id": 999}]) == (
        "编排任务配置无效: 以下任务不存在: {998, 999}",
        Reason.WORKFLOW_INVALID,
    )
    assert refusal(workflow, db, [{"task_id": a.id}, {"task_id": off.id}]) == (
        f"编排任务配置无效: 以下任务未启用: [{off.id}]",
        Reason.WORKFLOW_INVALID,
    )


def test_missing_tasks_are_reported_before_dependencies_outside_the_plan(db: Database) -> None:
    a = create(db, name="a")
    assert refusal(workflow, db, [{"task_id": a.id, "dependencies": [997]}, {"task_id": 998}])[0] == (
        "编排任务配置无效: 以下任务不存在: {998}"
    )
    assert refusal(workflow, db, [{"task_id": a.id, "dependencies": [997]}])[0] == (
        f"编排任务配置无效: 任务 {a.id} 的依赖任务 [997] 不在任务列表中"
    )


def test_a_workflow_may_not_contain_itself_directly_or_through_a_nested_workflow(db: Database) -> None:
    a = create(db, name="a")
    outer = workflow(db, [{"task_id": a.id}], name="outer")
    inner = workflow(db, [{"task_id": outer.id}], name="inner")
    # outer -> inner -> outer
    changed = {"workflow_type": "serial", "tasks": [{"task_id": inner.id}]}
    assert refusal(update, db, outer.id, config=changed) == (
        f"编排任务配置无效: 检测到循环依赖，任务 {inner.id} 存在循环依赖关系",
        Reason.WORKFLOW_CYCLE,
    )
    itself = {"workflow_type": "serial", "tasks": [{"task_id": outer.id}]}
    assert refusal(update, db, outer.id, config=itself) == (
        f"编排任务配置无效: 检测到循环依赖，任务 {outer.id} 存在循环依赖关系",
        Reason.WORKFLOW_CYCLE,
    )


def test_a_valid_workflow_is_stored(db: Database) -> None:
    a, b = create(db, name="a"), create(db, name="b")
    row = workflow(db, [{"task_id": a.id}, {"task_id": b.id, "dependencies": [a.id]}], interval_seconds=60)
    assert row.config["tasks"][1]["dependencies"] == [a.id]


# --- which fields a request may carry ---------------------------------------------------------------


def test_unknown_fields_are_refused_on_create_by_name(db: Database) -> None:
    assert refused(db, interval_second=5, colour="red") == invalid("不支持的字段: colour, interval_second")


def test_fields_that_are_not_editable_are_refused_on_update_by_name(db: Database) -> None:
    row = create(db)
    assert refusal(update, db, row.id, task_type="example_task", id=9, name="x") == invalid(
        "以下字段不能修改: id, task_type"
    )
    assert refusal(update, db, row.id, paused=True) == invalid("以下字段不能修改: paused")


def test_a_refused_update_changes_nothing(db: Database) -> None:
    row = create(db, interval_seconds=60)
    refusal(update, db, row.id, name="renamed", interval_seconds=-5)
    with db.session() as session:
        stored = tasks.get_task(session, row.id)
        assert (stored.name, stored.interval_seconds) == ("t", 60)


def test_a_task_type_filter_must_name_a_task_type(db: Database) -> None:
    with db.session() as session:
        message, reason = refusal(
            task_listing.list_tasks, session, task_listing.TaskQuery(task_type="cron_task")
        )
    assert (message, reason) == (
        "无效的任务类型: cron_task，支持: example_task, manual_task, common_task, workflow, data_sync_stock_list, data_sync_trading_calendar, data_sync_daily_data, data_sync_all_daily_data",
        Reason.FILTER_INVALID,
    )


# --- trading calendar -------------------------------------------------------------------------------


def test_a_task_names_a_known_calendar_and_its_next_run_is_a_session(db: Database) -> None:
    row = create(db, cron_expression="0 18 * * *", calendar="XSHG", calendar_shift=1)
    assert (row.calendar, row.calendar_shift, row.calendar_holidays) == ("XSHG", 1, "silent")
    # NOW is in 2026: the next fire is an XSHG session at 18:00 Shanghai time.
    next_run = task_listing.next_run_time(row, NOW)
    assert next_run is not None
    local = next_run.astimezone(ZoneInfo("Asia/Shanghai"))
    assert local.hour == 18 and builtin_calendar("XSHG").is_session(local.date())


def test_an_unknown_calendar_is_refused_with_its_reason(db: Database) -> None:
    message, reason = refused(db, cron_expression="0 18 * * *", calendar="NOPE")
    assert reason == Reason.CALENDAR_UNKNOWN and "NOPE" in message


def test_a_calendar_needs_a_cron_schedule(db: Database) -> None:
    assert refused(db, interval_seconds=60, calendar="XSHG") == invalid("交易日历只能用于 Cron 表达式调度")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("calendar_shift", 32, "交易日偏移必须在-31到31之间"),
        ("calendar_holidays", "loud", "无效的非交易日处理方式: loud，支持: silent, record"),
    ],
)
def test_calendar_options_have_their_ranges(db: Database, field: str, value: Any, message: str) -> None:
    assert refused(db, cron_expression="0 18 * * *", calendar="XSHG", **{field: value}) == invalid(message)

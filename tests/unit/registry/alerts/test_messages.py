"""Alert texts in Chinese and English carry the task, the run, its time in the task's zone, the
error and the link; a channel's own template uses the same fields."""

from __future__ import annotations

from services.registry.alerts.messages import render

PAYLOAD: dict[str, object] = {
    "event": "run_failed",
    "task_id": 7,
    "task_name": "nightly_report",
    "execution_id": 42,
    "status": "failed",
    "error_message": "exit code 3",
    "time": "2026-12-03T22:15:00+08:00",
    "timezone": "Asia/Shanghai",
    "duration_seconds": 1.5,
    "retry_count": 2,
    "url": "http://zq.example.com/?execution=42",
}


def test_the_chinese_message_names_task_run_time_error_and_link() -> None:
    message = render(PAYLOAD, "zh")
    assert message.title == "[ZQuant 告警] 任务执行失败: nightly_report"
    for part in (
        "nightly_report",
        "#42",
        "2026-12-03T22:15:00+08:00",
        "Asia/Shanghai",
        "exit code 3",
        "http://zq.example.com/?execution=42",
    ):
        assert part in message.text


def test_the_english_message_says_the_same_in_english() -> None:
    message = render(PAYLOAD, "en")
    assert message.title == "[ZQuant alert] Run failed: nightly_report"
    assert (
        "Error: exit code 3" in message.text
        and "Details: http://zq.example.com/?execution=42" in message.text
    )


def test_a_channel_template_is_filled_with_the_event_fields() -> None:
    message = render(PAYLOAD, "en", "{event_title} of {task_name} at {time}")
    assert message.text.endswith("Run failed of nightly_report at 2026-12-03T22:15:00+08:00")
    assert message.fields["execution_id"] == 42

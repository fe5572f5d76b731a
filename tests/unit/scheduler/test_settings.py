"""The scheduler's settings from the environment."""

from __future__ import annotations

import pytest

from services.scheduler.settings import SchedulerSettings


def test_the_scheduler_asks_for_real_time_unless_told_not_to() -> None:
    env = {"ZQ_SERVICE_TOKEN": "token"}
    assert SchedulerSettings.from_env(env).realtime is True
    assert SchedulerSettings.from_env({**env, "ZQ_SCHEDULER_REALTIME": "off"}).realtime is False
    with pytest.raises(ValueError, match="ZQ_SCHEDULER_REALTIME"):
        SchedulerSettings.from_env({**env, "ZQ_SCHEDULER_REALTIME": "sometimes"})

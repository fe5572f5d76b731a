"""example_task: the guide's demonstration job (steps over a duration, progress per step, chance of failure)."""

from __future__ import annotations

import asyncio
from typing import Any

from services.executor.jobs.context import JobContext, JobFailed, config_number, progress_percent

DEFAULT_MESSAGE = "示例任务执行完成"
FAILURE_MESSAGE = "示例任务执行失败（模拟失败场景）"
# Every progress snapshot carries the whole steps list, so the list must stay small.
MAX_STEPS = 1000


async def run_example(ctx: JobContext) -> dict[str, Any]:
    config = ctx.config
    duration = config_number(config, "duration_seconds", 3, lambda v: v >= 0, "大于等于 0 的数字")
    steps = int(config_number(config, "steps", 5, lambda v: v >= 1 and v.is_integer(), "大于 0 的整数"))
    if steps > MAX_STEPS:
        raise JobFailed(f"配置项 steps 不能超过 {MAX_STEPS}")
    success_rate = config_number(config, "success_rate", 1.0, lambda v: 0 <= v <= 1, "介于 0 到 1 之间的数字")
    message = config.get("message", DEFAULT_MESSAGE)
    if not isinstance(message, str):
        raise JobFailed("配置项 message 必须是字符串")

    loop = asyncio.get_running_loop()
    started = loop.time()
    ctx.progress(
        {
            "current_step": 0,
            "total_steps": steps,
            "progress_percent": 0,
            "status": "running",
            "message": "开始执行",
            "steps": [],
        }
    )
    done: list[dict[str, Any]] = []
    for step in range(1, steps + 1):
        await asyncio.sleep(duration / steps)
        done.append({"step": step, "status": "completed", "message": f"步骤 {step}/{steps} 处理完成"})
        ctx.progress(
            {
                "current_step": step,
                "total_steps": steps,
                "progress_percent": progress_percent(step, steps),
                "status": "running",
                "message": f"正在执行步骤 {step}/{steps}",
                "steps": done,
            }
        )
    elapsed = {"duration_seconds": round(loop.time() - started, 3)}
    # Drawn after the last step, as in the original: a failing run still takes the full duration.
    if ctx.rng.random() >= success_rate:
        raise JobFailed(FAILURE_MESSAGE, elapsed)
    return {"message": message, **elapsed}

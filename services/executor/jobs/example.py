"""example_task: the guide's demonstration job (steps over a duration, progress per step, chance of failure)."""

from __future__ import annotations

import asyncio
from typing import Any

from services.common.job_config import example_settings
from services.common.log_lines import LogStream
from services.common.vocabulary import ExecutionStatus
from services.executor.jobs.context import JobContext, JobFailed, progress_percent

DEFAULT_MESSAGE = "示例任务执行完成"
FAILURE_MESSAGE = "示例任务执行失败（模拟失败场景）"


async def run_example(ctx: JobContext) -> dict[str, Any]:
    settings = example_settings(ctx.config, DEFAULT_MESSAGE)
    duration, steps, success_rate = settings.duration_seconds, settings.steps, settings.success_rate

    loop = asyncio.get_running_loop()
    started = loop.time()
    ctx.progress(
        {
            "current_step": 0,
            "total_steps": steps,
            "progress_percent": 0,
            "status": ExecutionStatus.RUNNING,
            "message": "开始执行",
            "steps": [],
        }
    )
    done: list[dict[str, Any]] = []
    for step in range(1, steps + 1):
        await asyncio.sleep(duration / steps)
        done.append({"step": step, "status": "completed", "message": f"步骤 {step}/{steps} 处理完成"})
        ctx.log.write(LogStream.STDOUT, f"步骤 {step}/{steps} 处理完成")
        ctx.progress(
            {
                "current_step": step,
                "total_steps": steps,
                "progress_percent": progress_percent(step, steps),
                "status": ExecutionStatus.RUNNING,
                "message": f"正在执行步骤 {step}/{steps}",
                "steps": done,
            }
        )
    elapsed = {"duration_seconds": round(loop.time() - started, 3)}
    # Drawn after the last step, as in the original: a failing run still takes the full duration.
    if ctx.rng.random() >= success_rate:
        raise JobFailed(FAILURE_MESSAGE, elapsed)
    return {"message": settings.message, **elapsed}

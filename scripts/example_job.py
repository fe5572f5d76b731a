"""Example command job for the `示例任务-命令执行` task: prints progress lines the executor understands.

python3 scripts/example_job.py --steps 5 --delay 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5, help="number of steps (default 5)")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds per step (default 1.0)")
    parser.add_argument("--fail", action="store_true", help="exit with status 1 after the last step")
    args = parser.parse_args()
    if args.steps < 1 or args.delay < 0:
        print("--steps must be >= 1 and --delay >= 0", file=sys.stderr)
        return 2
    for step in range(1, args.steps + 1):
        time.sleep(args.delay)
        progress = {
            "current_step": step,
            "total_steps": args.steps,
            "progress_percent": step * 100 // args.steps,
            "message": f"正在执行步骤 {step}/{args.steps}",
        }
        print(f"::progress:: {json.dumps(progress, ensure_ascii=False)}", flush=True)
    if args.fail:
        print("示例定时任务按要求失败", file=sys.stderr)
        return 1
    print("示例定时任务执行完成", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Workflow orchestration overhead (issue 4): a 200-node parallel workflow of no-op nodes vs the same
200 runs triggered alone, interleaved A-B. Overhead per node = (workflow time - alone time) / 200.

The 200 triggers at once are far over the gateway's trigger rate limit (a flood, to it); this measures
orchestration, not the limit, so the stack's gateway gets limits that never bite."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import calibrate, print_calibration
from stack import Stack, StackConfig
from tests.integration.api import Api
from tests.waiting import wait_for

NODES = 200
PAIRS = 3
ADMIN_PASSWORD = "bench-admin-pw"
NOOP = {"duration_seconds": 0, "steps": 1}


def all_finished(api: Api, task_ids: list[int], since_id: int) -> bool:
    runs = api.ok("GET", "/executions", params={"status": "success,failed", "limit": 1000})["executions"]
    return len({r["task_id"] for r in runs if r["id"] > since_id and r["task_id"] in task_ids}) == len(
        task_ids
    )


def newest_execution_id(api: Api) -> int:
    runs = api.ok("GET", "/executions", params={"limit": 1})["executions"]
    return int(runs[0]["id"]) if runs else 0


def run_alone(api: Api, task_ids: list[int]) -> float:
    since = newest_execution_id(api)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda task_id: api.ok("POST", f"/tasks/{task_id}/trigger"), task_ids))
    wait_for(lambda: all_finished(api, task_ids, since), 120, "200 runs", interval=0.05)
    return time.monotonic() - started


def run_workflow(api: Api, workflow_id: int) -> float:
    started = time.monotonic()
    execution_id = api.ok("POST", f"/tasks/{workflow_id}/trigger")["execution_id"]
    execution = api.wait_execution(workflow_id, execution_id, timeout=300)
    assert execution["status"] == "success", execution
    return time.monotonic() - started


def main() -> None:
    # Read by GatewayConfig's defaults when the stack renders its Envoy config (gateway/render.py).
    for name in ("ZQ_TRIGGER_RATE_LIMIT_PER_ADDRESS", "ZQ_TRIGGER_RATE_LIMIT_PER_USER"):
        os.environ[name] = "1000000/1"
    print("== workflow orchestration overhead (SQLite) ==")
    print_calibration(calibrate())
    with (
        tempfile.TemporaryDirectory() as tmp,
        Stack(
            StackConfig.build(
                Path(tmp),
                free_ports=True,
                executors=2,
                static=False,
                extra_env={"ZQ_ADMIN_PASSWORD": ADMIN_PASSWORD, "ZQ_EXECUTOR_MAX_CONCURRENCY": "200"},
            )
        ) as stack,
    ):
        api = Api.login(stack.http_url, "admin", ADMIN_PASSWORD)
        ids = [api.create_task(name=f"node-{i}", config=NOOP, max_retries=0)["id"] for i in range(NODES)]
        config = {
            "workflow_type": "parallel",
            "on_failure": "continue",
            "max_parallelism": NODES,
            "tasks": [{"task_id": task_id, "name": f"node-{task_id}", "dependencies": []} for task_id in ids],
        }
        workflow_id = api.create_task(name="wf-200", task_type="workflow", config=config, max_retries=0)["id"]
        pairs = []
        for _ in range(PAIRS):
            alone = run_alone(api, ids)
            flow = run_workflow(api, workflow_id)
            pairs.append((alone, flow))
            print(
                f"  200 runs alone {alone:6.2f} s   as a workflow {flow:6.2f} s   "
                f"overhead/node {(flow - alone) / NODES * 1000:6.2f} ms"
            )
        overhead = statistics.median((flow - alone) / NODES for alone, flow in pairs)
        print(f"  median orchestration overhead per node: {overhead * 1000:.2f} ms")


if __name__ == "__main__":
    main()

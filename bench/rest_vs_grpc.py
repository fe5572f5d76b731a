"""REST through Envoy vs direct gRPC to the registry: task list (20 tasks) and get.

Goal (issue 2): REST p50 <= 1.5x gRPC p50 in the same run, and REST list >= 1,500 requests/s.
Latency: one client, keep-alive, interleaved A-B pairs. Throughput: wrk (16 connections) when
installed, else a threaded keep-alive Python client (slower: it shares the 2 cores).
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import grpc

from bench.common import calibrate, cpu_of, median_ratio, percentile, print_calibration
from stack import Stack, StackConfig
from zquant.scheduler.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    task_service_pb2,
    task_service_pb2_grpc,
)

PAIRS = 5
SAMPLES = 1500
THROUGHPUT_SECONDS = 5


def rest_latencies(port: int, path: str, token: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": f"Bearer {token}"}
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        samples.append(time.perf_counter() - t0)
        assert response.status == 200, response.status
    conn.close()
    return samples


def grpc_latencies(
    call: object, request: object, metadata: tuple[tuple[str, str], ...], n: int
) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        call(request, metadata=metadata)  # type: ignore[operator]
        samples.append(time.perf_counter() - t0)
    return samples


def rest_throughput(port: int, path: str, token: str) -> int:
    """Requests completed in THROUGHPUT_SECONDS with 16 connections."""
    if shutil.which("wrk"):
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                "-c16",
                f"-d{THROUGHPUT_SECONDS}s",
                "-H",
                f"Authorization: Bearer {token}",
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "Non-2xx" not in out, out
        return int(out.split(" requests in ")[0].split()[-1])
    count = [0]
    stop = time.monotonic() + THROUGHPUT_SECONDS

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        while time.monotonic() < stop:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            conn.getresponse().read()
            count[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count[0]


def main() -> dict[str, float]:
    print("== REST via Envoy vs direct gRPC (registry, SQLite) ==")
    print_calibration(calibrate())
    with (
        tempfile.TemporaryDirectory() as tmp,
        Stack(
            StackConfig.build(
                Path(tmp),
                free_ports=True,
                scheduler=False,
                executors=0,
                static=False,
                extra_env={"ZQ_ADMIN_PASSWORD": "bench-admin-pw"},
            )
        ) as stack,
    ):
        channel = grpc.insecure_channel(stack.registry_addr)
        token = (
            auth_service_pb2_grpc.AuthServiceStub(channel)
            .Login(auth_service_pb2.LoginRequest(username="admin", password="bench-admin-pw"))
            .access_token
        )
        user_md = (("authorization", f"Bearer {token}"),)
        tasks = task_service_pb2_grpc.TaskServiceStub(channel)
        for i in range(20):
            request = task_service_pb2.CreateTaskRequest(
                name=f"bench-{i}", task_type="example_task", interval_seconds=3600
            )
            request.config.update({"duration_seconds": 1, "steps": 2})
            tasks.CreateTask(request, metadata=user_md)
        port = int(stack.http_url.rsplit(":", 1)[1])
        first = tasks.ListTasks(task_service_pb2.ListTasksRequest(limit=20), metadata=user_md).tasks[0].id
        cases = {
            "list": (
                "/api/v1/scheduler/tasks?limit=20",
                tasks.ListTasks,
                task_service_pb2.ListTasksRequest(limit=20),
            ),
            "get": (
                f"/api/v1/scheduler/tasks/{first}",
                tasks.GetTask,
                task_service_pb2.GetTaskRequest(task_id=first),
            ),
        }
        results: dict[str, float] = {}
        for name, (path, call, message) in cases.items():
            rest_latencies(port, path, token, 200)
            grpc_latencies(call, message, user_md, 200)
            pairs = []
            for _ in range(PAIRS):
                g = percentile(grpc_latencies(call, message, user_md, SAMPLES), 0.5)
                r = percentile(rest_latencies(port, path, token, SAMPLES), 0.5)
                pairs.append((g, r))
                print(
                    f"  {name:4s} p50  gRPC {g * 1000:6.3f} ms   REST {r * 1000:6.3f} ms   ratio {r / g:4.2f}"
                )
            results[f"{name}_p50_ratio"] = median_ratio(pairs)
            print(
                f"  {name:4s} median REST/gRPC p50 ratio: {results[f'{name}_p50_ratio']:.2f}  (goal <= 1.5)"
            )
        pids = [pid for pid in (stack.pid("registry"), stack.pid("envoy")) if pid is not None]
        path = cases["list"][0]
        runs = []
        for _ in range(PAIRS):
            ops, cpu = cpu_of(pids, lambda: rest_throughput(port, path, token))
            runs.append(ops / THROUGHPUT_SECONDS)
            print(
                f"  list REST throughput {ops / THROUGHPUT_SECONDS:7.0f} req/s   CPU/request (registry+envoy) {cpu / ops * 1000:.3f} ms"
            )
        results["list_rest_rps"] = sorted(runs)[len(runs) // 2]
        print(f"  list REST throughput median: {results['list_rest_rps']:.0f} req/s  (goal >= 1500)")
        channel.close()
    return results


if __name__ == "__main__":
    main()

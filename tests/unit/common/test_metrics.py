"""Each service's /metrics: served to a scrape, and asleep in between (an idle stack pays nothing
for it); the registry's /ready, which Envoy checks."""

from __future__ import annotations

import socket
import threading
import time

import httpx

from services.common.metrics import serve_metrics


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def context_switches(thread: threading.Thread) -> int:
    """How often the kernel has run `thread` (its time slices so far)."""
    with open(f"/proc/self/task/{thread.native_id}/schedstat") as stats:
        return int(stats.read().split()[2])


def test_metrics_are_served_and_the_server_sleeps_between_scrapes() -> None:
    port = free_port()
    before_start = set(threading.enumerate())
    serve_metrics("127.0.0.1", port)
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200 and "zq_executor_slots" in response.text
    [server] = [
        thread for thread in threading.enumerate() if thread.name == "metrics" and thread not in before_start
    ]
    time.sleep(0.2)  # the scrape's handling is over
    before = context_switches(server)
    time.sleep(1.5)  # prometheus_client's own server would have woken three times
    assert context_switches(server) == before
    assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200


def test_port_zero_serves_nothing() -> None:
    threads = set(threading.enumerate())
    serve_metrics("127.0.0.1", 0)
    assert set(threading.enumerate()) == threads


def test_ready_answers_200_while_ready_and_503_otherwise() -> None:
    port = free_port()
    state = {"ready": True}
    serve_metrics("127.0.0.1", port, ready=lambda: state["ready"])
    url = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{url}/ready", timeout=5).status_code == 200
    state["ready"] = False
    assert httpx.get(f"{url}/ready", timeout=5).status_code == 503
    assert httpx.get(f"{url}/metrics", timeout=5).status_code == 200  # metrics whatever the state

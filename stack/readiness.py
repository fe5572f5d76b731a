"""Is a process ready? One check per kind, each returning None when ready, else a short reason.

- a gRPC service: its port accepts connections and the standard health service says its
  `readiness` is SERVING;
- the static UI server: `/admin/scheduler/` answers 200;
- Envoy: admin `/ready` says LIVE, and the registries it must route to are healthy in its
  `registry` cluster (parsed by :func:`unhealthy_registries` from admin `/clusters`).

After a registry restarts, "healthy" in `/clusters` may still be Envoy's verdict on the dead process:
a health check that started before the new process answered (one that will time out, say) can still
fail afterwards and flip the host to unhealthy. So a restarted registry counts as routed only once no
health check that began before it said SERVING is still in flight (:func:`health_checks_in_flight`,
from Envoy's counters: every check started has ended), and Envoy's worker threads, not only its admin
view, route to it (:func:`registries_answer_through_gateway`). Waiting for a check that starts after
it came back would cost up to a whole health-check interval.
"""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.server import READINESS_SERVICE
from stack.ports import LOCALHOST


def grpc_health(port: int, token: str, service: str = READINESS_SERVICE) -> str | None:
    """None when the service on `port` says `service` (default: readiness) is SERVING."""
    try:
        with socket.create_connection((LOCALHOST, port), timeout=0.5):
            pass
    except OSError as exc:
        return f"port {port}: {exc}"
    # A fresh channel per attempt: a channel that failed once waits out its reconnect backoff.
    with grpc.insecure_channel(f"{LOCALHOST}:{port}", options=[("grpc.enable_http_proxy", 0)]) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(
                # By default what Envoy's health checks and the kubelet's readiness probe ask
                # (services/common/server.py).
                health_pb2.HealthCheckRequest(service=service),
                timeout=1.0,
                metadata=[("authorization", f"Bearer {token}")] if token else None,
            )
        except grpc.RpcError as exc:
            return f"health check: {exc.code().name}: {exc.details()}"
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        return f"health status {health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)}"
    return None


_no_proxy_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str) -> tuple[int, str]:
    try:
        with _no_proxy_opener.open(url, timeout=1.0) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def http_ok(url: str) -> str | None:
    try:
        status, _ = http_get(url)
    except OSError as exc:
        return f"{url}: {exc}"
    return None if status == 200 else f"{url}: HTTP {status}"


def envoy_live(admin_url: str) -> str | None:
    try:
        status, body = http_get(f"{admin_url}/ready")
    except OSError as exc:
        return f"admin /ready: {exc}"
    return None if status == 200 and body.strip() == "LIVE" else f"admin /ready: {status} {body.strip()}"


def registries_routed(admin_url: str, required: Collection[str]) -> str | None:
    """Envoy's registry cluster has every `required` host, each healthy."""
    try:
        _, body = http_get(f"{admin_url}/clusters")
    except OSError as exc:
        return f"admin /clusters: {exc}"
    return unhealthy_registries(body, required)


# Envoy runs two worker threads (stack/config.py); each new connection lands on one of them.
GATEWAY_PROBES = 6


def registries_answer_through_gateway(http_port: int) -> str | None:
    """The registries' readiness asked through Envoy, each time on a new connection: Envoy's admin
    `/clusters` is its main thread's view, and a worker thread's load balancer learns a host is
    healthy a moment later (CI saw "no healthy upstream" right after `/clusters` said healthy)."""
    for _ in range(GATEWAY_PROBES):
        reason = grpc_health(http_port, "")  # the health service needs no token at the gateway
        if reason is not None:
            return f"through the gateway: {reason}"
    return None


HEALTH_CHECK_STATS = "cluster.registry.health_check."


def health_checks_in_flight(admin_url: str) -> int | None:
    """How many of Envoy's health checks on the `registry` cluster have started and not ended; None
    if unknown."""
    try:
        pattern = urllib.parse.quote("^" + re.escape(HEALTH_CHECK_STATS) + "(attempt|success|failure)$")
        status, body = http_get(f"{admin_url}/stats?filter={pattern}")
    except OSError:
        return None
    return checks_in_flight(body) if status == 200 else None


def checks_in_flight(stats: str) -> int | None:
    """From admin `/stats` text: health checks started and not yet ended (each ends as a success or a
    failure, timeouts and refused connections included); None if a counter is missing."""
    attempts, successes, failures = (
        parse_counter(stats, HEALTH_CHECK_STATS + name) for name in ("attempt", "success", "failure")
    )
    if attempts is None or successes is None or failures is None:
        return None
    return attempts - successes - failures


def parse_counter(stats: str, name: str) -> int | None:
    """The value of counter `name` in admin `/stats` text output ("name: 12" lines)."""
    for line in stats.splitlines():
        key, _, value = line.partition(": ")
        if key.strip() == name and value.strip().isdigit():
            return int(value)
    return None


def unhealthy_registries(clusters: str, required: Collection[str]) -> str | None:
    """From admin `/clusters` output: None when each `required` registry host is healthy."""
    if not required:
        return None
    # Lines look like "registry::127.0.0.1:50051::health_flags::healthy".
    marker = "::health_flags::"
    flags: dict[str, str] = {}
    for line in clusters.splitlines():
        if line.startswith("registry::") and marker in line:
            host, _, flag = line.removeprefix("registry::").partition(marker)
            flags[host] = flag
    if not flags:
        return "registry cluster has no hosts yet"
    missing = [a for a in required if a not in flags]
    if missing:
        return f"registry cluster lacks hosts {', '.join(missing)}"
    unhealthy = [f"{a} {flags[a]}" for a in required if flags[a] != "healthy"]
    if unhealthy:
        return f"registry cluster hosts not healthy: {', '.join(unhealthy)}"
    return None

"""Render the Envoy config (gateway/envoy.yaml.tmpl) for one gateway instance.

Every port and path of the gateway comes from a :class:`GatewayConfig`; the template only has
``${PLACEHOLDERS}``. Used by the launcher (``stack.envoy``) and from the command line::

    python -m gateway.render --out var/envoy.yaml
    .venv/bin/envoy --mode validate -c var/envoy.yaml

Rate limits (also read by the GatewayConfig defaults, so ``services.stack`` honours them):
ZQ_LOGIN_RATE_LIMIT (60/1), ZQ_REFRESH_RATE_LIMIT (60/1), ZQ_TRIGGER_RATE_LIMIT_PER_ADDRESS (120/0.1),
ZQ_TRIGGER_RATE_LIMIT_PER_USER (60/0.2), each "BURST/SECONDS": BURST requests at once, then one
more every SECONDS, per client address (per user for the second trigger limit).

CLI environment: ZQ_HTTP_PORT (8000), ZQ_ENVOY_ADMIN_PORT (9901), ZQ_ENVOY_STATS_PORT (9902: Envoy's
/stats/prometheus alone, for Prometheus), ZQ_REGISTRY_ADDRS
(127.0.0.1:50051, comma-separated "host:port" list), ZQ_REGISTRY_HEALTH_PORTS (comma-separated, one
per address: each registry's metrics port, whose /ready Envoy checks; unset: gRPC health checks on
the registry's own port), ZQ_STATIC_PORT (8001), ZQ_DATA_DIR (./var; the
JWKS is read from ${ZQ_DATA_DIR}/jwks.json), ZQ_ENVOY_DESCRIPTOR (gateway/build/descriptor.pb),
ZQ_ENVOY_ACCESS_LOG (stdout when unset).

Tracing: with OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT set (the variables
the services read, services/common/tracing.py), Envoy's OpenTelemetry tracer starts a span for every
request (or continues the client's `traceparent`), passes `traceparent` on to the registry and
exports its spans over OTLP/gRPC to that endpoint (cluster `otlp_collector`; https:// uses TLS),
as service `zquant-gateway` (OTEL_SERVICE_NAME does not apply: it names one service). Unset: no
tracer, no collector cluster.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from services.common.tracing import otlp_endpoint

GATEWAY_DIR = Path(__file__).resolve().parent
ROOT = GATEWAY_DIR.parent
TEMPLATE_PATH = GATEWAY_DIR / "envoy.yaml.tmpl"
DEFAULT_DESCRIPTOR_PATH = GATEWAY_DIR / "build" / "descriptor.pb"
DEFAULT_LUA_PATH = GATEWAY_DIR / "error_shape.lua"
MIB = 1024 * 1024


def parse_address(address: str) -> tuple[str, int]:
    """Splits "host:port" (or "[v6]:port") into host and port; raises ValueError when malformed."""
    host, sep, port_text = address.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"not a host:port address: {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    _check_port(port, f"port of {address!r}")
    return host, port


def _check_port(port: int, what: str) -> None:
    if not 0 < port < 65536:
        raise ValueError(f"{what} must be 1-65535, got {port}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `burst` requests at once, then one more every `every_seconds`."""

    burst: int
    every_seconds: float

    def __post_init__(self) -> None:
        if self.burst < 1 or self.every_seconds < 0.05:  # Envoy's smallest fill interval: 50 ms
            raise ValueError(f"a rate limit needs burst >= 1 and every_seconds >= 0.05, got {self}")

    @property
    def retry_after(self) -> int:
        """Seconds until the next request is let through, for Retry-After (whole seconds, >= 1)."""
        return max(1, math.ceil(self.every_seconds))

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """ "BURST/SECONDS", e.g. "60/1": 60 at once, then one more every second."""
        burst, sep, every = text.partition("/")
        try:
            return cls(int(burst), float(every))
        except ValueError as exc:
            raise ValueError(f"a rate limit is BURST/SECONDS, e.g. 60/1; got {text!r}") from exc

    @classmethod
    def from_env(cls, name: str, default: str) -> RateLimit:
        return cls.parse(os.environ.get(name, "").strip() or default)

    def bucket(self) -> dict[str, object]:
        return {"max_tokens": self.burst, "tokens_per_fill": 1, "fill_interval": f"{self.every_seconds:g}s"}


_ALWAYS = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}


def local_rate_limit(
    name: str, per_address: RateLimit, per_user: RateLimit | None, tracked_clients: int
) -> dict[str, object]:
    """The route's typed_per_filter_config for envoy.filters.http.local_ratelimit.

    One bucket per client address (and per user, the `x-user` header jwt_authn sets from the
    token) that a request takes a token from; a request is refused when any of its buckets is
    empty. At most `tracked_clients` buckets per kind are kept (least recently used go first).
    """
    limits: list[tuple[str, dict[str, object], RateLimit]] = [
        ("remote_address", {"remote_address": {}}, per_address)
    ]
    if per_user is not None:
        action: dict[str, object] = {
            "request_headers": {"header_name": "x-user", "descriptor_key": "user", "skip_if_absent": True}
        }
        limits.append(("user", action, per_user))
    config: dict[str, object] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": f"rate_limit_{name}",
        # The route-wide bucket: used only by requests no descriptor matches (none here); required.
        "token_bucket": {"max_tokens": 1_000_000, "tokens_per_fill": 1_000_000, "fill_interval": "1s"},
        "always_consume_default_token_bucket": False,
        "filter_enabled": _ALWAYS,
        "filter_enforced": _ALWAYS,
        "max_dynamic_descriptors": tracked_clients,
        "rate_limited_as_resource_exhausted": True,
        "response_headers_to_add": [
            {
                "header": {
                    "key": "retry-after",
                    "value": str(max(limit.retry_after for *_, limit in limits)),
                },
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
        "rate_limits": [{"actions": [action]} for _, action, _ in limits],
        # An entry without a value is a wildcard: one bucket per distinct value.
        "descriptors": [
            {"entries": [{"key": key}], "token_bucket": limit.bucket()} for key, _, limit in limits
        ],
    }
    return {"envoy.filters.http.local_ratelimit": config}


@dataclass(frozen=True)
class GatewayConfig:
    """Everything that varies between gateway instances."""

    http_port: int = 8000
    admin_port: int = 9901
    # The envoy_stats listener: Envoy's /stats/prometheus, and nothing else of the admin interface.
    stats_port: int = 9902
    # "host:port" of every registry replica; IP literals give a STATIC cluster, names STRICT_DNS.
    registry_addresses: Sequence[str] = ("127.0.0.1:50051",)
    # Each registry's metrics port, in the order of registry_addresses: Envoy checks its HTTP
    # /ready there (services/common/server.py answers_ready), which does not wake gRPC's threads.
    # Empty: Envoy asks the gRPC health service `readiness` on the registry's own port.
    registry_health_ports: Sequence[int] = ()
    static_port: int = 8001
    descriptor_path: Path = DEFAULT_DESCRIPTOR_PATH
    jwks_path: Path = Path("var/jwks.json")
    lua_path: Path = DEFAULT_LUA_PATH
    # None: JSON access log to stdout.
    access_log_path: Path | None = None
    max_request_bytes: int = MIB
    max_response_bytes: int = 16 * MIB
    # Downstream connections Envoy accepts at once (each open EventSource holds one).
    max_connections: int = 10_000
    # Local rate limits, "BURST/SECONDS" in the environment variable named. A person never meets
    # them (60 logins in a row, then one a second; 60 triggers by one user, then five a second); a
    # script flooding the registry does.
    login_limit: RateLimit = field(default_factory=lambda: RateLimit.from_env("ZQ_LOGIN_RATE_LIMIT", "60/1"))
    refresh_limit: RateLimit = field(
        default_factory=lambda: RateLimit.from_env("ZQ_REFRESH_RATE_LIMIT", "60/1")
    )
    trigger_limit_per_address: RateLimit = field(
        default_factory=lambda: RateLimit.from_env("ZQ_TRIGGER_RATE_LIMIT_PER_ADDRESS", "120/0.1")
    )
    trigger_limit_per_user: RateLimit = field(
        default_factory=lambda: RateLimit.from_env("ZQ_TRIGGER_RATE_LIMIT_PER_USER", "60/0.2")
    )
    # Buckets kept per limit and kind (client addresses, users).
    rate_limit_tracked_clients: int = 10_000
    # Proxies in front of Envoy whose x-forwarded-for entries are trusted (0: the TCP peer is the
    # client). Behind one load balancer that appends the client's address: 1.
    xff_trusted_hops: int = 0
    # OTLP/gRPC collector for Envoy's spans ("http://host:4317"); None: no tracing.
    otlp_endpoint: str | None = None
    template_path: Path = field(default=TEMPLATE_PATH, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.registry_addresses, str):
            raise TypeError("registry_addresses must be a list of 'host:port' strings, not one string")
        addresses = tuple(a.strip() for a in self.registry_addresses)
        if not addresses:
            raise ValueError("registry_addresses must name at least one registry")
        for address in addresses:
            parse_address(address)
        object.__setattr__(self, "registry_addresses", addresses)
        health_ports = tuple(self.registry_health_ports)
        if health_ports and len(health_ports) != len(addresses):
            raise ValueError("registry_health_ports must name one port per registry address, or none")
        for port in health_ports:
            _check_port(port, "registry health port")
        object.__setattr__(self, "registry_health_ports", health_ports)
        for name in ("http_port", "admin_port", "stats_port", "static_port"):
            _check_port(getattr(self, name), name)
        ports = [self.http_port, self.admin_port, self.stats_port, self.static_port]
        if len(set(ports)) != len(ports):
            raise ValueError(f"http, admin, stats and static ports must differ, got {ports}")
        if min(self.max_request_bytes, self.max_response_bytes, self.max_connections) <= 0:
            raise ValueError("body size and connection limits must be positive")
        if self.rate_limit_tracked_clients < 1 or self.xff_trusted_hops < 0:
            raise ValueError("rate_limit_tracked_clients must be >= 1 and xff_trusted_hops >= 0")
        for name in ("descriptor_path", "jwks_path", "lua_path", "template_path"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.access_log_path is not None:
            object.__setattr__(self, "access_log_path", Path(self.access_log_path))
        if self.otlp_endpoint is not None:
            collector_address(self.otlp_endpoint)  # raises ValueError when malformed

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewayConfig:
        """Builds the config from ZQ_* environment variables (see the module docstring)."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("ZQ_DATA_DIR", "./var"))
        addresses = [a for a in env.get("ZQ_REGISTRY_ADDRS", "127.0.0.1:50051").split(",") if a.strip()]
        health_ports = [int(p) for p in env.get("ZQ_REGISTRY_HEALTH_PORTS", "").split(",") if p.strip()]
        access_log = env.get("ZQ_ENVOY_ACCESS_LOG", "")
        return cls(
            http_port=int(env.get("ZQ_HTTP_PORT", "8000")),
            admin_port=int(env.get("ZQ_ENVOY_ADMIN_PORT", "9901")),
            stats_port=int(env.get("ZQ_ENVOY_STATS_PORT", "9902")),
            registry_addresses=addresses,
            registry_health_ports=health_ports,
            static_port=int(env.get("ZQ_STATIC_PORT", "8001")),
            descriptor_path=Path(env.get("ZQ_ENVOY_DESCRIPTOR", str(DEFAULT_DESCRIPTOR_PATH))),
            jwks_path=data_dir / "jwks.json",
            access_log_path=Path(access_log) if access_log and access_log != "stdout" else None,
            otlp_endpoint=otlp_endpoint(env),
        )


def _quoted_path(path: Path) -> str:
    # JSON strings are valid YAML flow scalars: safe for any character in a path.
    return json.dumps(str(path.resolve()))


def _endpoints(addresses: Sequence[str], health_ports: Sequence[int]) -> str:
    endpoints = []
    for index, address in enumerate(addresses):
        host, port = parse_address(address)
        endpoint: dict[str, Any] = {"address": {"socket_address": {"address": host, "port_value": port}}}
        if health_ports:
            endpoint["health_check_config"] = {"port_value": health_ports[index]}
        endpoints.append({"endpoint": endpoint})
    return json.dumps(endpoints)


def _health_check(health_ports: Sequence[int]) -> str:
    """The registry cluster's health check: HTTP /ready on the health ports, or gRPC readiness."""
    if health_ports:
        return 'http_health_check: { path: "/ready" }'
    return "grpc_health_check: { service_name: readiness }"


def collector_address(endpoint: str) -> tuple[str, int, bool]:
    """Host, port and whether TLS is used, of an OTLP/gRPC endpoint URL (port 4317 by default)."""
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an OTLP endpoint is http(s)://host[:port], got {endpoint!r}")
    port = parts.port or 4317
    _check_port(port, f"port of {endpoint!r}")
    return parts.hostname, port, parts.scheme == "https"


COLLECTOR_CLUSTER = "otlp_collector"


def _tracing(endpoint: str | None) -> tuple[str, str]:
    """The HCM's `tracing` field and the collector's cluster (list item), or two comments."""
    if endpoint is None:
        return "# tracing: off", "# no OTLP collector"
    host, port, tls = collector_address(endpoint)
    tracing = {
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": {"envoy_grpc": {"cluster_name": COLLECTOR_CLUSTER}, "timeout": "1s"},
                "service_name": "zquant-gateway",
            },
        },
        "spawn_upstream_span": False,
    }
    cluster: dict[str, object] = {
        "name": COLLECTOR_CLUSTER,
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": COLLECTOR_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
                    ]
                }
            ],
        },
    }
    if tls:
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": host,
            },
        }
    return f"tracing: {json.dumps(tracing)}", f"- {json.dumps(cluster)}"


def render_text(config: GatewayConfig) -> str:
    """Returns the rendered Envoy YAML for `config`."""
    if config.access_log_path is None:
        log_name = "envoy.access_loggers.stdout"
        log_type = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
        log_path_field = "# access log: stdout"
    else:
        log_name = "envoy.access_loggers.file"
        log_type = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
        log_path_field = f"path: {_quoted_path(config.access_log_path)}"
    all_ips = all(_is_ip(parse_address(a)[0]) for a in config.registry_addresses)
    tracing, collector_cluster = _tracing(config.otlp_endpoint)
    values = {
        "HTTP_PORT": str(config.http_port),
        "ADMIN_PORT": str(config.admin_port),
        "STATS_PORT": str(config.stats_port),
        "STATIC_PORT": str(config.static_port),
        "REGISTRY_CLUSTER_TYPE": "STATIC" if all_ips else "STRICT_DNS",
        "REGISTRY_ENDPOINTS": _endpoints(config.registry_addresses, config.registry_health_ports),
        "REGISTRY_HEALTH_CHECK": _health_check(config.registry_health_ports),
        "DESCRIPTOR_PATH": _quoted_path(config.descriptor_path),
        "JWKS_PATH": _quoted_path(config.jwks_path),
        "LUA_PATH": _quoted_path(config.lua_path),
        "ACCESS_LOG_NAME": log_name,
        "ACCESS_LOG_TYPE": log_type,
        "ACCESS_LOG_PATH_FIELD": log_path_field,
        "MAX_REQUEST_BYTES": str(config.max_request_bytes),
        "MAX_RESPONSE_BYTES": str(config.max_response_bytes),
        "MAX_CONNECTIONS": str(config.max_connections),
        "XFF_TRUSTED_HOPS": str(config.xff_trusted_hops),
        "TRACING": tracing,
        "OTLP_COLLECTOR_CLUSTER": collector_cluster,
        "LOGIN_RATE_LIMIT": json.dumps(
            local_rate_limit("login", config.login_limit, None, config.rate_limit_tracked_clients)
        ),
        "REFRESH_RATE_LIMIT": json.dumps(
            local_rate_limit("refresh", config.refresh_limit, None, config.rate_limit_tracked_clients)
        ),
        "TRIGGER_RATE_LIMIT": json.dumps(
            local_rate_limit(
                "trigger",
                config.trigger_limit_per_address,
                config.trigger_limit_per_user,
                config.rate_limit_tracked_clients,
            )
        ),
    }
    template = string.Template(config.template_path.read_text(encoding="utf-8"))
    # substitute() (not safe_substitute) raises KeyError on any placeholder the renderer does not fill.
    return template.substitute(values)


def render(config: GatewayConfig, out_path: Path | str) -> Path:
    """Writes the rendered config to `out_path` (atomically) and returns the path."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(render_text(config), encoding="utf-8")
    tmp.replace(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.render",
        description="Render gateway/envoy.yaml.tmpl from ZQ_* environment variables.",
    )
    parser.add_argument("--out", required=True, type=Path, help="where to write the Envoy YAML")
    args = parser.parse_args(argv)
    try:
        config = GatewayConfig.from_env()
    except ValueError as exc:
        parser.error(str(exc))
    path = render(config, args.out)
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

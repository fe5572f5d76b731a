"""Render the Envoy config (gateway/envoy.yaml.tmpl) for one gateway instance.

Every port and path of the gateway comes from a :class:`GatewayConfig`; the template only has
``${PLACEHOLDERS}``. Used by ``services.stack`` and from the command line::

    python -m gateway.render --out var/envoy.yaml
    .venv/bin/envoy --mode validate -c var/envoy.yaml

CLI environment: ZQ_HTTP_PORT (8000), ZQ_ENVOY_ADMIN_PORT (9901), ZQ_REGISTRY_ADDRS
(127.0.0.1:50051, comma-separated "host:port" list), ZQ_STATIC_PORT (8001), ZQ_DATA_DIR (./var; the
JWKS is read from ${ZQ_DATA_DIR}/jwks.json), ZQ_ENVOY_DESCRIPTOR (gateway/build/descriptor.pb),
ZQ_ENVOY_ACCESS_LOG (stdout when unset).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
class GatewayConfig:
    """Everything that varies between gateway instances."""

    http_port: int = 8000
    admin_port: int = 9901
    # "host:port" of every registry replica; IP literals give a STATIC cluster, names STRICT_DNS.
    registry_addresses: Sequence[str] = ("127.0.0.1:50051",)
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
        for name in ("http_port", "admin_port", "static_port"):
            _check_port(getattr(self, name), name)
        ports = [self.http_port, self.admin_port, self.static_port]
        if len(set(ports)) != len(ports):
            raise ValueError(f"http, admin and static ports must differ, got {ports}")
        if min(self.max_request_bytes, self.max_response_bytes, self.max_connections) <= 0:
            raise ValueError("body size and connection limits must be positive")
        for name in ("descriptor_path", "jwks_path", "lua_path", "template_path"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.access_log_path is not None:
            object.__setattr__(self, "access_log_path", Path(self.access_log_path))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewayConfig:
        """Builds the config from ZQ_* environment variables (see the module docstring)."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("ZQ_DATA_DIR", "./var"))
        addresses = [a for a in env.get("ZQ_REGISTRY_ADDRS", "127.0.0.1:50051").split(",") if a.strip()]
        access_log = env.get("ZQ_ENVOY_ACCESS_LOG", "")
        return cls(
            http_port=int(env.get("ZQ_HTTP_PORT", "8000")),
            admin_port=int(env.get("ZQ_ENVOY_ADMIN_PORT", "9901")),
            registry_addresses=addresses,
            static_port=int(env.get("ZQ_STATIC_PORT", "8001")),
            descriptor_path=Path(env.get("ZQ_ENVOY_DESCRIPTOR", str(DEFAULT_DESCRIPTOR_PATH))),
            jwks_path=data_dir / "jwks.json",
            access_log_path=Path(access_log) if access_log and access_log != "stdout" else None,
        )


def _quoted_path(path: Path) -> str:
    # JSON strings are valid YAML flow scalars: safe for any character in a path.
    return json.dumps(str(path.resolve()))


def _endpoints(addresses: Sequence[str]) -> str:
    endpoints = []
    for address in addresses:
        host, port = parse_address(address)
        endpoints.append({"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}})
    return json.dumps(endpoints)


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
    values = {
        "HTTP_PORT": str(config.http_port),
        "ADMIN_PORT": str(config.admin_port),
        "STATIC_PORT": str(config.static_port),
        "REGISTRY_CLUSTER_TYPE": "STATIC" if all_ips else "STRICT_DNS",
        "REGISTRY_ENDPOINTS": _endpoints(config.registry_addresses),
        "DESCRIPTOR_PATH": _quoted_path(config.descriptor_path),
        "JWKS_PATH": _quoted_path(config.jwks_path),
        "LUA_PATH": _quoted_path(config.lua_path),
        "ACCESS_LOG_NAME": log_name,
        "ACCESS_LOG_TYPE": log_type,
        "ACCESS_LOG_PATH_FIELD": log_path_field,
        "MAX_REQUEST_BYTES": str(config.max_request_bytes),
        "MAX_RESPONSE_BYTES": str(config.max_response_bytes),
        "MAX_CONNECTIONS": str(config.max_connections),
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

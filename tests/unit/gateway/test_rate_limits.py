"""The gateway's local rate limits as rendered into the Envoy config (gateway/render.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from gateway.render import GatewayConfig, RateLimit, local_rate_limit, render_text


def test_a_rate_limit_reads_burst_slash_seconds() -> None:
    assert RateLimit.parse("60/1") == RateLimit(60, 1.0)
    assert RateLimit.parse("120/0.1").retry_after == 1
    assert RateLimit.parse("5/2.5").retry_after == 3
    for bad in ("60", "x/1", "0/1", "10/0.01"):
        with pytest.raises(ValueError):
            RateLimit.parse(bad)


def test_the_environment_sets_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZQ_LOGIN_RATE_LIMIT", "7/3")
    assert GatewayConfig().login_limit == RateLimit(7, 3.0)
    monkeypatch.delenv("ZQ_LOGIN_RATE_LIMIT")
    assert GatewayConfig().login_limit == RateLimit(60, 1.0)


def test_a_trigger_takes_a_token_per_address_and_per_user() -> None:
    config: Any = local_rate_limit("trigger", RateLimit(120, 0.1), RateLimit(60, 0.2), 500)
    limit = config["envoy.filters.http.local_ratelimit"]
    assert limit["rate_limits"] == [
        {"actions": [{"remote_address": {}}]},
        {
            "actions": [
                {
                    "request_headers": {
                        "header_name": "x-user",
                        "descriptor_key": "user",
                        "skip_if_absent": True,
                    }
                }
            ]
        },
    ]
    assert limit["descriptors"] == [
        {
            "entries": [{"key": "remote_address"}],
            "token_bucket": {"max_tokens": 120, "tokens_per_fill": 1, "fill_interval": "0.1s"},
        },
        {
            "entries": [{"key": "user"}],
            "token_bucket": {"max_tokens": 60, "tokens_per_fill": 1, "fill_interval": "0.2s"},
        },
    ]
    assert limit["max_dynamic_descriptors"] == 500
    assert limit["always_consume_default_token_bucket"] is False
    assert limit["response_headers_to_add"][0]["header"] == {"key": "retry-after", "value": "1"}


def test_login_refresh_and_trigger_routes_carry_their_limits() -> None:
    config = yaml.safe_load(render_text(GatewayConfig(login_limit=RateLimit(5, 4))))
    routes = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"
    ]["virtual_hosts"][0]["routes"]
    limited = {
        route["match"]["path"]: route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]
        for route in routes
        if "envoy.filters.http.local_ratelimit" in route.get("typed_per_filter_config", {})
    }
    assert sorted(limited) == [
        "/zquant.scheduler.v1.AuthService/Login",
        "/zquant.scheduler.v1.AuthService/RefreshToken",
        "/zquant.scheduler.v1.TaskService/TriggerTask",
        "/zquant.scheduler.v1.TaskService/TriggerTaskJson",  # the REST trigger
    ]
    assert (
        limited["/zquant.scheduler.v1.TaskService/TriggerTask"]
        == limited["/zquant.scheduler.v1.TaskService/TriggerTaskJson"]
    )
    login = limited["/zquant.scheduler.v1.AuthService/Login"]
    assert json.dumps(login["descriptors"]) == json.dumps(
        [
            {
                "entries": [{"key": "remote_address"}],
                "token_bucket": {"max_tokens": 5, "tokens_per_fill": 1, "fill_interval": "4s"},
            }
        ]
    )
    assert login["response_headers_to_add"][0]["header"]["value"] == "4"

"""Channel configs: what is refused (with its reason, before anything is stored) and how secrets
are split from what the API shows back."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.errors import InvalidArgument, Reason
from services.common.vocabulary import AlertChannelType
from services.registry.alerts.channels import (
    SECRET_FIELDS,
    channel_type,
    check_config,
    parse_smtp_url,
    tls_context,
)

EMAIL = {
    "smtp_url": "smtp+starttls://alerts@smtp.example.com",
    "to": ["ops@example.com"],
    "from": "zq@example.com",
    "password": "pw",
}


def refused(kind: AlertChannelType, config: dict[str, Any]) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        check_config(kind, config)
    return caught.value


def test_an_unknown_channel_type_is_refused_naming_the_supported_ones() -> None:
    with pytest.raises(InvalidArgument) as caught:
        channel_type("pager")
    assert caught.value.reason == Reason.ALERT_CHANNEL_INVALID
    assert "email, webhook, dingtalk, wecom, feishu" in caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://smtp.example.com",
        "smtp://",
        "smtp://smtp.example.com:99999",
        "smtp://u:pw@smtp.example.com",
        "",
    ],
)
def test_an_invalid_smtp_url_is_refused(url: str) -> None:
    assert refused(AlertChannelType.EMAIL, {**EMAIL, "smtp_url": url}).reason == Reason.ALERT_CHANNEL_INVALID


def test_an_smtp_url_gets_the_default_port_of_its_scheme_and_its_user() -> None:
    assert parse_smtp_url("smtps://relay.example.com").port == 465
    target = parse_smtp_url("smtp+starttls://alerts@relay.example.com")
    assert (target.port, target.username) == (587, "alerts")


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.com/x", "file:///etc/passwd", "javascript:alert(1)", "hooks"]
)
@pytest.mark.parametrize(
    "kind", [AlertChannelType.WEBHOOK, AlertChannelType.DINGTALK, AlertChannelType.FEISHU]
)
def test_a_url_that_is_not_http_or_https_is_refused(kind: AlertChannelType, url: str) -> None:
    assert refused(kind, {"url": url}).reason == Reason.ALERT_CHANNEL_INVALID


def test_unknown_fields_bad_addresses_and_timeouts_are_refused_by_name() -> None:
    assert (
        "colour" in refused(AlertChannelType.WEBHOOK, {"url": "https://h.example.com", "colour": 1}).message
    )
    assert (
        refused(AlertChannelType.EMAIL, {**EMAIL, "to": ["not-an-address"]}).reason
        == Reason.ALERT_CHANNEL_INVALID
    )
    assert (
        "timeout_seconds"
        in refused(AlertChannelType.WECOM, {"url": "https://h.example.com", "timeout_seconds": 3600}).message
    )


def test_a_template_error_is_refused_with_the_template_reason() -> None:
    for template in ("{task_name", "{password}", "{task_name!r}", ""):
        error = refused(AlertChannelType.WEBHOOK, {"url": "https://h.example.com", "template": template})
        assert error.reason == Reason.ALERT_TEMPLATE_INVALID


def test_secrets_are_split_from_the_config_the_api_shows() -> None:
    public, secrets = check_config(AlertChannelType.EMAIL, EMAIL)
    assert secrets == {"password": "pw"}
    assert "password" not in public
    assert public["username"] == "alerts" and public["from"] == "zq@example.com"
    public, secrets = check_config(
        AlertChannelType.DINGTALK, {"url": "https://oapi.example.com/robot?a=1", "secret": "s"}
    )
    assert secrets == {"secret": "s"} and public["url"] == "https://oapi.example.com/robot?a=1"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"smtp_url": "smtp://smtp.example.com", "tls_verify": False}, "tls_verify"),
        ({"smtp_url": "smtp://smtp.example.com", "tls_ca": "x"}, "tls_ca"),
        ({"tls_verify": "no"}, "tls_verify"),
        ({"tls_ca": "not a certificate"}, "tls_ca"),
        ({"tls_ca": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "tls_ca"),
        ({"tls_ca": "-----BEGIN CERTIFICATE-----\n证书\n-----END CERTIFICATE-----\n"}, "tls_ca"),
    ],
)
def test_tls_options_are_refused_for_plain_smtp_and_when_malformed(
    options: dict[str, Any], named: str
) -> None:
    error = refused(AlertChannelType.EMAIL, {**EMAIL, **options})
    assert error.reason == Reason.ALERT_CHANNEL_INVALID and named in error.message


def test_tls_options_are_public_config_and_verification_is_on_unless_switched_off() -> None:
    public, _ = check_config(AlertChannelType.EMAIL, EMAIL)
    assert "tls_verify" not in public and tls_context(public).verify_mode == ssl.CERT_REQUIRED
    public, _ = check_config(AlertChannelType.EMAIL, {**EMAIL, "tls_verify": False})
    assert public["tls_verify"] is False
    assert (tls_context(public).verify_mode, tls_context(public).check_hostname) == (ssl.CERT_NONE, False)


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
# Plausible values of each field next to hostile ones, so that the checks past the type guards are
# reached too.
PLAUSIBLE: dict[str, list[Any]] = {
    "smtp_url": ["smtps://127.0.0.1:465", "smtp+starttls://u@[::1]:587", "smtp://[x", "smtp://h:99999"],
    "url": ["https://h.example.com/x", "http://[x/hook", "https://h.example.com:99999/x", "http://h/x y"],
    "to": [["ops@example.com"], "ops@example.com", ["ops@example.com", "bad"], []],
    "from": ["zq@example.com", "bad"],
    "username": ["alerts"],
    "password": ["pw", ""],
    "secret": ["s", ""],
    "tls_verify": [True, False],
    "tls_ca": [
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----é",
    ],
    "language": ["en", "zh", "fr"],
    "template": ["{task_name} {url}", "{0}", "{task_name.__class__}", "{", "}"],
    "timeout_seconds": [5, 0, 20.5, 1e308],
}
ALLOWED = {
    kind: ["language", "template", "timeout_seconds", *SECRET_FIELDS[kind]]
    + (
        ["smtp_url", "username", "from", "to", "tls_verify", "tls_ca"]
        if kind == AlertChannelType.EMAIL
        else ["url"]
    )
    for kind in AlertChannelType
}


def configs(kind: AlertChannelType) -> st.SearchStrategy[dict[str, Any]]:
    # Three in four values plausible: a config past its first refusal is the interesting one.
    fields = {
        field: st.one_of(*[st.sampled_from(PLAUSIBLE[field])] * 3, JSON_VALUES) for field in ALLOWED[kind]
    }
    return st.fixed_dictionaries({}, optional=fields)


@settings(max_examples=200, deadline=None)
@given(
    case=st.sampled_from(list(AlertChannelType)).flatmap(lambda kind: st.tuples(st.just(kind), configs(kind)))
)
def test_any_json_config_is_taken_or_refused_with_a_reason_never_a_crash(
    case: tuple[AlertChannelType, dict[str, Any]],
) -> None:
    kind, config = case
    try:
        public, secrets = check_config(kind, config)
    except InvalidArgument as refused_with:
        assert refused_with.reason in (Reason.ALERT_CHANNEL_INVALID, Reason.ALERT_TEMPLATE_INVALID)
        return
    assert set(public).isdisjoint(secrets)


@pytest.mark.parametrize(
    "url", ["http://[x/hook", "https://h.example.com:99999/x", "http://h/x y", "http://h/\x00"]
)
def test_a_url_that_does_not_parse_is_refused_not_a_crash(url: str) -> None:
    assert refused(AlertChannelType.WEBHOOK, {"url": url}).reason == Reason.ALERT_CHANNEL_INVALID

"""E-mail over TLS against real SMTP servers (aiosmtpd in this process): one that insists on
STARTTLS before any login or mail, one that speaks TLS from the first byte (smtps). Their
certificate is for 127.0.0.1, signed by a CA made for this test: the channel trusts it only when
given that CA (tls_ca), refuses it by default, and skips the check only when told (tls_verify false);
a STARTTLS channel never falls back to sending in the clear."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.common.vocabulary import AlertChannelType
from services.registry.alerts.channels import DeliveryFailed, check_config, send
from services.registry.alerts.messages import render
from tests.receivers import PrivateCa, SmtpReceiver, private_ca, smtp_receiver

SCHEMES = {"starttls": "smtp+starttls", "implicit": "smtps"}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCa:
    return private_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def starttls(ca: PrivateCa) -> Iterator[SmtpReceiver]:
    with smtp_receiver(tls="starttls", ca=ca) as running:
        yield running


@pytest.fixture(scope="module")
def implicit(ca: PrivateCa) -> Iterator[SmtpReceiver]:
    with smtp_receiver(tls="implicit", ca=ca) as running:
        yield running


@pytest.fixture
def server(request: pytest.FixtureRequest) -> SmtpReceiver:
    found: SmtpReceiver = request.getfixturevalue(request.param)
    return found


def mail_to(server: SmtpReceiver, tls: str, subject: str, **options: Any) -> None:
    """Checks the channel's config as the API does, then sends one message with it."""
    config = {
        "smtp_url": f"{SCHEMES[tls]}://127.0.0.1:{server.port}",
        "username": server.username,
        "password": server.password,
        "from": "zq@example.com",
        "to": ["oncall@example.com"],
        "language": "en",
        "timeout_seconds": 5,
        **options,
    }
    public, secrets = check_config(AlertChannelType.EMAIL, config)
    message = render({"event": "run_failed", "task_name": subject, "execution_id": 1}, "en")
    send(AlertChannelType.EMAIL, public, secrets, message)


def arrived(server: SmtpReceiver, subject: str) -> list[str]:
    """The TLS versions of the mails about `subject` that arrived ("" for one in the clear)."""
    return [mail.tls for mail in server.mails if subject in str(mail.message["Subject"])]


@pytest.mark.parametrize("server", ["starttls", "implicit"], indirect=True)
def test_an_email_channel_given_the_servers_ca_logs_in_and_delivers_over_tls(
    server: SmtpReceiver, ca: PrivateCa, request: pytest.FixtureRequest
) -> None:
    tls = request.node.callspec.params["server"]
    mail_to(server, tls, f"trusted-{tls}", tls_ca=ca.ca_pem)
    [version] = arrived(server, f"trusted-{tls}")
    assert version.startswith("TLSv1.")


@pytest.mark.parametrize("server", ["starttls", "implicit"], indirect=True)
def test_a_certificate_from_a_ca_the_channel_was_not_given_is_refused_and_nothing_is_sent(
    server: SmtpReceiver, request: pytest.FixtureRequest
) -> None:
    tls = request.node.callspec.params["server"]
    with pytest.raises(DeliveryFailed, match="CERTIFICATE_VERIFY_FAILED"):
        mail_to(server, tls, f"untrusted-{tls}")
    assert arrived(server, f"untrusted-{tls}") == []


@pytest.mark.parametrize("server", ["starttls", "implicit"], indirect=True)
def test_tls_verify_false_skips_the_certificate_check_but_still_encrypts(
    server: SmtpReceiver, request: pytest.FixtureRequest
) -> None:
    tls = request.node.callspec.params["server"]
    mail_to(server, tls, f"unverified-{tls}", tls_verify=False)
    [version] = arrived(server, f"unverified-{tls}")
    assert version.startswith("TLSv1.")


def test_a_starttls_channel_does_not_fall_back_to_the_clear_when_the_server_offers_no_starttls(
    ca: PrivateCa,
) -> None:
    with smtp_receiver() as plain:
        with pytest.raises(DeliveryFailed, match="STARTTLS"):
            mail_to(plain, "starttls", "downgraded", tls_ca=ca.ca_pem)
        assert arrived(plain, "downgraded") == []

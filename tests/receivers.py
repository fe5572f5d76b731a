"""Real alert receivers for tests: an HTTP server that checks each channel's signature the way the
real receiver does, and an SMTP server (aiosmtpd) that requires a login: plain, with STARTTLS
required before any mail, or TLS from the first byte (implicit TLS, "smtps").

Both run in threads of the test process on free loopback ports and record what arrived; an HTTP
receiver can be taken "down" (it answers 503) and brought back. The TLS servers use a certificate
for 127.0.0.1 signed by a private CA made by `private_ca` (the `cryptography` package), so a client
trusts them only when given that CA.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stack.ports import free_ports


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    # The channel's signature checked out (or the channel signs nothing).
    signed: bool


def _verify(path: str, query: dict[str, str], headers: dict[str, str], raw: bytes, secret: str) -> bool:
    """Each channel's signature, as its real receiver checks it."""
    body = json.loads(raw)
    if path.startswith("/webhook"):
        timestamp = headers.get("x-zq-timestamp", "")
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers.get("x-zq-signature", ""), f"sha256={expected}")
    if path.startswith("/dingtalk"):
        timestamp = query.get("timestamp", "")
        digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
        fresh = abs(time.time() * 1000 - int(timestamp or 0)) < 3600_000
        return fresh and hmac.compare_digest(query.get("sign", ""), base64.b64encode(digest).decode())
    if path.startswith("/feishu"):
        timestamp = str(body.get("timestamp", ""))
        digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
        return hmac.compare_digest(str(body.get("sign", "")), base64.b64encode(digest).decode())
    return True  # WeCom robots sign nothing: the key in the URL is the credential


@dataclass
class HttpReceiver:
    port: int
    secret: str
    received: list[Received] = field(default_factory=list)
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def messages(self, prefix: str = "/") -> list[Received]:
        with self.lock:
            return [item for item in self.received if item.path.startswith(prefix)]


@contextmanager
def http_receiver(secret: str = "") -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(port=free_ports(1)[0], secret=secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if receiver.down:
                self.send_response(503)
                self.end_headers()
                return
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            parsed = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            headers = {key.lower(): value for key, value in self.headers.items()}
            signed = _verify(parsed.path, query, headers, raw, receiver.secret) if receiver.secret else True
            with receiver.lock:
                receiver.received.append(Received(parsed.path, query, headers, json.loads(raw), signed))
            answer = json.dumps({"errcode": 0 if signed else 310000, "errmsg": "ok" if signed else "sign"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class PrivateCa:
    """A CA made for one test run and a server certificate it signed for 127.0.0.1."""

    ca_pem: str
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def private_ca(directory: Path) -> PrivateCa:
    """A self-signed CA and a certificate for 127.0.0.1 (and localhost) it signed, valid for a day."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("ZQuant test CA"))
        .issuer_name(_name("ZQuant test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    return PrivateCa(ca_pem, cert_file, key_file)


@dataclass
class Mail:
    message: Message
    # The TLS version the message came over ("TLSv1.3"), "" when it came in the clear.
    tls: str


@dataclass
class SmtpReceiver:
    port: int
    username: str
    password: str
    messages: list[Message] = field(default_factory=list)
    mails: list[Mail] = field(default_factory=list)


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self._receiver = receiver

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        secured = server.transport.get_extra_info("ssl_object")
        self._receiver.messages.append(message)
        self._receiver.mails.append(Mail(message, secured.version() if secured is not None else ""))
        return "250 OK"


@contextmanager
def smtp_receiver(
    username: str = "alerts",
    password: str = "smtp-secret",
    *,
    tls: Literal["", "starttls", "implicit"] = "",
    ca: PrivateCa | None = None,
) -> Iterator[SmtpReceiver]:
    """An SMTP server that requires AUTH LOGIN/PLAIN with these credentials: in the clear (tls "",
    loopback only), after a STARTTLS it insists on before any login or mail ("starttls"), or over
    TLS from the first byte ("implicit"); the TLS ones present `ca`'s certificate for 127.0.0.1."""
    receiver = SmtpReceiver(port=free_ports(1)[0], username=username, password=password)

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == username
            and data.password.decode() == password
        )
        return AuthResult(success=ok)

    options: dict[str, Any] = {"auth_require_tls": False}
    if tls:
        assert ca is not None, "a TLS server needs its CA"
        context = ca.server_context()
        if tls == "starttls":
            # No login before STARTTLS (aiosmtpd's default), and no mail either.
            options = {"tls_context": context, "require_starttls": True, "auth_require_tls": True}
        else:
            # aiosmtpd counts only STARTTLS as TLS for its login rule; the whole session is TLS here.
            options["ssl_context"] = context
    controller = Controller(
        _Handler(receiver),
        hostname="127.0.0.1",
        port=receiver.port,
        authenticator=authenticate,
        auth_required=True,
        **options,
    )
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()

"""Alert channels: what a channel's config may hold, and how a message reaches each kind.

A channel's config is split in two on the way in: the public part (shown back by the API) and the
secret part (``SECRET_FIELDS``: an SMTP password, a webhook's or robot's signing secret), which is
stored encrypted and never returned. ``check_config`` validates everything before anything is
stored, so bad input is a 400 with ALERT_CHANNEL_INVALID and no row.

Delivery is plain HTTP (``requests``) and ``smtplib``: each robot's wire format and signature is a
few lines, and the generic webhook's HMAC signature is ours (a notification library such as
apprise signs none of them the way the receivers here verify). Every send has a timeout; a failure
raises ``DeliveryFailed`` with a short reason that the delivery history shows.

E-mail over TLS (``smtp+starttls://`` upgrades a plain connection, ``smtps://`` speaks TLS from the
first byte) always verifies the server's certificate and host name against the system's CAs. A
server with a private CA is trusted by giving that CA's certificate itself (``tls_ca``, PEM text in
the channel's public config: it is no secret, and every registry replica then has it without a
file to mount). ``tls_verify: false`` skips the check altogether; it is an explicit, visible choice
for a lab relay, never a fallback. Neither option is accepted for plain ``smtp://``, where it would
suggest a protection that is not there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

import requests

from services.common.errors import InvalidArgument, Reason
from services.common.vocabulary import AlertChannelType, listed, word_of
from services.registry.alerts.messages import Outgoing, check_template

SECRET_FIELDS: dict[AlertChannelType, tuple[str, ...]] = {
    AlertChannelType.EMAIL: ("password",),
    AlertChannelType.WEBHOOK: ("secret",),
    AlertChannelType.DINGTALK: ("secret",),
    AlertChannelType.WECOM: (),
    AlertChannelType.FEISHU: ("secret",),
}
_PUBLIC_FIELDS: dict[AlertChannelType, tuple[str, ...]] = {
    AlertChannelType.EMAIL: ("smtp_url", "username", "from", "to", "tls_verify", "tls_ca"),
    AlertChannelType.WEBHOOK: ("url",),
    AlertChannelType.DINGTALK: ("url",),
    AlertChannelType.WECOM: ("url",),
    AlertChannelType.FEISHU: ("url",),
}
# Every type: the message language, an optional own template, the send timeout.
_COMMON_FIELDS = ("language", "template", "timeout_seconds")
LANGUAGES = ("zh", "en")
DEFAULT_TIMEOUT_SECONDS = 10
MAX_TIMEOUT_SECONDS = 20
SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")
TLS_SCHEMES = ("smtp+starttls", "smtps")
MAX_CA_LENGTH = 64 * 1024
# The generic webhook's signature: hex HMAC-SHA256 of "{timestamp}.{body}" with the channel secret.
SIGNATURE_HEADER = "X-ZQ-Signature"
TIMESTAMP_HEADER = "X-ZQ-Timestamp"


class DeliveryFailed(Exception):
    """A message did not reach its channel; the text says why (for the delivery history)."""


def _invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason=Reason.ALERT_CHANNEL_INVALID)


def channel_type(value: str) -> AlertChannelType:
    kind = word_of(AlertChannelType, value)
    if kind is None:
        raise _invalid(f"未知的告警渠道类型: {value!r}，支持: {listed(AlertChannelType)}")
    return kind


def _http_url(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(f"{field} 不能为空")
    if any(ord(char) < 33 or ord(char) == 127 for char in value):
        raise _invalid(f"{field} 不能含空白或控制字符: {value!r}")
    try:
        parsed = urllib.parse.urlsplit(value)
        parsed.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError as exc:
        raise _invalid(f"无效的 {field}: {value!r}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise _invalid(f"{field} 必须是 http 或 https 地址: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    scheme: str
    host: str
    port: int
    username: str


def parse_smtp_url(value: Any) -> SmtpTarget:
    """smtp://host[:25] (plain), smtp+starttls://host[:587], smtps://host[:465] (TLS from the start);
    a user name may come in the URL (user@host)."""
    if not isinstance(value, str) or not value:
        raise _invalid("smtp_url 不能为空")
    try:
        parsed = urllib.parse.urlsplit(value)
        port = parsed.port
    except ValueError as exc:
        raise _invalid(f"无效的 smtp_url: {value!r}") from exc
    if parsed.scheme not in SMTP_SCHEMES or not parsed.hostname:
        raise _invalid(f"无效的 smtp_url: {value!r}，格式如 smtp+starttls://smtp.example.com:587")
    if parsed.password:
        raise _invalid("密码不能写在 smtp_url 中，请使用 password 字段（只写，不会返回）")
    default_port = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}[parsed.scheme]
    return SmtpTarget(parsed.scheme, parsed.hostname, port or default_port, parsed.username or "")


def _tls_options(target: SmtpTarget, config: dict[str, Any]) -> dict[str, Any]:
    """tls_verify (default true) and tls_ca (the PEM of the CAs to trust), checked: a CA that does
    not load is refused now, not at the first alert."""
    options: dict[str, Any] = {}
    given = [name for name in ("tls_verify", "tls_ca") if name in config]
    if given and target.scheme not in TLS_SCHEMES:
        raise _invalid(f"{', '.join(given)} 只用于 smtp+starttls:// 或 smtps://（smtp:// 不加密）")
    if "tls_verify" in config:
        if not isinstance(config["tls_verify"], bool):
            raise _invalid("tls_verify 必须是 true 或 false")
        options["tls_verify"] = config["tls_verify"]
    if "tls_ca" in config:
        pem = config["tls_ca"]
        if not isinstance(pem, str) or "-----BEGIN CERTIFICATE-----" not in pem:
            raise _invalid("tls_ca 必须是 PEM 格式的 CA 证书（-----BEGIN CERTIFICATE-----）")
        if len(pem) > MAX_CA_LENGTH:
            raise _invalid(f"tls_ca 最长 {MAX_CA_LENGTH} 个字符")
        try:
            ssl.create_default_context(cadata=pem)
        except (ssl.SSLError, ValueError, TypeError) as exc:  # TypeError: not ASCII
            raise _invalid(f"tls_ca 无法加载: {exc}") from exc
        options["tls_ca"] = pem
    return options


def tls_context(config: dict[str, Any]) -> ssl.SSLContext:
    """The TLS context of an e-mail channel: the system's CAs, or only the channel's own CA, and
    the host name checked, unless the channel says tls_verify false."""
    pem = config.get("tls_ca") or None
    context = ssl.create_default_context(cadata=pem)
    if config.get("tls_verify") is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _addresses(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    addresses = []
    for item in items:
        if not isinstance(item, str) or "@" not in parseaddr(item)[1]:
            raise _invalid(f"无效的邮件地址: {item!r}")
        addresses.append(item)
    if not addresses:
        raise _invalid("to 至少需要一个收件地址")
    return addresses


def check_config(kind: AlertChannelType, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The public config and the secrets of a channel, or InvalidArgument naming what is wrong."""
    allowed = set(_PUBLIC_FIELDS[kind]) | set(SECRET_FIELDS[kind]) | set(_COMMON_FIELDS)
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise _invalid(f"{kind} 渠道不支持的配置项: {', '.join(unknown)}")
    public: dict[str, Any] = {}
    language = config.get("language", "zh")
    if language not in LANGUAGES:
        raise _invalid(f"language 只能是 {', '.join(LANGUAGES)}")
    public["language"] = language
    timeout = config.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if (
        not isinstance(timeout, int | float)
        or isinstance(timeout, bool)
        or not 1 <= timeout <= MAX_TIMEOUT_SECONDS
    ):
        raise _invalid(f"timeout_seconds 必须在1到{MAX_TIMEOUT_SECONDS}秒之间")
    public["timeout_seconds"] = int(timeout)
    if "template" in config:
        public["template"] = check_template(config["template"])
    if kind == AlertChannelType.EMAIL:
        target = parse_smtp_url(config.get("smtp_url"))
        public["smtp_url"] = config["smtp_url"]
        username = config.get("username", target.username)
        if not isinstance(username, str):
            raise _invalid("username 必须是字符串")
        public["username"] = username
        sender = config.get("from") or username
        public["from"] = _addresses(sender)[0]
        public["to"] = _addresses(config.get("to", []))
        public.update(_tls_options(target, config))
    else:
        public["url"] = _http_url(config.get("url"), "url")
    secrets: dict[str, str] = {}
    for field in SECRET_FIELDS[kind]:
        value = config.get(field)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise _invalid(f"{field} 必须是字符串")
        secrets[field] = value
    return public, secrets


# ---- sending ----------------------------------------------------------------------------------


def send(kind: AlertChannelType, config: dict[str, Any], secrets: dict[str, str], message: Outgoing) -> None:
    timeout = float(config.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
    if kind == AlertChannelType.EMAIL:
        _send_email(config, secrets, message, timeout)
        return
    url, secret = str(config["url"]), secrets.get("secret", "")
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if kind == AlertChannelType.WEBHOOK:
        body = _json({**message.fields, "title": message.title, "text": message.text})
        if secret:
            headers.update(webhook_signature_headers(secret, body, int(time.time())))
    elif kind == AlertChannelType.DINGTALK:
        if secret:
            url = _with_query(url, dingtalk_signature(secret, int(time.time() * 1000)))
        body = _json({"msgtype": "markdown", "markdown": {"title": message.title, "text": message.text}})
    elif kind == AlertChannelType.WECOM:
        body = _json({"msgtype": "markdown", "markdown": {"content": message.text}})
    else:
        payload: dict[str, Any] = {"msg_type": "text", "content": {"text": message.text}}
        if secret:
            timestamp = int(time.time())
            payload.update(timestamp=str(timestamp), sign=feishu_signature(secret, timestamp))
        body = _json(payload)
    _post(url, body, headers, timeout)


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def webhook_signature_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: f"sha256={digest}"}


def dingtalk_signature(secret: str, timestamp_ms: int) -> dict[str, str]:
    """DingTalk's robot signature: base64 HMAC-SHA256 of "{timestamp}\\n{secret}" keyed by the secret."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return {"timestamp": str(timestamp_ms), "sign": base64.b64encode(digest).decode()}


def feishu_signature(secret: str, timestamp: int) -> str:
    """Feishu/Lark's: base64 HMAC-SHA256 of nothing keyed by "{timestamp}\\n{secret}"."""
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _with_query(url: str, extra: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(extra)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:500]) from exc
    if response.status_code >= 300:
        raise DeliveryFailed(f"HTTP {response.status_code}: {response.text[:200]}")
    # The robots answer 200 with an error code in the body (a wrong signature, a bad token).
    try:
        answer = response.json()
    except ValueError:
        return
    if isinstance(answer, dict):
        code = answer.get("errcode", answer.get("code", answer.get("StatusCode", 0)))
        if code not in (0, None):
            raise DeliveryFailed(f"渠道返回错误 {code}: {answer.get('errmsg') or answer.get('msg') or ''}")


def _send_email(config: dict[str, Any], secrets: dict[str, str], message: Outgoing, timeout: float) -> None:
    target = parse_smtp_url(config["smtp_url"])
    email = EmailMessage()
    email["Subject"] = message.title
    email["From"] = config["from"]
    email["To"] = ", ".join(config["to"])
    email.set_content(message.text)
    try:
        smtp: smtplib.SMTP
        if target.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=tls_context(config))
        else:
            smtp = smtplib.SMTP(target.host, target.port, timeout=timeout)
        with smtp:
            if target.scheme == "smtp+starttls":
                smtp.starttls(context=tls_context(config))
            username = config.get("username") or target.username
            if username and secrets.get("password"):
                smtp.login(username, secrets["password"])
            smtp.send_message(email)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:500]) from exc

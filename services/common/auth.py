"""Tokens and roles.

User tokens are ES256 JWTs signed by the registry; the gateway verifies them with the public JWKS and
the services verify them again, so a direct gRPC caller is held to the same rules. Internal callers
(scheduler -> registry, scheduler -> executor) present the shared service token instead.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.common.errors import PermissionDenied, Reason, Unauthenticated

ISSUER = "zquant-scheduler"
AUDIENCE = "zquant-scheduler-api"
ALGORITHM = "ES256"
ROLES = ("viewer", "operator", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
SERVICE_ROLE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    username: str
    role: str
    # The login this caller's token belongs to ("" for the service principal).
    session_id: str = ""

    @property
    def is_service(self) -> bool:
        return self.role == SERVICE_ROLE

    def has(self, role: str) -> bool:
        """Whether this principal has `role` or a higher one."""
        return self.is_service or _RANK.get(self.role, -1) >= _RANK[role]

    def require(self, role: str) -> None:
        """Raises PermissionDenied unless this principal has `role` or a higher one."""
        if self.is_service:
            return
        if _RANK.get(self.role, -1) < _RANK[role]:
            raise PermissionDenied(f"需要{ROLE_LABELS[role]}权限")


ROLE_LABELS = {"viewer": "查看", "operator": "操作员", "admin": "管理员"}
SERVICE_PRINCIPAL = Principal(username="system", role=SERVICE_ROLE)


@dataclass(frozen=True, slots=True)
class KeyPair:
    private_pem: bytes
    kid: str

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key.public_key()

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.public_key))
        jwk.update({"kid": self.kid, "use": "sig", "alg": ALGORITHM})
        return {"keys": [jwk]}


def load_or_create_keys(key_path: Path, jwks_path: Path) -> KeyPair:
    """Loads the signing key, creating it on first start, and (re)writes the public JWKS for Envoy."""
    if key_path.exists():
        pem = key_path.read_bytes()
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = key_path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(key_path)
    kid = hmac.new(b"kid", pem, "sha256").hexdigest()[:16]
    pair = KeyPair(private_pem=pem, kid=kid)
    tmp_jwks = jwks_path.with_suffix(".tmp")
    tmp_jwks.write_text(json.dumps(pair.jwks()))
    tmp_jwks.replace(jwks_path)
    return pair


@dataclass(frozen=True, slots=True)
class TokenSubject:
    """Whom a token speaks for. A token is valid only while the user with this id (not merely this
    name: a re-created user has a new id) still has this token version and the session is live."""

    username: str
    role: str
    user_id: int
    version: int
    session_id: str

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> TokenSubject:
        return cls(
            username=str(claims["sub"]),
            role=str(claims["role"]),
            user_id=int(claims["uid"]),
            version=int(claims["ver"]),
            session_id=str(claims["sid"]),
        )


class TokenService:
    def __init__(self, keys: KeyPair, access_ttl: int, refresh_ttl: int) -> None:
        self._keys = keys
        private = serialization.load_pem_private_key(keys.private_pem, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        self._private = private
        self._public = keys.public_key
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def issue(self, subject: TokenSubject, token_type: str, jti: str = "") -> str:
        now = int(time.time())
        ttl = self.access_ttl if token_type == "access" else self.refresh_ttl
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject.username,
            "role": subject.role,
            "uid": subject.user_id,
            "ver": subject.version,
            "sid": subject.session_id,
            "type": token_type,
            "iat": now,
            "nbf": now - 1,
            "exp": now + ttl,
            "jti": jti or secrets.token_hex(8),
        }
        return jwt.encode(claims, self._private, algorithm=ALGORITHM, headers={"kid": self._keys.kid})

    def verify(self, token: str, token_type: str = "access") -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                # Tokens issued before token versions (no uid/ver/sid) are refused.
                options={"require": ["exp", "sub", "role", "type", "uid", "ver", "sid", "jti"]},
                leeway=30,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("Token已过期", reason=Reason.TOKEN_EXPIRED) from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("无效的Token", reason=Reason.TOKEN_INVALID) from exc
        if claims.get("type") != token_type:
            raise Unauthenticated("Token类型错误", reason=Reason.TOKEN_INVALID)
        if not isinstance(claims["uid"], int) or not isinstance(claims["ver"], int):
            raise Unauthenticated("无效的Token", reason=Reason.TOKEN_INVALID)
        return claims


def bearer_token(metadata: dict[str, str]) -> str | None:
    header = metadata.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def is_service_token(token: str | None, service_token: str) -> bool:
    return bool(token) and bool(service_token) and hmac.compare_digest(token or "", service_token)


def service_metadata(service_token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {service_token}"),)

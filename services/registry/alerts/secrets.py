"""Channel secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with the key in ZQ_ALERT_KEY.

The key comes from the environment (the dev launcher generates one, Kubernetes takes it from a
Secret), never from the database, so a copy of the database alone reveals no SMTP password or robot
secret. Without a key, channels that carry a secret are refused (ALERT_KEY_MISSING); channels
without one work all the same.
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken

from services.common.errors import FailedPrecondition, Reason


class SecretBox:
    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode()) if key else None

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, secrets: dict[str, str]) -> str:
        if not secrets:
            return ""
        if self._fernet is None:
            raise FailedPrecondition(
                "未设置 ZQ_ALERT_KEY，不能保存含密钥或密码的告警渠道", reason=Reason.ALERT_KEY_MISSING
            )
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def open(self, sealed: str) -> dict[str, str]:
        if not sealed:
            return {}
        if self._fernet is None:
            raise FailedPrecondition(
                "未设置 ZQ_ALERT_KEY，无法解密告警渠道的密钥", reason=Reason.ALERT_KEY_MISSING
            )
        try:
            opened: dict[str, str] = json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken as exc:
            raise FailedPrecondition(
                "ZQ_ALERT_KEY 与保存渠道时的密钥不同，无法解密", reason=Reason.ALERT_KEY_MISSING
            ) from exc
        return opened

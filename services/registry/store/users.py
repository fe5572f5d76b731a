"""Users: password hashing, login with per-username lockout, and administration.

Every function works inside the caller's Session (one transaction); nothing here knows about gRPC.
The lockout counter lives in the user's row, so it holds across registry replicas.
"""

from __future__ import annotations

import functools
import math
import os
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.auth import ROLES
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
)
from services.registry.db import utcnow
from services.registry.models import UserRow

MAX_FAILED_ATTEMPTS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 8
_USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")

BAD_CREDENTIALS = "用户名或密码错误"
USER_DISABLED = "用户已被禁用"
LAST_ADMIN = "不能删除或降级最后一个管理员"

# Production parameters (argon2id, ~50 ms per hash); tests inject a cheaper hasher.
DEFAULT_HASHER = PasswordHasher()


def hash_password(password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    return hasher.hash(password)


def verify_password(password_hash: str, password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    # Same parameters as real hashes, so an unknown username costs as much as a wrong password.
    return hasher.hash(secrets.token_hex(16))


def _lock_message(locked_until: datetime, now: datetime) -> str:
    minutes = max(1, math.ceil((locked_until - now).total_seconds() / 60))
    return f"账户已被锁定，请{minutes}分钟后再试"


def authenticate(
    session: Session, username: str, password: str, now: datetime, *, hasher: PasswordHasher = DEFAULT_HASHER
) -> UserRow:
    """Checks a login and returns the user, or raises Unauthenticated.

    A failed attempt is committed before raising: the caller's transaction is rolled back by the
    exception, and the failure must still count.
    """
    user = session.scalar(select(UserRow).where(UserRow.username == username))
    if user is None:
        verify_password(_dummy_hash(hasher), password, hasher)
        raise Unauthenticated(BAD_CREDENTIALS)
    if user.locked_until is not None and user.locked_until > now:
        raise Unauthenticated(_lock_message(user.locked_until, now))

    if not verify_password(user.password_hash, password, hasher):
        # Atomic increment: concurrent attempts on other replicas must all count.
        failures = session.execute(
            update(UserRow)
            .where(UserRow.id == user.id)
            .values(failed_attempts=UserRow.failed_attempts + 1)
            .returning(UserRow.failed_attempts)
        ).scalar_one()
        message = BAD_CREDENTIALS
        if failures >= MAX_FAILED_ATTEMPTS:
            user.locked_until = now + LOCKOUT
            user.failed_attempts = 0
            message = _lock_message(user.locked_until, now)
        session.commit()
        raise Unauthenticated(message)

    if user.disabled:
        raise Unauthenticated(USER_DISABLED)
    if user.failed_attempts or user.locked_until is not None:
        user.failed_attempts = 0
        user.locked_until = None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password, hasher)
    return user


def _validate_username(username: str) -> None:
    if not _USERNAME.fullmatch(username):
        raise InvalidArgument("用户名须为1-64位字母、数字或 _ . - @")


def _validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidArgument(f"密码长度至少为{MIN_PASSWORD_LENGTH}位")


def _validate_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidArgument(f"无效的角色: {role}")


def _find(session: Session, username: str) -> UserRow | None:
    return session.scalar(select(UserRow).where(UserRow.username == username))


def get_user(session: Session, username: str) -> UserRow:
    user = _find(session, username)
    if user is None:
        raise NotFound(f"用户 {username} 不存在")
    return user


def list_users(session: Session) -> Sequence[UserRow]:
    return session.scalars(select(UserRow).order_by(UserRow.id)).all()


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str = "viewer",
    *,
    hasher: PasswordHasher = DEFAULT_HASHER,
) -> UserRow:
    _validate_username(username)
    _validate_password(password)
    _validate_role(role)
    if _find(session, username) is not None:
        raise AlreadyExists(f"用户 {username} 已存在")
    now = utcnow()
    user = UserRow(
        username=username,
        password_hash=hash_password(password, hasher),
        role=role,
        disabled=False,
        failed_attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    try:
        # Surfaces a concurrent insert of the same name (another replica) here, not at commit.
        session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(f"用户 {username} 已存在") from exc
    return user


def _is_active_admin(user: UserRow) -> bool:
    return user.role == "admin" and not user.disabled


def _ensure_not_last_admin(session: Session, user: UserRow) -> None:
    if not _is_active_admin(user):
        return
    # FOR UPDATE (PostgreSQL) serializes two admins demoting each other at the same time.
    admins = session.scalars(
        select(UserRow.id).where(UserRow.role == "admin", UserRow.disabled.is_(False)).with_for_update()
    ).all()
    if len(admins) <= 1:
        raise FailedPrecondition(LAST_ADMIN)


def update_user(
    session: Session,
    username: str,
    *,
    role: str | None = None,
    password: str | None = None,
    disabled: bool | None = None,
    hasher: PasswordHasher = DEFAULT_HASHER,
) -> UserRow:
    """Changes only the given fields."""
    if role is not None:
        _validate_role(role)
    if password is not None:
        _validate_password(password)
    user = get_user(session, username)
    if (role is not None and role != "admin") or disabled is True:
        _ensure_not_last_admin(session, user)
    if role is not None:
        user.role = role
    if disabled is not None:
        user.disabled = disabled
    if password is not None:
        user.password_hash = hash_password(password, hasher)
        # A password set by an admin is the way out of a lockout.
        user.failed_attempts = 0
        user.locked_until = None
    user.updated_at = utcnow()
    return user


def delete_user(session: Session, username: str) -> None:
    user = get_user(session, username)
    _ensure_not_last_admin(session, user)
    session.delete(user)


def ensure_admin(
    session: Session,
    username: str,
    password: str,
    password_file: Path,
    *,
    hasher: PasswordHasher = DEFAULT_HASHER,
) -> str | None:
    """Creates the first admin when there is no enabled admin; never touches an existing one.

    Without `password` a random one is generated, written to `password_file` (0600) and returned.
    """
    has_admin = session.scalar(
        select(func.count()).select_from(UserRow).where(UserRow.role == "admin", UserRow.disabled.is_(False))
    )
    if has_admin:
        return None
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(18)
    create_user(session, username, password, "admin", hasher=hasher)
    if generated is None:
        return None
    _write_secret(password_file, generated + "\n")
    return generated


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # Created 0600 from the start, so the password is never readable by others, even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a leftover tmp file keeps its old mode on open
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)

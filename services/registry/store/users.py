"""Users, their sessions and failed logins: everything the registry stores about who may act.

Every function works inside the caller's Session (one transaction); nothing here knows about gRPC,
and nothing here hashes: hashing is slow and runs in services.registry.passwords' pool, so the
servicer checks and hashes a password before (or between) these short transactions.

- Token version: every token carries its user's id and `token_version`. A password or role
  change, disabling and deleting bump it, so every older token is refused (server.py checks it on
  every call). A re-created username has a new id: the old user's tokens never fit it.
- Sessions: a login starts one; its refresh tokens form a family of which only the newest
  (`refresh_jti`) may be used. Presenting an older one again means it was copied: the session is
  revoked (reuse detection). Logout revokes the caller's session.
- Failed logins are counted per username (existing or not: the answer never tells) and client
  address. After `FREE_ATTEMPTS` failures that pair is locked for `BASE_LOCK`, doubling with each
  further failure up to `MAX_LOCK`: an attacker gets few guesses, yet nobody can lock a user out
  from another address, and the lock ends by itself. An admin unlocks at once (`unlock_user`).
  Counters live in the database, so they hold across registry replicas.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from argon2 import PasswordHasher
from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Delete, Update

from services.common.auth import ROLES, TokenSubject
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Reason,
    Unauthenticated,
)
from services.registry.db import upsert_into, utcnow
from services.registry.models import LoginFailureRow, SessionRow, UserRow
from services.registry.passwords import DEFAULT_HASHER, check_new_password

FREE_ATTEMPTS = 5
BASE_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=15)
# Failure counters untouched this long are forgotten (purge_login_failures).
FAILURE_MEMORY = timedelta(days=1)
_USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_ADDRESS_LENGTH = 64

BAD_CREDENTIALS = "用户名或密码错误"
USER_DISABLED = "用户已被禁用"
LAST_ADMIN = "不能删除或降级最后一个管理员"
INVALID_REFRESH = "无效的刷新Token"
SESSION_ENDED = "登录已失效，请重新登录"
REFRESH_REUSED = "刷新Token已被使用，登录已失效，请重新登录"


def is_valid_username(username: str) -> bool:
    return _USERNAME.fullmatch(username) is not None


def _lock_message(locked_until: datetime, now: datetime) -> str:
    seconds = max(1, math.ceil((locked_until - now).total_seconds()))
    if seconds < 120:
        return f"登录失败次数过多，请{seconds}秒后再试"
    return f"登录失败次数过多，请{math.ceil(seconds / 60)}分钟后再试"


def lock_duration(failures: int) -> timedelta | None:
    """How long a username + address pair is locked after its `failures`-th failure in a row."""
    if failures < FREE_ATTEMPTS:
        return None
    doublings = min(failures - FREE_ATTEMPTS, 16)
    lock: timedelta = min(BASE_LOCK * (2**doublings), MAX_LOCK)
    return lock


def _changed(session: Session, statement: Update | Delete) -> int:
    """Rows an UPDATE or DELETE changed."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def client_key(address: str) -> str:
    return address[:_ADDRESS_LENGTH] or "unknown"


def check_login_lock(session: Session, username: str, address: str, now: datetime) -> None:
    """Raises ACCOUNT_LOCKED while this username is locked for this address (before any hashing)."""
    locked_until = session.scalar(
        select(LoginFailureRow.locked_until).where(
            LoginFailureRow.username == username, LoginFailureRow.address == client_key(address)
        )
    )
    if locked_until is not None and locked_until > now:
        raise Unauthenticated(_lock_message(locked_until, now), reason=Reason.ACCOUNT_LOCKED)


LOGIN_FAILURES = cast(Table, LoginFailureRow.__table__)


def record_login_failure(session: Session, username: str, address: str, now: datetime) -> str:
    """Counts a failed login (atomically: replicas and concurrent attempts all count) and returns the
    answer for it: BAD_CREDENTIALS, or the lock message when this failure locks the pair."""
    statement = upsert_into(LOGIN_FAILURES, session.get_bind().dialect.name).values(
        username=username, address=client_key(address), failures=1, last_failure_at=now
    )
    failures = session.execute(
        statement.on_conflict_do_update(
            index_elements=[LoginFailureRow.username, LoginFailureRow.address],
            set_={"failures": LoginFailureRow.failures + 1, "last_failure_at": now},
        ).returning(LoginFailureRow.failures)
    ).scalar_one()
    duration = lock_duration(failures)
    if duration is None:
        return BAD_CREDENTIALS
    session.execute(
        update(LoginFailureRow)
        .where(LoginFailureRow.username == username, LoginFailureRow.address == client_key(address))
        .values(locked_until=now + duration)
    )
    return _lock_message(now + duration, now)


def clear_login_failures(session: Session, username: str, address: str | None = None) -> int:
    """Forgets the failures of `username` from `address` (all addresses when None)."""
    statement = delete(LoginFailureRow).where(LoginFailureRow.username == username)
    if address is not None:
        statement = statement.where(LoginFailureRow.address == client_key(address))
    return _changed(session, statement)


def purge_login_failures(session: Session, now: datetime) -> int:
    """Deletes counters untouched for FAILURE_MEMORY (whose locks have long ended)."""
    statement = delete(LoginFailureRow).where(LoginFailureRow.last_failure_at < now - FAILURE_MEMORY)
    return _changed(session, statement)


def _validate_username(username: str) -> None:
    if not is_valid_username(username):
        raise InvalidArgument("用户名须为1-64位字母、数字或 _ . - @", reason=Reason.USER_INVALID)


def _validate_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidArgument(f"无效的角色: {role}", reason=Reason.USER_INVALID)


def check_new_user(username: str, password: str, role: str) -> None:
    """Everything CreateUser checks before the (slow) hashing."""
    _validate_username(username)
    check_new_password(password, username)
    _validate_role(role)


def find_user(session: Session, username: str) -> UserRow | None:
    return session.scalar(select(UserRow).where(UserRow.username == username))


def get_user(session: Session, username: str) -> UserRow:
    user = find_user(session, username)
    if user is None:
        raise NotFound(f"用户 {username} 不存在", reason=Reason.USER_NOT_FOUND)
    return user


def list_users(session: Session) -> Sequence[UserRow]:
    return session.scalars(select(UserRow).order_by(UserRow.id)).all()


def locked_out(session: Session, now: datetime) -> dict[str, datetime]:
    """Usernames with a lock in force from some address -> when the last of their locks ends."""
    rows = session.execute(
        select(LoginFailureRow.username, func.max(LoginFailureRow.locked_until))
        .where(LoginFailureRow.locked_until > now)
        .group_by(LoginFailureRow.username)
    )
    return {username: until for username, until in rows if until is not None}


def create_user(session: Session, username: str, password_hash: str, role: str = "viewer") -> UserRow:
    """Adds a user whose password `check_new_user` accepted and the caller hashed."""
    _validate_username(username)
    _validate_role(role)
    if find_user(session, username) is not None:
        raise AlreadyExists(f"用户 {username} 已存在", reason=Reason.USERNAME_TAKEN)
    now = utcnow()
    user = UserRow(
        username=username,
        password_hash=password_hash,
        role=role,
        disabled=False,
        token_version=0,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    try:
        # Surfaces a concurrent insert of the same name (another replica) here, not at commit.
        session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(f"用户 {username} 已存在", reason=Reason.USERNAME_TAKEN) from exc
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
        raise FailedPrecondition(LAST_ADMIN, reason=Reason.LAST_ADMIN)


def check_update(username: str, *, role: str | None, password: str | None) -> None:
    """Everything UpdateUser checks before the (slow) hashing."""
    if role is not None:
        _validate_role(role)
    if password is not None:
        check_new_password(password, username)


def update_user(
    session: Session,
    username: str,
    *,
    role: str | None = None,
    password_hash: str | None = None,
    disabled: bool | None = None,
) -> UserRow:
    """Changes only the given fields; a new password, another role or disabling ends every session."""
    if role is not None:
        _validate_role(role)
    user = get_user(session, username)
    if (role is not None and role != "admin") or disabled is True:
        _ensure_not_last_admin(session, user)
    revoke = password_hash is not None or (role is not None and role != user.role) or disabled is True
    if role is not None:
        user.role = role
    if disabled is not None:
        user.disabled = disabled
    if password_hash is not None:
        user.password_hash = password_hash
        # A password set by an admin is the way out of a lockout.
        clear_login_failures(session, username)
    if revoke:
        user.token_version += 1
    user.updated_at = utcnow()
    return user


def unlock_user(session: Session, username: str) -> int:
    """Ends every lock and forgets every failed login of an existing user; returns how many pairs."""
    get_user(session, username)
    return clear_login_failures(session, username)


def delete_user(session: Session, username: str) -> None:
    user = get_user(session, username)
    _ensure_not_last_admin(session, user)
    session.execute(delete(SessionRow).where(SessionRow.user_id == user.id))
    clear_login_failures(session, username)
    session.delete(user)


# ---- sessions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedSession:
    subject: TokenSubject
    refresh_jti: str


def start_session(session: Session, user: UserRow, now: datetime, ttl: timedelta) -> IssuedSession:
    """A new login of `user`; forgets the user's expired sessions."""
    session.execute(delete(SessionRow).where(SessionRow.user_id == user.id, SessionRow.expires_at < now))
    row = SessionRow(
        id=secrets.token_hex(16),
        user_id=user.id,
        refresh_jti=secrets.token_hex(16),
        revoked=False,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(row)
    return IssuedSession(_subject(user, row.id), row.refresh_jti)


def _subject(user: UserRow, session_id: str) -> TokenSubject:
    return TokenSubject(
        username=user.username,
        role=user.role,
        user_id=user.id,
        version=user.token_version,
        session_id=session_id,
    )


def rotate_session(
    session: Session, presented: TokenSubject, jti: str, now: datetime, ttl: timedelta
) -> IssuedSession:
    """Exchanges the refresh token `jti` of `presented`'s session for the next one.

    Raises Unauthenticated: TOKEN_INVALID (no such user), TOKEN_REVOKED (a newer token version or a
    revoked session), USER_DISABLED, REFRESH_TOKEN_REUSED (an older refresh token of the session:
    the session is revoked and committed before raising, so the caller must not roll it back).
    """
    user = session.get(UserRow, presented.user_id)
    if user is None or user.username != presented.username:
        raise Unauthenticated(INVALID_REFRESH, reason=Reason.TOKEN_INVALID)
    if user.disabled:
        raise Unauthenticated(USER_DISABLED, reason=Reason.USER_DISABLED)
    if user.token_version != presented.version:
        raise Unauthenticated(SESSION_ENDED, reason=Reason.TOKEN_REVOKED)
    row = session.get(SessionRow, presented.session_id)
    if row is None or row.user_id != user.id or row.revoked:
        raise Unauthenticated(SESSION_ENDED, reason=Reason.TOKEN_REVOKED)
    next_jti = secrets.token_hex(16)
    # Compare-and-set: of two refreshes with the same token (another replica too) one wins.
    rotated = _changed(
        session,
        update(SessionRow)
        .where(SessionRow.id == row.id, SessionRow.refresh_jti == jti, SessionRow.revoked.is_(False))
        .values(refresh_jti=next_jti, expires_at=now + ttl),
    )
    if not rotated:
        session.execute(update(SessionRow).where(SessionRow.id == row.id).values(revoked=True))
        session.commit()
        raise Unauthenticated(REFRESH_REUSED, reason=Reason.REFRESH_TOKEN_REUSED)
    return IssuedSession(_subject(user, row.id), next_jti)


def revoke_session(session: Session, session_id: str, username: str) -> bool:
    """Ends the session `session_id` of `username` (logout); False when there was none live."""
    user_ids = select(UserRow.id).where(UserRow.username == username).scalar_subquery()
    statement = (
        update(SessionRow)
        .where(SessionRow.id == session_id, SessionRow.user_id == user_ids, SessionRow.revoked.is_(False))
        .values(revoked=True)
    )
    return bool(_changed(session, statement))


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
        password = generated = _random_password(username)
    check_new_user(username, password, "admin")
    create_user(session, username, hasher.hash(password), "admin")
    if generated is None:
        return None
    _write_secret(password_file, generated + "\n")
    return generated


def _random_password(username: str) -> str:
    """24 characters of [A-Za-z0-9_-]; drawn again in the unlikely case the policy refuses one."""
    while True:
        password = secrets.token_urlsafe(18)
        try:
            check_new_password(password, username)
        except InvalidArgument:
            continue
        return password


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # Created 0600 from the start, so the password is never readable by others, even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a leftover tmp file keeps its old mode on open
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)

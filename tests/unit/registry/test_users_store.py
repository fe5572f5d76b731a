"""services.registry.store.users on SQLite and PostgreSQL: lockout per username + address, token
versions, sessions with refresh rotation, validation, admins."""

from __future__ import annotations

import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from services.common.auth import TokenSubject
from services.common.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Reason,
    Unauthenticated,
)
from services.registry.db import Database
from services.registry.models import UserRow
from services.registry.store import users

# Cheap argon2 parameters: the production ones cost ~50 ms per hash.
FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "new-password-staple"
HERE, THERE = "10.0.0.1", "10.0.0.2"
TTL = timedelta(days=7)


def add(db: Database, username: str, role: str = "viewer", password: str = PASSWORD) -> None:
    with db.session() as s:
        users.check_new_user(username, password, role)
        users.create_user(s, username, FAST.hash(password), role)


def row(db: Database, username: str) -> UserRow:
    with db.session() as s:
        return users.get_user(s, username)


def error(exc_type: type[DomainError], fn: Callable[..., object], *args: object, **kwargs: object) -> str:
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    return info.value.message


def fail(db: Database, username: str, address: str = HERE, now: datetime = T0) -> str:
    with db.session() as s:
        return users.record_login_failure(s, username, address, now)


def locked(db: Database, username: str, address: str = HERE, now: datetime = T0) -> str | None:
    try:
        with db.session() as s:
            users.check_login_lock(s, username, address, now)
    except Unauthenticated as exc:
        assert exc.reason == Reason.ACCOUNT_LOCKED
        return exc.message
    return None


def test_the_lock_doubles_from_thirty_seconds_up_to_fifteen_minutes() -> None:
    assert [users.lock_duration(n) for n in range(1, 5)] == [None] * 4
    assert [users.lock_duration(n) for n in range(5, 9)] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert users.lock_duration(10) == timedelta(minutes=15)
    assert users.lock_duration(1000) == timedelta(minutes=15)


def test_the_fifth_failure_locks_the_username_for_that_address_only(db: Database) -> None:
    add(db, "alice")
    assert [fail(db, "alice") for _ in range(4)] == [users.BAD_CREDENTIALS] * 4
    assert fail(db, "alice") == "登录失败次数过多，请30秒后再试"
    assert locked(db, "alice", now=T0 + timedelta(seconds=10)) == "登录失败次数过多，请20秒后再试"
    assert locked(db, "alice", THERE) is None
    assert locked(db, "bob") is None
    assert locked(db, "alice", now=T0 + timedelta(seconds=30)) is None
    # The next failure after the lock doubles it.
    assert fail(db, "alice", now=T0 + timedelta(seconds=31)) == "登录失败次数过多，请60秒后再试"


def test_unknown_usernames_are_counted_and_locked_like_known_ones(db: Database) -> None:
    for _ in range(5):
        fail(db, "ghost")
    assert locked(db, "ghost") == "登录失败次数过多，请30秒后再试"


def test_long_locks_are_told_in_minutes(db: Database) -> None:
    for _ in range(10):
        fail(db, "alice")
    assert locked(db, "alice") == "登录失败次数过多，请15分钟后再试"


def test_clearing_and_unlocking(db: Database) -> None:
    add(db, "alice")
    for address in (HERE, THERE):
        for _ in range(5):
            fail(db, "alice", address)
    with db.session() as s:
        assert users.clear_login_failures(s, "alice", HERE) == 1
    assert locked(db, "alice", HERE) is None
    assert locked(db, "alice", THERE) is not None
    with db.session() as s:
        assert users.unlock_user(s, "alice") == 1
        assert error(NotFound, users.unlock_user, s, "ghost") == "用户 ghost 不存在"
    assert locked(db, "alice", THERE) is None


def test_old_failure_counters_are_purged(db: Database) -> None:
    fail(db, "alice", now=T0)
    fail(db, "bob", now=T0 + timedelta(hours=12))
    with db.session() as s:
        assert users.purge_login_failures(s, T0 + timedelta(days=1, hours=1)) == 1
    for _ in range(4):
        fail(db, "bob", now=T0 + timedelta(hours=13))
    assert locked(db, "bob", now=T0 + timedelta(hours=13)) is not None


def test_a_password_role_or_disable_change_bumps_the_token_version(db: Database) -> None:
    add(db, "root", "admin")
    add(db, "alice")
    with db.session() as s:
        users.update_user(s, "alice", role="viewer")  # the same role: nothing to revoke
    assert row(db, "alice").token_version == 0
    changes: list[dict[str, object]] = [
        {"role": "operator"},
        {"password_hash": FAST.hash(NEW_PASSWORD)},
        {"disabled": True},
    ]
    for version, change in enumerate(changes, start=1):
        with db.session() as s:
            users.update_user(s, "alice", **change)  # type: ignore[arg-type]
        assert row(db, "alice").token_version == version
    with db.session() as s:
        users.update_user(s, "alice", disabled=False)
    assert row(db, "alice").token_version == 3


def test_a_new_password_ends_the_lockout(db: Database) -> None:
    add(db, "alice")
    for _ in range(5):
        fail(db, "alice")
    with db.session() as s:
        users.update_user(s, "alice", password_hash=FAST.hash(NEW_PASSWORD))
    assert locked(db, "alice") is None


def start(db: Database, username: str) -> users.IssuedSession:
    with db.session() as s:
        return users.start_session(s, users.get_user(s, username), T0, TTL)


def rotate(db: Database, presented: TokenSubject, jti: str) -> users.IssuedSession:
    with db.session() as s:
        return users.rotate_session(s, presented, jti, T0, TTL)


def refused_rotation(db: Database, presented: TokenSubject, jti: str) -> Reason:
    with pytest.raises(Unauthenticated) as info:
        rotate(db, presented, jti)
    return info.value.reason


def test_a_refresh_token_works_once_and_its_reuse_revokes_the_session(db: Database) -> None:
    add(db, "alice", "operator")
    first = start(db, "alice")
    assert first.subject == TokenSubject(
        "alice", "operator", row(db, "alice").id, 0, first.subject.session_id
    )
    second = rotate(db, first.subject, first.refresh_jti)
    assert second.subject == first.subject
    assert second.refresh_jti != first.refresh_jti
    assert refused_rotation(db, first.subject, first.refresh_jti) == Reason.REFRESH_TOKEN_REUSED
    # The reuse revoked the family: the newest token is refused too.
    assert refused_rotation(db, second.subject, second.refresh_jti) == Reason.TOKEN_REVOKED


def test_rotation_reads_the_current_role_and_refuses_old_versions(db: Database) -> None:
    add(db, "root", "admin")
    add(db, "alice", "operator")
    issued = start(db, "alice")
    with db.session() as s:
        users.update_user(s, "alice", role="viewer")
    assert refused_rotation(db, issued.subject, issued.refresh_jti) == Reason.TOKEN_REVOKED
    fresh = start(db, "alice")
    assert (fresh.subject.role, fresh.subject.version) == ("viewer", 1)
    with db.session() as s:
        users.update_user(s, "alice", disabled=True)
    assert refused_rotation(db, fresh.subject, fresh.refresh_jti) == Reason.USER_DISABLED


def test_a_recreated_username_does_not_accept_the_old_sessions(db: Database) -> None:
    add(db, "root", "admin")
    add(db, "alice")
    issued = start(db, "alice")
    with db.session() as s:
        users.delete_user(s, "alice")
    add(db, "alice")
    assert refused_rotation(db, issued.subject, issued.refresh_jti) == Reason.TOKEN_INVALID


def test_logout_revokes_only_that_session(db: Database) -> None:
    add(db, "alice")
    one, two = start(db, "alice"), start(db, "alice")
    with db.session() as s:
        assert users.revoke_session(s, one.subject.session_id, "alice")
        assert not users.revoke_session(s, one.subject.session_id, "alice")
        assert not users.revoke_session(s, two.subject.session_id, "bob")
    assert refused_rotation(db, one.subject, one.refresh_jti) == Reason.TOKEN_REVOKED
    assert rotate(db, two.subject, two.refresh_jti).subject == two.subject


@pytest.mark.parametrize("username", ["", "a" * 65, "with space", "名字", "semi;colon"])
def test_invalid_username(db: Database, username: str) -> None:
    with db.session() as s:
        assert error(InvalidArgument, users.check_new_user, username, PASSWORD, "viewer").startswith("用户名")
        assert error(InvalidArgument, users.create_user, s, username, "hash").startswith("用户名")


def test_valid_usernames(db: Database) -> None:
    for name in ["a", "a" * 64, "john.doe-1_x@corp"]:
        add(db, name)


@pytest.mark.parametrize(
    ("password", "reason", "message"),
    [
        ("short-pw-11", Reason.PASSWORD_TOO_SHORT, "密码长度至少为12位"),
        ("123456789012", Reason.PASSWORD_TOO_COMMON, "密码过于常见，请换一个更难猜的密码"),
        ("Password2024!", Reason.PASSWORD_TOO_COMMON, "密码过于常见，请换一个更难猜的密码"),
        ("QWERTYUIOP123", Reason.PASSWORD_TOO_COMMON, "密码过于常见，请换一个更难猜的密码"),
        ("abababababab", Reason.PASSWORD_TOO_COMMON, "密码过于常见，请换一个更难猜的密码"),
        ("longusername", Reason.PASSWORD_TOO_COMMON, "密码不能与用户名相同"),
        ("x" * 257, Reason.USER_INVALID, "密码长度不能超过256位"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, reason: Reason, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        users.check_new_user("longusername", password, "viewer")
    assert (info.value.reason, info.value.message) == (reason, message)
    with pytest.raises(InvalidArgument) as info:
        users.check_update("longusername", role=None, password=password)
    assert info.value.reason == reason


def test_strong_passwords_pass() -> None:
    for password in (
        PASSWORD,
        "admin-3f9a1c2b7d4e",
        "dev-only-admin-password",
        "这是一句足够长的中文密码短语",
    ):
        users.check_new_user("admin", password, "viewer")


def test_validation_messages(db: Database) -> None:
    add(db, "alice")
    with db.session() as s:
        assert error(InvalidArgument, users.check_new_user, "bob", PASSWORD, "root") == "无效的角色: root"
        assert error(AlreadyExists, users.create_user, s, "alice", "hash") == "用户 alice 已存在"
        assert error(InvalidArgument, users.update_user, s, "alice", role="root") == "无效的角色: root"
        assert error(NotFound, users.get_user, s, "bob") == "用户 bob 不存在"
        assert error(NotFound, users.update_user, s, "bob", role="admin") == "用户 bob 不存在"
        assert error(NotFound, users.delete_user, s, "bob") == "用户 bob 不存在"


def test_default_role_is_viewer(db: Database) -> None:
    with db.session() as s:
        assert users.create_user(s, "alice", "hash").role == "viewer"


def test_list_and_delete(db: Database) -> None:
    add(db, "root", "admin")
    add(db, "alice")
    add(db, "bob", "operator")
    with db.session() as s:
        assert [u.username for u in users.list_users(s)] == ["root", "alice", "bob"]
        users.delete_user(s, "alice")
    with db.session() as s:
        assert [u.username for u in users.list_users(s)] == ["root", "bob"]


def test_last_enabled_admin_is_protected(db: Database) -> None:
    add(db, "root", "admin")
    add(db, "spare", "admin")
    with db.session() as s:
        users.update_user(s, "spare", disabled=True)
    with db.session() as s:
        # A disabled admin does not count as a remaining admin.
        assert error(FailedPrecondition, users.delete_user, s, "root") == "不能删除或降级最后一个管理员"
        assert error(FailedPrecondition, users.update_user, s, "root", role="operator") == users.LAST_ADMIN
        assert error(FailedPrecondition, users.update_user, s, "root", disabled=True) == users.LAST_ADMIN
        # Harmless changes to the last admin are fine.
        users.update_user(s, "root", role="admin", disabled=False, password_hash=FAST.hash(NEW_PASSWORD))
        users.delete_user(s, "spare")
    assert row(db, "root").role == "admin"


def test_an_admin_can_go_while_another_remains(db: Database) -> None:
    add(db, "root", "admin")
    add(db, "second", "admin")
    with db.session() as s:
        users.update_user(s, "second", role="viewer")
    with db.session() as s:
        users.update_user(s, "second", role="admin")
        users.delete_user(s, "root")
    with db.session() as s:
        assert error(FailedPrecondition, users.update_user, s, "second", role="operator") == users.LAST_ADMIN


def test_ensure_admin_generates_once(db: Database, tmp_path: Path) -> None:
    password_file = tmp_path / "secrets" / "admin_password.txt"
    with db.session() as s:
        generated = users.ensure_admin(s, "admin", "", password_file, hasher=FAST)
    assert generated is not None
    assert len(generated) >= 16
    assert password_file.read_text().strip() == generated
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert FAST.verify(row(db, "admin").password_hash, generated)
    assert row(db, "admin").role == "admin"

    password_file.unlink()
    with db.session() as s:
        assert users.ensure_admin(s, "admin", "", password_file, hasher=FAST) is None
        assert users.ensure_admin(s, "admin", "other-password-1", password_file, hasher=FAST) is None
    assert not password_file.exists()
    assert FAST.verify(row(db, "admin").password_hash, generated)


def test_ensure_admin_with_given_password_writes_no_file(db: Database, tmp_path: Path) -> None:
    password_file = tmp_path / "admin_password.txt"
    with db.session() as s:
        assert error(InvalidArgument, users.ensure_admin, s, "boss", "12345678", password_file, hasher=FAST)
        assert users.ensure_admin(s, "boss", "given-password-1", password_file, hasher=FAST) is None
    assert not password_file.exists()
    assert row(db, "boss").role == "admin"
    assert FAST.verify(row(db, "boss").password_hash, "given-password-1")


def test_ensure_admin_keeps_an_existing_admin(db: Database, tmp_path: Path) -> None:
    add(db, "root", "admin")
    password_file = tmp_path / "admin_password.txt"
    with db.session() as s:
        assert users.ensure_admin(s, "admin", "", password_file, hasher=FAST) is None
        assert [u.username for u in users.list_users(s)] == ["root"]
    assert not password_file.exists()

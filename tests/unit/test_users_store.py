"""services.registry.store.users on SQLite and PostgreSQL: hashing, lockout, validation, admins."""

from __future__ import annotations

import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from services.common.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
)
from services.registry.db import Database
from services.registry.models import UserRow
from services.registry.store import users

# Cheap argon2 parameters: the production ones cost ~50 ms per hash.
FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct-horse"
LOCKED_15 = "账户已被锁定，请15分钟后再试"


def add(db: Database, username: str, role: str = "viewer", password: str = PASSWORD) -> None:
    with db.session() as s:
        users.create_user(s, username, password, role, hasher=FAST)


def login(db: Database, username: str, password: str, now: datetime = T0) -> UserRow:
    with db.session() as s:
        return users.authenticate(s, username, password, now, hasher=FAST)


def refused(db: Database, username: str, password: str, now: datetime = T0) -> str:
    with pytest.raises(Unauthenticated) as info:
        login(db, username, password, now)
    return info.value.message


def row(db: Database, username: str) -> UserRow:
    with db.session() as s:
        return users.get_user(s, username)


def error(exc_type: type[DomainError], fn: Callable[..., object], *args: object, **kwargs: object) -> str:
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    return info.value.message


def test_hash_differs_from_password_and_verifies() -> None:
    hashed = users.hash_password(PASSWORD, FAST)
    assert hashed != PASSWORD
    assert hashed.startswith("$argon2id$")
    assert users.verify_password(hashed, PASSWORD, FAST)
    assert not users.verify_password(hashed, "wrong-password", FAST)
    assert not users.verify_password("not-a-hash", PASSWORD, FAST)


def test_login_returns_user(db: Database) -> None:
    add(db, "alice", "operator")
    user = login(db, "alice", PASSWORD)
    assert (user.username, user.role) == ("alice", "operator")
    assert row(db, "alice").password_hash != PASSWORD


def test_unknown_user_and_wrong_password_look_the_same(db: Database) -> None:
    add(db, "alice")
    assert refused(db, "nobody", PASSWORD) == refused(db, "alice", "wrong-password") == "用户名或密码错误"


def test_failures_are_counted_in_the_row(db: Database) -> None:
    add(db, "alice")
    for _ in range(3):
        refused(db, "alice", "wrong-password")
    # Each attempt ran in its own transaction that ended in an exception: the count survived.
    assert row(db, "alice").failed_attempts == 3


def test_fifth_failure_locks_for_fifteen_minutes(db: Database) -> None:
    add(db, "alice")
    for _ in range(4):
        assert refused(db, "alice", "wrong-password") == "用户名或密码错误"
    assert refused(db, "alice", "wrong-password") == LOCKED_15
    assert row(db, "alice").locked_until == T0 + timedelta(minutes=15)

    # The correct password is refused while locked; minutes remaining are rounded up.
    assert refused(db, "alice", PASSWORD, T0 + timedelta(minutes=1)) == "账户已被锁定，请14分钟后再试"
    assert (
        refused(db, "alice", PASSWORD, T0 + timedelta(minutes=10, seconds=30))
        == "账户已被锁定，请5分钟后再试"
    )
    assert (
        refused(db, "alice", PASSWORD, T0 + timedelta(minutes=14, seconds=59))
        == "账户已被锁定，请1分钟后再试"
    )

    user = login(db, "alice", PASSWORD, T0 + timedelta(minutes=15))
    assert user.username == "alice"
    assert (row(db, "alice").failed_attempts, row(db, "alice").locked_until) == (0, None)


def test_lock_expires_with_a_fresh_count(db: Database) -> None:
    add(db, "alice")
    for _ in range(5):
        refused(db, "alice", "wrong-password")
    later = T0 + timedelta(minutes=16)
    for _ in range(4):
        assert refused(db, "alice", "wrong-password", later) == "用户名或密码错误"
    assert refused(db, "alice", "wrong-password", later) == LOCKED_15


def test_success_resets_the_count(db: Database) -> None:
    add(db, "alice")
    for _ in range(4):
        refused(db, "alice", "wrong-password")
    login(db, "alice", PASSWORD)
    assert row(db, "alice").failed_attempts == 0
    for _ in range(4):
        assert refused(db, "alice", "wrong-password") == "用户名或密码错误"
    login(db, "alice", PASSWORD)


def test_lockout_is_per_username(db: Database) -> None:
    add(db, "alice")
    add(db, "bob")
    for _ in range(5):
        refused(db, "alice", "wrong-password")
    assert login(db, "bob", PASSWORD).username == "bob"
    # Unknown names never lock: there is no row to count in.
    for _ in range(6):
        assert refused(db, "ghost", "wrong-password") == "用户名或密码错误"


def test_disabled_user(db: Database) -> None:
    add(db, "alice")
    with db.session() as s:
        users.update_user(s, "alice", disabled=True)
    assert refused(db, "alice", PASSWORD) == "用户已被禁用"
    # Without the right password nothing reveals that the account is disabled.
    assert refused(db, "alice", "wrong-password") == "用户名或密码错误"


def test_login_upgrades_an_outdated_hash(db: Database) -> None:
    add(db, "alice")
    old_hash = row(db, "alice").password_hash
    stronger = PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1)
    with db.session() as s:
        users.authenticate(s, "alice", PASSWORD, T0, hasher=stronger)
    new_hash = row(db, "alice").password_hash
    assert new_hash != old_hash
    assert not stronger.check_needs_rehash(new_hash)
    assert users.verify_password(new_hash, PASSWORD, stronger)


@pytest.mark.parametrize("username", ["", "a" * 65, "with space", "名字", "semi;colon"])
def test_invalid_username(db: Database, username: str) -> None:
    with db.session() as s:
        assert error(InvalidArgument, users.create_user, s, username, PASSWORD, hasher=FAST).startswith(
            "用户名"
        )


def test_valid_usernames(db: Database) -> None:
    for name in ["a", "a" * 64, "john.doe-1_x@corp"]:
        add(db, name)


def test_validation_messages(db: Database) -> None:
    add(db, "alice")
    with db.session() as s:
        assert (
            error(InvalidArgument, users.create_user, s, "bob", "1234567", hasher=FAST) == "密码长度至少为8位"
        )
        assert (
            error(InvalidArgument, users.create_user, s, "bob", PASSWORD, "root", hasher=FAST)
            == "无效的角色: root"
        )
        assert (
            error(AlreadyExists, users.create_user, s, "alice", PASSWORD, hasher=FAST) == "用户 alice 已存在"
        )
        assert error(InvalidArgument, users.update_user, s, "alice", role="root") == "无效的角色: root"
        assert error(InvalidArgument, users.update_user, s, "alice", password="short") == "密码长度至少为8位"
        assert error(NotFound, users.get_user, s, "bob") == "用户 bob 不存在"
        assert error(NotFound, users.update_user, s, "bob", role="admin") == "用户 bob 不存在"
        assert error(NotFound, users.delete_user, s, "bob") == "用户 bob 不存在"


def test_default_role_is_viewer(db: Database) -> None:
    with db.session() as s:
        assert users.create_user(s, "alice", PASSWORD, hasher=FAST).role == "viewer"


def test_update_changes_only_given_fields(db: Database) -> None:
    add(db, "alice")
    with db.session() as s:
        users.update_user(s, "alice", role="operator")
    assert login(db, "alice", PASSWORD).role == "operator"

    with db.session() as s:
        users.update_user(s, "alice", password="new-password", hasher=FAST)
    assert refused(db, "alice", PASSWORD) == "用户名或密码错误"
    user = login(db, "alice", "new-password")
    assert (user.role, user.disabled) == ("operator", False)


def test_password_reset_lifts_a_lockout(db: Database) -> None:
    add(db, "alice")
    for _ in range(5):
        refused(db, "alice", "wrong-password")
    with db.session() as s:
        users.update_user(s, "alice", password="new-password", hasher=FAST)
    assert login(db, "alice", "new-password").username == "alice"


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
        users.update_user(s, "root", role="admin", disabled=False, password="another-password", hasher=FAST)
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
    assert login(db, "admin", generated).role == "admin"

    password_file.unlink()
    with db.session() as s:
        assert users.ensure_admin(s, "admin", "", password_file, hasher=FAST) is None
        assert users.ensure_admin(s, "admin", "other-password", password_file, hasher=FAST) is None
    assert not password_file.exists()
    assert login(db, "admin", generated).username == "admin"


def test_ensure_admin_with_given_password_writes_no_file(db: Database, tmp_path: Path) -> None:
    password_file = tmp_path / "admin_password.txt"
    with db.session() as s:
        assert users.ensure_admin(s, "boss", "given-password", password_file, hasher=FAST) is None
    assert not password_file.exists()
    assert login(db, "boss", "given-password").role == "admin"


def test_ensure_admin_keeps_an_existing_admin(db: Database, tmp_path: Path) -> None:
    add(db, "root", "admin")
    password_file = tmp_path / "admin_password.txt"
    with db.session() as s:
        assert users.ensure_admin(s, "admin", "", password_file, hasher=FAST) is None
        assert [u.username for u in users.list_users(s)] == ["root"]
    assert not password_file.exists()

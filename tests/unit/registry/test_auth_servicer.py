"""AuthService and UserService over a real in-process gRPC channel: logins through the password
pool, lockout per username + address, token versions, refresh rotation, logout, the cookie."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from sqlalchemy import delete

from services.common.auth import TokenService, load_or_create_keys
from services.common.errors import reason_of
from services.common.server import ServiceServer
from services.registry.app import RegistryApp
from services.registry.db import Database, migrate
from services.registry.models import LoginFailureRow, SessionRow, UserRow
from services.registry.passwords import PasswordPool
from services.registry.server import make_authenticator
from services.registry.servicers.auth import register
from services.registry.settings import RegistrySettings
from services.registry.store import users
from zquant.scheduler.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    user_service_pb2,
    user_service_pb2_grpc,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "changed-password-1"
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
Code = grpc.StatusCode


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Env:
    app: RegistryApp
    clock: Clock
    auth: Any
    users: Any


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("registry")
    settings = RegistrySettings.from_env({"ZQ_SERVICE_TOKEN": "test-service-token", "ZQ_DATA_DIR": str(tmp)})
    db = Database(f"sqlite:///{tmp / 'registry.db'}")
    migrate(db.engine)
    keys = load_or_create_keys(settings.jwt_key_path, settings.jwks_path)
    tokens = TokenService(keys, settings.access_token_ttl, settings.refresh_token_ttl)
    clock = Clock()
    app = RegistryApp.create(settings, db, tokens, clock=clock, passwords=PasswordPool(FAST))

    server = ServiceServer("registry-test", make_authenticator(tokens, settings.service_token, app.users))
    server.add(register(server.server, app))
    port = await server.start("127.0.0.1", 0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Env(
        app,
        clock,
        auth_service_pb2_grpc.AuthServiceStub(channel),
        user_service_pb2_grpc.UserServiceStub(channel),
    )
    await channel.close(grace=None)
    await server.stop(0)
    db.dispose()


@pytest.fixture(autouse=True)
def seeded(env: Env) -> Iterator[None]:
    env.clock.now = T0
    with env.app.db.session() as s:
        for model in (SessionRow, UserRow, LoginFailureRow):
            s.execute(delete(model))
        for name, role in [("root", "admin"), ("oper", "operator"), ("view", "viewer")]:
            users.create_user(s, name, FAST.hash(PASSWORD), role)
    env.app.users.invalidate(None)
    yield


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def login(env: Env, username: str, password: str = PASSWORD, address: str = "10.0.0.1") -> Any:
    return await env.auth.Login(
        auth_service_pb2.LoginRequest(username=username, password=password),
        metadata=(("x-zq-client-address", address),),
    )


def refresh(env: Env, token: str) -> Any:
    return env.auth.RefreshToken(auth_service_pb2.RefreshTokenRequest(refresh_token=token))


def me(env: Env, token: str) -> Any:
    return env.auth.GetMe(auth_service_pb2.GetMeRequest(), metadata=bearer(token))


async def refused(call: Awaitable[Any]) -> tuple[str, str]:
    """The (message, reason) of a call that must fail UNAUTHENTICATED."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == Code.UNAUTHENTICATED, info.value.details()
    return info.value.details() or "", reason_of(info.value)


async def access(env: Env, username: str) -> tuple[tuple[str, str], ...]:
    return bearer((await login(env, username)).access_token)


async def fails(call: Awaitable[Any], code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    details = info.value.details()
    assert details is not None
    return details


async def test_login_issues_a_token_pair(env: Env) -> None:
    response = await login(env, "oper")
    assert response.token_type == "bearer"
    assert response.expires_in == env.app.settings.access_token_ttl
    claims = env.app.tokens.verify(response.access_token, "access")
    with env.app.db.session() as s:
        user_id = users.get_user(s, "oper").id
    assert (claims["sub"], claims["role"], claims["uid"], claims["ver"]) == ("oper", "operator", user_id, 0)
    refresh_claims = env.app.tokens.verify(response.refresh_token, "refresh")
    assert (refresh_claims["sub"], refresh_claims["sid"]) == ("oper", claims["sid"])


async def test_login_sets_the_http_only_cookie(env: Env) -> None:
    call = env.auth.Login(
        auth_service_pb2.LoginRequest(username="oper", password=PASSWORD),
        metadata=(("x-forwarded-proto", "https"),),
    )
    response = await call
    cookies = [v for k, v in await call.initial_metadata() if k == "set-cookie"]
    assert cookies == [
        f"access_token={response.access_token}; Max-Age={env.app.settings.access_token_ttl}; "
        "Path=/api/; HttpOnly; SameSite=Strict; Secure"
    ]


async def test_the_cookie_alone_authenticates_only_reads(env: Env) -> None:
    token = (await login(env, "root")).access_token
    cookie = (("cookie", f"access_token={token}"),)
    assert (await env.auth.GetMe(auth_service_pb2.GetMeRequest(), metadata=cookie)).username == "root"
    call = env.auth.Logout(auth_service_pb2.LogoutRequest(), metadata=cookie)
    assert await refused(call) == ("未提供认证令牌", "LOGIN_REQUIRED")


async def test_unknown_and_known_usernames_get_the_same_answer(env: Env) -> None:
    wrong = ("用户名或密码错误", "BAD_CREDENTIALS")
    assert await refused(login(env, "oper", "wrong-password")) == wrong
    assert await refused(login(env, "nobody", "wrong-password")) == wrong
    assert await refused(login(env, "not a name", "wrong-password")) == wrong


async def test_login_failures(env: Env) -> None:
    assert await fails(login(env, "", PASSWORD), Code.INVALID_ARGUMENT) == "用户名和密码不能为空"
    assert await fails(login(env, "oper", ""), Code.INVALID_ARGUMENT) == "用户名和密码不能为空"


async def test_lockout_is_per_address_backs_off_and_an_admin_unlocks(env: Env) -> None:
    for _ in range(4):
        await refused(login(env, "view", "wrong-password"))
    locked = ("登录失败次数过多，请30秒后再试", "BAD_CREDENTIALS")
    assert await refused(login(env, "view", "wrong-password")) == locked
    # The right password is refused while locked (without hashing), from this address only.
    assert await refused(login(env, "view")) == ("登录失败次数过多，请30秒后再试", "ACCOUNT_LOCKED")
    assert (await login(env, "view", address="10.0.0.2")).access_token
    env.clock.now = T0 + timedelta(seconds=30)
    doubled = ("登录失败次数过多，请60秒后再试", "BAD_CREDENTIALS")
    assert await refused(login(env, "view", "wrong-password")) == doubled
    admin = await access(env, "root")
    unlocked = await env.users.UnlockUser(user_service_pb2.UnlockUserRequest(username="view"), metadata=admin)
    assert (unlocked.message, unlocked.cleared) == ("用户 view 已解锁", 1)
    assert (await login(env, "view")).access_token


async def test_disabled_user_cannot_log_in(env: Env) -> None:
    with env.app.db.session() as s:
        users.update_user(s, "view", disabled=True)
    assert await refused(login(env, "view")) == ("用户已被禁用", "USER_DISABLED")
    # Without the right password nothing reveals that the account is disabled.
    assert await refused(login(env, "view", "wrong-password")) == ("用户名或密码错误", "BAD_CREDENTIALS")


async def test_a_refresh_token_works_once_and_its_reuse_ends_the_session(env: Env) -> None:
    pair = await login(env, "oper")
    fresh = await refresh(env, pair.refresh_token)
    assert fresh.token_type == "bearer"
    assert fresh.expires_in == env.app.settings.access_token_ttl
    assert (await me(env, fresh.access_token)).username == "oper"
    reused = ("刷新Token已被使用，登录已失效，请重新登录", "REFRESH_TOKEN_REUSED")
    assert await refused(refresh(env, pair.refresh_token)) == reused
    ended = ("登录已失效，请重新登录", "TOKEN_REVOKED")
    assert await refused(refresh(env, fresh.refresh_token)) == ended
    assert await refused(me(env, fresh.access_token)) == ended
    assert await refused(me(env, pair.access_token)) == ended


@pytest.mark.parametrize(
    "change",
    [{"password": NEW_PASSWORD}, {"role": "viewer"}, {"disabled": True}],
    ids=["password", "role", "disabled"],
)
async def test_a_change_of_the_user_refuses_its_old_tokens_at_once(env: Env, change: dict[str, Any]) -> None:
    pair = await login(env, "oper")
    assert (await me(env, pair.access_token)).role == "operator"  # its state is cached now
    admin = await access(env, "root")
    await env.users.UpdateUser(user_service_pb2.UpdateUserRequest(username="oper", **change), metadata=admin)
    reason = "USER_DISABLED" if "disabled" in change else "TOKEN_REVOKED"
    assert (await refused(me(env, pair.access_token)))[1] == reason
    assert (await refused(refresh(env, pair.refresh_token)))[1] == reason


async def test_a_recreated_username_does_not_accept_the_old_tokens(env: Env) -> None:
    pair = await login(env, "view")
    admin = await access(env, "root")
    await env.users.DeleteUser(user_service_pb2.DeleteUserRequest(username="view"), metadata=admin)
    await env.users.CreateUser(
        user_service_pb2.CreateUserRequest(username="view", password=PASSWORD, role="admin"), metadata=admin
    )
    assert (await refused(me(env, pair.access_token)))[1] == "TOKEN_INVALID"
    assert (await refused(refresh(env, pair.refresh_token)))[1] == "TOKEN_INVALID"


async def test_logout_ends_only_its_own_session_and_clears_the_cookie(env: Env) -> None:
    one, two = await login(env, "oper"), await login(env, "oper")
    call = env.auth.Logout(auth_service_pb2.LogoutRequest(), metadata=bearer(one.access_token))
    assert (await call).message == "已退出登录"
    assert ("set-cookie", "access_token=; Max-Age=0; Path=/api/; HttpOnly; SameSite=Strict") in list(
        await call.initial_metadata()
    )
    assert (await refused(me(env, one.access_token)))[1] == "TOKEN_REVOKED"
    assert (await refused(refresh(env, one.refresh_token)))[1] == "TOKEN_REVOKED"
    assert (await me(env, two.access_token)).username == "oper"


async def test_refresh_failures(env: Env) -> None:
    assert await fails(refresh(env, ""), Code.UNAUTHENTICATED) == "无效的刷新Token"
    assert await fails(refresh(env, "garbage"), Code.UNAUTHENTICATED) == "无效的刷新Token"
    pair = await login(env, "view")
    assert await fails(refresh(env, pair.access_token), Code.UNAUTHENTICATED) == "Token类型错误"


async def test_get_me(env: Env) -> None:
    me = await env.auth.GetMe(auth_service_pb2.GetMeRequest(), metadata=await access(env, "oper"))
    assert (me.username, me.role, me.disabled) == ("oper", "operator", False)
    assert me.HasField("created_at")
    assert me.created_at.seconds > 0


async def test_get_me_needs_an_access_token(env: Env) -> None:
    request = auth_service_pb2.GetMeRequest()
    assert await fails(env.auth.GetMe(request), Code.UNAUTHENTICATED) == "未提供认证令牌"
    refresh = (await login(env, "oper")).refresh_token
    assert (
        await fails(env.auth.GetMe(request, metadata=bearer(refresh)), Code.UNAUTHENTICATED)
        == "Token类型错误"
    )
    assert (
        await fails(env.auth.GetMe(request, metadata=bearer("garbage")), Code.UNAUTHENTICATED)
        == "无效的Token"
    )


async def test_admin_manages_users(env: Env) -> None:
    admin = await access(env, "root")
    created = await env.users.CreateUser(
        user_service_pb2.CreateUserRequest(username="alice", password="alice-password-1"), metadata=admin
    )
    assert (created.username, created.role, created.disabled) == ("alice", "viewer", False)
    assert created.HasField("created_at")

    listed = await env.users.ListUsers(user_service_pb2.ListUsersRequest(), metadata=admin)
    assert [(u.username, u.role) for u in listed.users] == [
        ("root", "admin"),
        ("oper", "operator"),
        ("view", "viewer"),
        ("alice", "viewer"),
    ]

    updated = await env.users.UpdateUser(
        user_service_pb2.UpdateUserRequest(username="alice", role="operator"), metadata=admin
    )
    assert (updated.role, updated.disabled) == ("operator", False)
    # Only the fields that are set change: the role stays when just the flag is sent.
    updated = await env.users.UpdateUser(
        user_service_pb2.UpdateUserRequest(username="alice", disabled=True), metadata=admin
    )
    assert (updated.role, updated.disabled) == ("operator", True)
    await env.users.UpdateUser(
        user_service_pb2.UpdateUserRequest(username="alice", disabled=False, password=NEW_PASSWORD),
        metadata=admin,
    )
    assert (await login(env, "alice", NEW_PASSWORD)).access_token

    deleted = await env.users.DeleteUser(user_service_pb2.DeleteUserRequest(username="alice"), metadata=admin)
    assert deleted.message == "用户 alice 已删除"
    assert await fails(login(env, "alice", NEW_PASSWORD), Code.UNAUTHENTICATED) == "用户名或密码错误"


async def test_user_admin_errors(env: Env) -> None:
    admin = await access(env, "root")

    def create(username: str, password: str = PASSWORD, role: str = "") -> Any:
        request = user_service_pb2.CreateUserRequest(username=username, password=password, role=role)
        return env.users.CreateUser(request, metadata=admin)

    assert await fails(create("oper"), Code.ALREADY_EXISTS) == "用户 oper 已存在"
    assert await fails(create("alice", role="root"), Code.INVALID_ARGUMENT) == "无效的角色: root"
    assert await fails(create("alice", password="short"), Code.INVALID_ARGUMENT) == "密码长度至少为12位"
    assert await fails(create("alice", password="password1234"), Code.INVALID_ARGUMENT) == (
        "密码过于常见，请换一个更难猜的密码"
    )
    assert await fails(create("bad name"), Code.INVALID_ARGUMENT)

    missing = user_service_pb2.UpdateUserRequest(username="ghost", role="viewer")
    assert await fails(env.users.UpdateUser(missing, metadata=admin), Code.NOT_FOUND) == "用户 ghost 不存在"
    delete_missing = user_service_pb2.DeleteUserRequest(username="ghost")
    assert (
        await fails(env.users.DeleteUser(delete_missing, metadata=admin), Code.NOT_FOUND)
        == "用户 ghost 不存在"
    )

    last = "不能删除或降级最后一个管理员"
    demote = user_service_pb2.UpdateUserRequest(username="root", role="operator")
    assert await fails(env.users.UpdateUser(demote, metadata=admin), Code.FAILED_PRECONDITION) == last
    delete_root = user_service_pb2.DeleteUserRequest(username="root")
    assert await fails(env.users.DeleteUser(delete_root, metadata=admin), Code.FAILED_PRECONDITION) == last


@pytest.mark.parametrize("username", ["oper", "view"])
async def test_only_admins_manage_users(env: Env, username: str) -> None:
    caller = await access(env, username)
    calls = [
        (env.users.ListUsers, user_service_pb2.ListUsersRequest()),
        (
            env.users.CreateUser,
            user_service_pb2.CreateUserRequest(username="mallory", password=PASSWORD, role="admin"),
        ),
        (env.users.UpdateUser, user_service_pb2.UpdateUserRequest(username=username, role="admin")),
        (env.users.DeleteUser, user_service_pb2.DeleteUserRequest(username="root")),
        (env.users.UnlockUser, user_service_pb2.UnlockUserRequest(username="root")),
    ]
    for method, request in calls:
        assert await fails(method(request, metadata=caller), Code.PERMISSION_DENIED) == "需要管理员权限"
    with env.app.db.session() as s:
        assert users.get_user(s, username).role != "admin"
        assert [u.username for u in users.list_users(s)] == ["root", "oper", "view"]


async def test_user_service_needs_a_token(env: Env) -> None:
    call = env.users.ListUsers(user_service_pb2.ListUsersRequest())
    assert await fails(call, Code.UNAUTHENTICATED) == "未提供认证令牌"


async def test_two_admins_demoted_at_once_on_sqlite_leave_one_admin(env: Env) -> None:
    # Another writer (here a bare connection) holds SQLite's write lock and demotes the second
    # admin; demoting the first meanwhile must see that (refused: the last admin), not count the
    # admins as they were and leave none.
    admin = await access(env, "root")
    with env.app.db.session() as s:
        users.create_user(s, "second", FAST.hash(PASSWORD), "admin")
    path = env.app.db.url.split("///", 1)[1]
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE zq_task_users SET role = 'viewer' WHERE username = 'second'")
        demote = asyncio.ensure_future(
            env.users.UpdateUser(
                user_service_pb2.UpdateUserRequest(username="root", role="viewer"), metadata=admin
            )
        )
        await asyncio.sleep(0.5)  # the update waits for the lock (or, unserialized, has counted already)
        other.execute("COMMIT")
    finally:
        other.close()
    assert await fails(demote, Code.FAILED_PRECONDITION) == users.LAST_ADMIN
    with env.app.db.session() as s:
        assert [user.username for user in users.list_users(s) if user.role == "admin"] == ["root"]

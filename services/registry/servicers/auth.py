"""AuthService (login, refresh, me) and UserService (admin-only user management)."""

from __future__ import annotations

from typing import Any

import grpc
from argon2 import PasswordHasher

from services.common.errors import InvalidArgument, NotFound, Unauthenticated
from services.common.server import current_principal
from services.registry.app import RegistryApp
from services.registry.convert import user_to_proto
from services.registry.store import users
from zquant.scheduler.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    task_pb2,
    user_service_pb2,
    user_service_pb2_grpc,
)

Context = grpc.aio.ServicerContext[Any, Any]

INVALID_REFRESH = "无效的刷新Token"
WRONG_TOKEN_TYPE = "Token类型错误"  # services.common.auth.TokenService.verify's message


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    def __init__(self, app: RegistryApp, *, hasher: PasswordHasher = users.DEFAULT_HASHER) -> None:
        self._app = app
        self._hasher = hasher

    def _pair(self, username: str, role: str) -> dict[str, Any]:
        tokens = self._app.tokens
        return {
            "access_token": tokens.issue(username, role, "access"),
            "refresh_token": tokens.issue(username, role, "refresh"),
            "token_type": "bearer",
            "expires_in": tokens.access_ttl,
        }

    async def Login(
        self, request: auth_service_pb2.LoginRequest, context: Context
    ) -> auth_service_pb2.LoginResponse:
        if not request.username or not request.password:
            raise InvalidArgument("用户名和密码不能为空")
        with self._app.db.session() as s:
            user = users.authenticate(
                s, request.username, request.password, self._app.clock(), hasher=self._hasher
            )
        return auth_service_pb2.LoginResponse(**self._pair(user.username, user.role))

    async def RefreshToken(
        self, request: auth_service_pb2.RefreshTokenRequest, context: Context
    ) -> auth_service_pb2.RefreshTokenResponse:
        try:
            claims = self._app.tokens.verify(request.refresh_token, "refresh")
        except Unauthenticated as exc:
            # As the original: a token of the wrong type says so, anything else is just invalid.
            raise Unauthenticated(
                WRONG_TOKEN_TYPE if exc.message == WRONG_TOKEN_TYPE else INVALID_REFRESH
            ) from exc
        with self._app.db.session() as s:
            try:
                user = users.get_user(s, claims["sub"])
            except NotFound as exc:
                raise Unauthenticated(INVALID_REFRESH) from exc
        if user.disabled:
            raise Unauthenticated(users.USER_DISABLED)
        # The role is re-read, so a demotion takes effect at the next refresh at the latest.
        return auth_service_pb2.RefreshTokenResponse(**self._pair(user.username, user.role))

    async def GetMe(self, request: auth_service_pb2.GetMeRequest, context: Context) -> task_pb2.User:
        principal = current_principal()
        with self._app.db.session() as s:
            try:
                user = users.get_user(s, principal.username)
            except NotFound as exc:
                raise Unauthenticated("用户不存在") from exc
        me = user_to_proto(user)
        # The role this token grants, which is what every other call is checked against.
        me.role = principal.role
        return me


class UserServicer(user_service_pb2_grpc.UserServiceServicer):  # type: ignore[misc]
    def __init__(self, app: RegistryApp, *, hasher: PasswordHasher = users.DEFAULT_HASHER) -> None:
        self._app = app
        self._hasher = hasher

    async def ListUsers(
        self, request: user_service_pb2.ListUsersRequest, context: Context
    ) -> user_service_pb2.ListUsersResponse:
        current_principal().require("admin")
        with self._app.db.session() as s:
            rows = users.list_users(s)
        return user_service_pb2.ListUsersResponse(users=[user_to_proto(row) for row in rows])

    async def CreateUser(
        self, request: user_service_pb2.CreateUserRequest, context: Context
    ) -> task_pb2.User:
        current_principal().require("admin")
        with self._app.db.session() as s:
            user = users.create_user(
                s, request.username, request.password, request.role or "viewer", hasher=self._hasher
            )
        return user_to_proto(user)

    async def UpdateUser(
        self, request: user_service_pb2.UpdateUserRequest, context: Context
    ) -> task_pb2.User:
        current_principal().require("admin")
        with self._app.db.session() as s:
            user = users.update_user(
                s,
                request.username,
                role=request.role if request.HasField("role") else None,
                password=request.password if request.HasField("password") else None,
                disabled=request.disabled if request.HasField("disabled") else None,
                hasher=self._hasher,
            )
        self._app.users.invalidate(request.username)
        return user_to_proto(user)

    async def DeleteUser(
        self, request: user_service_pb2.DeleteUserRequest, context: Context
    ) -> user_service_pb2.DeleteUserResponse:
        current_principal().require("admin")
        with self._app.db.session() as s:
            users.delete_user(s, request.username)
        self._app.users.invalidate(request.username)
        return user_service_pb2.DeleteUserResponse(message=f"用户 {request.username} 已删除")


def register(
    server: grpc.aio.Server, app: RegistryApp, *, hasher: PasswordHasher = users.DEFAULT_HASHER
) -> list[str]:
    """Adds both servicers to `server` and returns their full service names."""
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(app, hasher=hasher), server)
    user_service_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(app, hasher=hasher), server)
    return [
        auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
        user_service_pb2.DESCRIPTOR.services_by_name["UserService"].full_name,
    ]

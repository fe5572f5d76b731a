"""AuthService (login, refresh, logout, me) and UserService (admin-only user management).

Password hashing and verification run in the app's PasswordPool, never on the event loop, and
between short transactions (no transaction waits for a hash). The rules live in
services.registry.store.users (token versions, sessions, lockout) and services.registry.passwords.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
from sqlalchemy.orm import Session

from services.common.auth import TokenSubject
from services.common.errors import InvalidArgument, NotFound, Reason, Unauthenticated
from services.common.guard import current_principal
from services.registry.app import RegistryApp
from services.registry.convert import user_to_proto
from services.registry.models import UserRow
from services.registry.servicers.audit import caller, client_address
from services.registry.session_cookie import clear_access_cookie, set_access_cookie
from services.registry.store import audit, users
from services.registry.store.audit import Action, Target
from zquant.scheduler.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    task_pb2,
    user_service_pb2,
    user_service_pb2_grpc,
)

Context = grpc.aio.ServicerContext[Any, Any]

WRONG_TOKEN_TYPE = "Token类型错误"  # services.common.auth.TokenService.verify's message


def _metadata(context: Context) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def _pair(self, context: Context, subject: TokenSubject, refresh_jti: str) -> dict[str, Any]:
        tokens = self._app.tokens
        access = tokens.issue(subject, "access")
        await context.send_initial_metadata(
            (set_access_cookie(access, tokens.access_ttl, _metadata(context)),)
        )
        return {
            "access_token": access,
            "refresh_token": tokens.issue(subject, "refresh", jti=refresh_jti),
            "token_type": "bearer",
            "expires_in": tokens.access_ttl,
        }

    @property
    def _refresh_ttl(self) -> timedelta:
        return timedelta(seconds=self._app.tokens.refresh_ttl)

    async def Login(
        self, request: auth_service_pb2.LoginRequest, context: Context
    ) -> auth_service_pb2.LoginResponse:
        if not request.username or not request.password:
            raise InvalidArgument("用户名和密码不能为空")
        username, address, app = request.username, client_address(context), self._app
        # A name no user can have gets the same work and answer as an unknown one, but no counter.
        countable = users.is_valid_username(username)
        password_hash = None
        if countable:

            def stored_hash(s: Session) -> str | None:
                users.check_login_lock(s, username, address, app.clock())
                user = users.find_user(s, username)
                return user.password_hash if user is not None else None

            password_hash = await app.db.run(stored_hash)
        matches = await app.passwords.verify(password_hash, request.password)
        # Logins are audited under the name tried, from the client's address (a name no user can
        # have is not: it would only let anyone fill the log).
        attempt = audit.Actor(username, address)
        if not matches:
            message = users.BAD_CREDENTIALS
            if countable:

                def refused(s: Session) -> str:
                    self._audit_login(s, attempt, Action.USER_LOGIN_FAILED, "bad_credentials")
                    return users.record_login_failure(s, username, address, app.clock())

                message = await app.db.run(refused)
            raise Unauthenticated(message, reason=Reason.BAD_CREDENTIALS)
        rehashed = (
            await app.passwords.hash(request.password)
            if password_hash is not None and app.passwords.needs_rehash(password_hash)
            else None
        )

        def start(s: Session) -> users.IssuedSession | None:
            """The new session; None for a disabled user (whose failures are cleared all the same)."""
            user = users.find_user(s, username)
            if user is None or user.password_hash != password_hash:  # deleted or changed meanwhile
                raise Unauthenticated(users.BAD_CREDENTIALS, reason=Reason.BAD_CREDENTIALS)
            users.clear_login_failures(s, username, address)
            if user.disabled:
                self._audit_login(s, attempt, Action.USER_LOGIN_FAILED, "disabled")
                return None
            if rehashed is not None:
                user.password_hash = rehashed
            self._audit_login(s, attempt, Action.USER_LOGIN)
            return users.start_session(s, user, app.clock(), self._refresh_ttl)

        issued = await app.db.run(start)
        if issued is None:
            raise Unauthenticated(users.USER_DISABLED, reason=Reason.USER_DISABLED)
        return auth_service_pb2.LoginResponse(**await self._pair(context, issued.subject, issued.refresh_jti))

    def _audit_login(self, s: Session, attempt: audit.Actor, action: Action, reason: str = "") -> None:
        audit.record(
            s,
            audit.entry(
                attempt,
                action,
                Target.USER,
                attempt.username,
                self._app.clock(),
                name=attempt.username,
                changes={"reason": reason} if reason else None,
            ),
        )

    async def RefreshToken(
        self, request: auth_service_pb2.RefreshTokenRequest, context: Context
    ) -> auth_service_pb2.RefreshTokenResponse:
        try:
            claims = self._app.tokens.verify(request.refresh_token, "refresh")
        except Unauthenticated as exc:
            # As the original: a token of the wrong type says so, anything else is just invalid.
            raise Unauthenticated(
                WRONG_TOKEN_TYPE if exc.message == WRONG_TOKEN_TYPE else users.INVALID_REFRESH,
                reason=Reason.TOKEN_INVALID,
            ) from exc
        presented = TokenSubject.from_claims(claims)
        try:
            issued = await self._app.db.run(
                lambda s: users.rotate_session(
                    s, presented, str(claims["jti"]), self._app.clock(), self._refresh_ttl
                )
            )
        except Unauthenticated as exc:
            if exc.reason == Reason.REFRESH_TOKEN_REUSED:
                self._app.users.changed(presented.username)
            raise
        # The role is re-read, so a demotion takes effect at the next refresh at the latest.
        return auth_service_pb2.RefreshTokenResponse(
            **await self._pair(context, issued.subject, issued.refresh_jti)
        )

    async def Logout(
        self, request: auth_service_pb2.LogoutRequest, context: Context
    ) -> auth_service_pb2.LogoutResponse:
        principal = current_principal()
        if principal.session_id:
            session_id = principal.session_id
            await self._app.db.run(lambda s: users.revoke_session(s, session_id, principal.username))
            self._app.users.changed(principal.username)
        await context.send_initial_metadata((clear_access_cookie(_metadata(context)),))
        return auth_service_pb2.LogoutResponse(message="已退出登录")

    async def GetMe(self, request: auth_service_pb2.GetMeRequest, context: Context) -> task_pb2.User:
        principal = current_principal()
        try:
            user = await self._app.db.run(lambda s: users.get_user(s, principal.username))
        except NotFound as exc:
            raise Unauthenticated("用户不存在", reason=Reason.TOKEN_INVALID) from exc
        me = user_to_proto(user)
        # The role this token grants, which is what every other call is checked against.
        me.role = principal.role
        return me


class UserServicer(user_service_pb2_grpc.UserServiceServicer):  # type: ignore[misc]
    def __init__(self, app: RegistryApp) -> None:
        self._app = app

    async def ListUsers(
        self, request: user_service_pb2.ListUsersRequest, context: Context
    ) -> user_service_pb2.ListUsersResponse:
        current_principal().require("admin")
        now = self._app.clock()
        rows, locks = await self._app.db.run(lambda s: (users.list_users(s), users.locked_out(s, now)))
        return user_service_pb2.ListUsersResponse(
            users=[user_to_proto(row, locks.get(row.username)) for row in rows]
        )

    def _audit(
        self,
        s: Session,
        actor: audit.Actor,
        action: Action,
        username: str,
        changes: dict[str, Any] | None = None,
    ) -> None:
        audit.record(
            s,
            audit.entry(
                actor, action, Target.USER, username, self._app.clock(), name=username, changes=changes
            ),
        )

    async def CreateUser(
        self, request: user_service_pb2.CreateUserRequest, context: Context
    ) -> task_pb2.User:
        actor = caller(context, "admin")
        role = request.role or "viewer"
        users.check_new_user(request.username, request.password, role)
        password_hash = await self._app.passwords.hash(request.password)

        def create(s: Session) -> UserRow:
            user = users.create_user(s, request.username, password_hash, role)
            self._audit(s, actor, Action.USER_CREATE, user.username, {"role": role})
            return user

        return user_to_proto(await self._app.db.run(create))

    async def UpdateUser(
        self, request: user_service_pb2.UpdateUserRequest, context: Context
    ) -> task_pb2.User:
        actor = caller(context, "admin")
        role = request.role if request.HasField("role") else None
        password = request.password if request.HasField("password") else None
        users.check_update(request.username, role=role, password=password)
        password_hash = await self._app.passwords.hash(password) if password is not None else None
        disabled = request.disabled if request.HasField("disabled") else None

        def update(s: Session) -> UserRow:
            before = users.get_user(s, request.username)
            was = {"role": before.role, "disabled": before.disabled}
            user = users.update_user(
                s, request.username, role=role, password_hash=password_hash, disabled=disabled
            )
            changes: dict[str, Any] = audit.diff(was, {"role": user.role, "disabled": user.disabled})
            if password_hash is not None:
                changes["password"] = "changed"  # never the hash
            self._audit(s, actor, Action.USER_UPDATE, user.username, changes)
            return user

        # Serialized: the last-admin check decides on the admins as read (locked on PostgreSQL).
        user = await self._app.db.run(update, serialized=True)
        self._app.users.changed(request.username)
        return user_to_proto(user)

    async def DeleteUser(
        self, request: user_service_pb2.DeleteUserRequest, context: Context
    ) -> user_service_pb2.DeleteUserResponse:
        actor = caller(context, "admin")

        def delete(s: Session) -> None:
            users.delete_user(s, request.username)
            self._audit(s, actor, Action.USER_DELETE, request.username)

        await self._app.db.run(delete, serialized=True)  # as an update: the last-admin check
        self._app.users.changed(request.username)
        return user_service_pb2.DeleteUserResponse(message=f"用户 {request.username} 已删除")

    async def UnlockUser(
        self, request: user_service_pb2.UnlockUserRequest, context: Context
    ) -> user_service_pb2.UnlockUserResponse:
        actor = caller(context, "admin")

        def unlock(s: Session) -> int:
            cleared = users.unlock_user(s, request.username)
            self._audit(s, actor, Action.USER_UNLOCK, request.username, {"cleared": cleared})
            return cleared

        cleared = await self._app.db.run(unlock)
        return user_service_pb2.UnlockUserResponse(message=f"用户 {request.username} 已解锁", cleared=cleared)


def register(server: grpc.aio.Server, app: RegistryApp) -> list[str]:
    """Adds both servicers to `server` and returns their full service names."""
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(app), server)
    user_service_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(app), server)
    return [
        auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
        user_service_pb2.DESCRIPTOR.services_by_name["UserService"].full_name,
    ]

"""REST through the real Envoy: login, tokens, user administration, and what the gateway itself answers.

Every request goes to the stack's HTTP port (Envoy), so these tests see exactly what a browser or
curl sees: the HTTP status, the JSON body and the `{"detail": ...}` error shape.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from stack import Stack
from tests.integration.api import RFC3339_UTC, Api, error, parse_time, unique
from tests.integration.conftest import ADMIN_PASSWORD, USER_PASSWORD

PASSWORD = "pw-" + secrets.token_hex(6)
BAD_CREDENTIALS = "用户名或密码错误"
LOCKED = "登录失败次数过多，请30秒后再试"
LAST_ADMIN = "不能删除或降级最后一个管理员"


# ---- helpers ----------------------------------------------------------------------------------


def login(stack: Stack, username: str, password: str, source: str | None = None) -> httpx.Response:
    """POST /login, from the loopback address `source` (127.0.0.x: another client to the gateway's
    rate limits and the registry's lockout) when given."""
    with from_address(source) as client:
        return client.post(
            f"{stack.http_url}/api/v1/auth/login", json={"username": username, "password": password}
        )


def from_address(source: str | None) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(transport=transport, timeout=30)


def refresh(stack: Stack, token: str) -> httpx.Response:
    return httpx.post(f"{stack.http_url}/api/v1/auth/refresh", json={"refresh_token": token})


def make_user(admin: Api, role: str = "viewer", password: str = PASSWORD) -> str:
    username = unique(role)
    user = admin.ok(
        "POST", "/api/v1/auth/users", json={"username": username, "password": password, "role": role}
    )
    assert user["username"] == username and user["role"] == role
    return username


def claims(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


def assert_user(user: dict[str, Any], username: str, role: str) -> None:
    assert set(user) == {"username", "role", "disabled", "created_at"}, user
    assert user["username"] == username
    assert user["role"] == role
    assert user["disabled"] is False
    assert RFC3339_UTC.match(user["created_at"]), user


# ---- login ------------------------------------------------------------------------------------


def test_login_returns_a_bearer_token_pair(stack: Stack) -> None:
    response = login(stack, "admin", ADMIN_PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    access, refresh = claims(body["access_token"]), claims(body["refresh_token"])
    assert access["sub"] == refresh["sub"] == "admin"
    assert access["type"] == "access" and refresh["type"] == "refresh"
    assert abs(access["exp"] - access["iat"] - body["expires_in"]) <= 1


def test_login_with_a_wrong_password_or_unknown_user_is_401(stack: Stack, admin: Api) -> None:
    username = make_user(admin)
    error(login(stack, username, "wrong-password"), 401, BAD_CREDENTIALS)
    # An unknown username answers exactly the same (no user enumeration).
    error(login(stack, unique("nobody"), "wrong-password"), 401, BAD_CREDENTIALS)
    # One wrong password does not lock: the right one still works and resets the counter.
    assert login(stack, username, PASSWORD).status_code == 200


def test_login_without_credentials_is_400(stack: Stack) -> None:
    error(login(stack, "", ""), 400)
    error(httpx.post(f"{stack.http_url}/api/v1/auth/login", json={"username": "admin"}), 400)


def test_lockout_is_per_client_address_and_an_admin_unlocks(stack: Stack, admin: Api) -> None:
    username = make_user(admin)
    attacker, owner = "127.0.0.2", "127.0.0.3"
    for _ in range(4):
        error(
            login(stack, username, "wrong-password", attacker), 401, BAD_CREDENTIALS, reason="BAD_CREDENTIALS"
        )
    error(login(stack, username, "wrong-password", attacker), 401, LOCKED)
    # While locked, even the right password is refused, from that address only (a second may have
    # passed on a loaded machine: the seconds left are not compared).
    error(
        login(stack, username, PASSWORD, attacker), 401, contains="登录失败次数过多", reason="ACCOUNT_LOCKED"
    )
    assert login(stack, username, PASSWORD, owner).status_code == 200
    # An unknown username locks the same way: the lock does not tell which names exist.
    ghost = unique("ghost")
    for _ in range(4):
        error(login(stack, ghost, "wrong-password", attacker), 401, BAD_CREDENTIALS)
    error(login(stack, ghost, "wrong-password", attacker), 401, LOCKED)
    # The users list shows the lock, until when; an admin ends every lock of the user at once.
    listed = {user["username"]: user for user in admin.ok("GET", "/api/v1/auth/users")["users"]}
    assert parse_time(listed[username]["locked_until"]) > datetime.now(UTC)
    assert "locked_until" not in listed["admin"]
    unlocked = admin.ok("POST", f"/api/v1/auth/users/{username}/unlock", json={})
    assert unlocked == {"message": f"用户 {username} 已解锁", "cleared": 1}
    assert login(stack, username, PASSWORD, attacker).status_code == 200
    listed = {user["username"]: user for user in admin.ok("GET", "/api/v1/auth/users")["users"]}
    assert "locked_until" not in listed[username]
    error(admin.post("/api/v1/auth/users/nobody-here/unlock", json={}), 404, reason="USER_NOT_FOUND")


def test_weak_passwords_are_refused_with_the_reason(admin: Api) -> None:
    users = "/api/v1/auth/users"
    weak = [
        ("short-pw", "PASSWORD_TOO_SHORT"),
        ("password1234", "PASSWORD_TOO_COMMON"),
        ("1q2w3e4r5t6y", "PASSWORD_TOO_COMMON"),
    ]
    for password, reason in weak:
        error(admin.post(users, json={"username": unique("weak"), "password": password}), 400, reason=reason)
    username = make_user(admin)
    error(admin.put(f"{users}/{username}", json={"password": "12345678"}), 400, reason="PASSWORD_TOO_SHORT")


def test_a_disabled_user_cannot_log_in(stack: Stack, admin: Api) -> None:
    username = make_user(admin)
    user = admin.ok("PUT", f"/api/v1/auth/users/{username}", json={"disabled": True})
    assert user["disabled"] is True
    error(login(stack, username, PASSWORD), 401, "用户已被禁用")
    admin.ok("PUT", f"/api/v1/auth/users/{username}", json={"disabled": False})
    assert login(stack, username, PASSWORD).status_code == 200


# ---- refresh and me ---------------------------------------------------------------------------


def test_refresh_gives_a_new_working_pair(stack: Stack) -> None:
    first = login(stack, "admin", ADMIN_PASSWORD).json()
    response = httpx.post(
        f"{stack.http_url}/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert response.status_code == 200, response.text
    pair = response.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer" and isinstance(pair["expires_in"], int)
    assert pair["access_token"] != first["access_token"]
    assert pair["refresh_token"] != first["refresh_token"]
    me = Api(stack.http_url, pair["access_token"]).ok("GET", "/api/v1/auth/me")
    assert me["username"] == "admin" and me["role"] == "admin"
    # The new refresh token refreshes again.
    again = httpx.post(f"{stack.http_url}/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 200, again.text


def test_refresh_refuses_bad_tokens(stack: Stack, admin: Api) -> None:
    url = f"{stack.http_url}/api/v1/auth/refresh"
    error(httpx.post(url, json={"refresh_token": "garbage"}), 401, "无效的刷新Token")
    error(httpx.post(url, json={}), 401, "无效的刷新Token")
    # An access token is not a refresh token.
    error(httpx.post(url, json={"refresh_token": admin.token}), 401, "Token类型错误")


def test_a_refresh_token_works_once_and_its_reuse_ends_the_session(stack: Stack, admin: Api) -> None:
    username = make_user(admin, "operator")
    first = login(stack, username, PASSWORD).json()
    second = refresh(stack, first["refresh_token"])
    assert second.status_code == 200, second.text
    error(refresh(stack, first["refresh_token"]), 401, reason="REFRESH_TOKEN_REUSED")
    # The copy and the original both stopped working: the whole session is revoked.
    error(refresh(stack, second.json()["refresh_token"]), 401, reason="TOKEN_REVOKED")
    error(Api(stack.http_url, second.json()["access_token"]).get("/tasks"), 401, reason="TOKEN_REVOKED")


def test_a_password_change_refuses_the_old_tokens_at_once(stack: Stack, admin: Api) -> None:
    username = make_user(admin, "operator")
    pair = login(stack, username, PASSWORD).json()
    old = Api(stack.http_url, pair["access_token"])
    assert old.get("/tasks").status_code == 200
    admin.ok("PUT", f"/api/v1/auth/users/{username}", json={"password": "another-" + PASSWORD})
    error(old.get("/tasks"), 401, reason="TOKEN_REVOKED")
    error(refresh(stack, pair["refresh_token"]), 401, reason="TOKEN_REVOKED")
    assert login(stack, username, "another-" + PASSWORD).status_code == 200


def test_a_deleted_and_recreated_username_does_not_inherit_tokens(stack: Stack, admin: Api) -> None:
    username = make_user(admin, "viewer")
    pair = login(stack, username, PASSWORD).json()
    admin.ok("DELETE", f"/api/v1/auth/users/{username}")
    admin.ok(
        "POST", "/api/v1/auth/users", json={"username": username, "password": PASSWORD, "role": "operator"}
    )
    error(Api(stack.http_url, pair["access_token"]).get("/tasks"), 401, reason="TOKEN_INVALID")
    error(refresh(stack, pair["refresh_token"]), 401, reason="TOKEN_INVALID")


def test_logout_revokes_the_session_and_clears_the_cookie(stack: Stack, admin: Api) -> None:
    username = make_user(admin)
    pair, other = login(stack, username, PASSWORD).json(), login(stack, username, PASSWORD).json()
    user = Api(stack.http_url, pair["access_token"])
    response = user.post("/api/v1/auth/logout", json={})
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "已退出登录"}
    assert response.headers["set-cookie"] == "access_token=; Max-Age=0; Path=/api/; HttpOnly; SameSite=Strict"
    error(user.get("/api/v1/auth/me"), 401, reason="TOKEN_REVOKED")
    error(refresh(stack, pair["refresh_token"]), 401, reason="TOKEN_REVOKED")
    # Other sessions of the user stay.
    assert Api(stack.http_url, other["access_token"]).get("/api/v1/auth/me").status_code == 200


def burst(count: int, send: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """`count` requests, 16 at a time."""
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda _: send(), range(count)))


def test_login_is_rate_limited_per_client_address(stack: Stack) -> None:
    # The default limit: 60 at once, then one more a second. No password: the registry answers at
    # once (400, nothing to hash), so the requests come within a second or two.
    with from_address("127.0.0.4") as client:
        url = f"{stack.http_url}/api/v1/auth/login"
        answers = burst(80, lambda: client.post(url, json={"username": "flood", "password": ""}))
    codes = [r.status_code for r in answers]
    assert set(codes) == {400, 429} and 60 <= codes.count(400) < 70, codes
    limited = next(r for r in answers if r.status_code == 429)
    error(limited, 429, "请求过于频繁，请稍后再试", reason="RATE_LIMITED")
    assert limited.headers["retry-after"] == "1"
    # Another address is not affected.
    assert login(stack, "admin", ADMIN_PASSWORD, "127.0.0.5").status_code == 200


def test_triggers_are_rate_limited_per_user(stack: Stack, admin: Api) -> None:
    username = make_user(admin, "operator")
    user = Api.login(stack.http_url, username, PASSWORD)
    # A task that does not exist: the limit applies before the registry is asked. The default
    # limit per user: 60 at once, then five a second.
    answers = burst(90, lambda: user.post("/tasks/999999/trigger"))
    codes = [r.status_code for r in answers]
    assert set(codes) == {404, 429} and 60 <= codes.count(404) < 80, codes
    limited = next(r for r in answers if r.status_code == 429)
    error(limited, 429, reason="RATE_LIMITED")
    assert limited.headers["retry-after"] == "1"
    # Another user is not affected.
    assert admin.post("/tasks/999999/trigger").status_code == 404


def test_a_refresh_token_is_refused_as_an_access_token(stack: Stack) -> None:
    refresh = login(stack, "admin", ADMIN_PASSWORD).json()["refresh_token"]
    api = Api(stack.http_url, refresh)
    error(api.get("/tasks"), 401, "Token类型错误")
    error(api.get("/api/v1/auth/me"), 401)


def test_me_returns_the_caller_and_role(admin: Api, operator: Api, viewer: Api) -> None:
    for api, username, role in (
        (admin, "admin", "admin"),
        (operator, "op", "operator"),
        (viewer, "viewer", "viewer"),
    ):
        me = api.ok("GET", "/api/v1/auth/me")
        assert_user(me, username, role)


# ---- tokens at the gateway --------------------------------------------------------------------


# Every endpoint of CONTRACT.md that needs a token.
PROTECTED = [
    ("GET", "/api/v1/auth/me"),
    ("GET", "/api/v1/auth/users"),
    ("POST", "/api/v1/auth/users"),
    ("PUT", "/api/v1/auth/users/admin"),
    ("DELETE", "/api/v1/auth/users/admin"),
    ("POST", "/api/v1/scheduler/tasks"),
    ("GET", "/api/v1/scheduler/tasks"),
    ("GET", "/api/v1/scheduler/tasks/1"),
    ("PUT", "/api/v1/scheduler/tasks/1"),
    ("DELETE", "/api/v1/scheduler/tasks/1"),
    ("POST", "/api/v1/scheduler/tasks/1/enable"),
    ("POST", "/api/v1/scheduler/tasks/1/disable"),
    ("POST", "/api/v1/scheduler/tasks/1/pause"),
    ("POST", "/api/v1/scheduler/tasks/1/resume"),
    ("POST", "/api/v1/scheduler/tasks/1/trigger"),
    ("GET", "/api/v1/scheduler/tasks/1/executions"),
    ("GET", "/api/v1/scheduler/tasks/1/executions/1"),
    ("GET", "/api/v1/scheduler/tasks/1/executions/1/watch"),
    ("POST", "/api/v1/scheduler/executions/1/terminate"),
    ("GET", "/api/v1/scheduler/executions"),
    ("GET", "/api/v1/scheduler/stats"),
    ("GET", "/api/v1/scheduler/tasks/1/workflow"),
    ("POST", "/api/v1/scheduler/tasks/1/workflow/validate"),
    ("GET", "/api/v1/scheduler/cron/preview"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_token_is_401_jwt_is_missing(anonymous: Api, method: str, path: str) -> None:
    response = anonymous.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "Jwt is missing", "reason": "LOGIN_REQUIRED"}
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_garbage_and_forged_tokens_are_401(stack: Stack) -> None:
    error(Api(stack.http_url, "garbage").get("/tasks"), 401)
    error(Api(stack.http_url, "abc.def.ghi").get("/tasks"), 401)
    # A well-formed token claiming admin, signed with somebody else's key under the real kid.
    kid = json.loads(stack.config.jwks_path.read_text())["keys"][0]["kid"]
    now = int(time.time())
    forged_claims = {
        "iss": "zquant-scheduler",
        "aud": "zquant-scheduler-api",
        "sub": "admin",
        "role": "admin",
        "type": "access",
        "iat": now,
        "exp": now + 600,
    }
    forged = jwt.encode(
        forged_claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": kid}
    )
    error(Api(stack.http_url, forged).get("/tasks"), 401, "Jwt verification fails")
    error(
        Api(stack.http_url, forged).post(
            "/tasks", json={"name": unique("forged"), "task_type": "example_task"}
        ),
        401,
    )
    # "alg: none" is never accepted.
    unsigned = jwt.encode(forged_claims, key="", algorithm="none")
    error(Api(stack.http_url, unsigned).get("/tasks"), 401)


def test_an_expired_token_is_401(stack: Stack) -> None:
    key = (stack.data_dir / "jwt_signing_key.pem").read_bytes()
    kid = json.loads(stack.config.jwks_path.read_text())["keys"][0]["kid"]
    past = int(time.time()) - 3600
    expired = jwt.encode(
        {
            "iss": "zquant-scheduler",
            "aud": "zquant-scheduler-api",
            "sub": "admin",
            "role": "admin",
            "type": "access",
            "iat": past - 60,
            "exp": past,
        },
        key,
        algorithm="ES256",
        headers={"kid": kid},
    )
    error(Api(stack.http_url, expired).get("/tasks"), 401, "Jwt is expired")


def test_login_sets_the_http_only_cookie_and_it_only_reads(stack: Stack, viewer: Api) -> None:
    """EventSource cannot send headers: login sets an HttpOnly cookie that authorises reading only."""
    response = login(stack, "viewer", USER_PASSWORD)
    token = response.json()["access_token"]
    assert response.headers["set-cookie"] == (
        f"access_token={token}; Max-Age={response.json()['expires_in']}; Path=/api/; HttpOnly; SameSite=Strict"
    )
    with httpx.Client(base_url=stack.http_url, cookies={"access_token": token}) as client:
        me = client.get("/api/v1/auth/me")
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "viewer"
        tasks = client.get("/api/v1/scheduler/tasks")
        assert tasks.status_code == 200, tasks.text
        assert "tasks" in tasks.json()
    with httpx.Client(base_url=stack.http_url, cookies={"access_token": "garbage"}) as client:
        error(client.get("/api/v1/auth/me"), 401)


def test_a_cross_site_post_with_only_the_cookie_is_refused(stack: Stack, admin: Api) -> None:
    """CSRF: a page of another site can send text/plain and form posts with the cookie, nothing more."""
    name = unique("csrf")
    body = json.dumps({"name": name, "task_type": "common_task", "config": {"command": "id"}})
    with httpx.Client(base_url=stack.http_url, cookies={"access_token": admin.token or ""}) as client:
        plain = client.post("/api/v1/scheduler/tasks", content=body, headers={"content-type": "text/plain"})
        error(plain, 415, reason="CONTENT_TYPE_UNSUPPORTED")
        form = client.post("/api/v1/scheduler/tasks", data={"name": name, "task_type": "manual_task"})
        error(form, 415, reason="CONTENT_TYPE_UNSUPPORTED")
        # Even JSON needs the token in the Authorization header, which no other site can set.
        cookie_only = client.post(
            "/api/v1/scheduler/tasks", content=body, headers={"content-type": "application/json"}
        )
        error(cookie_only, 403, reason="AUTHORIZATION_HEADER_REQUIRED")
        error(client.post("/api/v1/scheduler/tasks/1/trigger"), 403, reason="AUTHORIZATION_HEADER_REQUIRED")
    # A form post with the header is refused too: changes take JSON bodies only.
    error(admin.post("/tasks", data={"name": name}), 415, reason="CONTENT_TYPE_UNSUPPORTED")
    assert all(task["name"] != name for task in admin.ok("GET", "/tasks", params={"limit": 100})["tasks"])


def test_reflection_needs_a_token_and_health_does_not(stack: Stack, admin: Api) -> None:
    with grpc.insecure_channel(stack.registry_addr) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as info:
            list(reflect(iter([request]), timeout=10))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        answers = list(
            reflect(iter([request]), timeout=10, metadata=(("authorization", f"Bearer {admin.token}"),))
        )
        names = {service.name for service in answers[0].list_services_response.service}
        assert "zquant.scheduler.v1.TaskService" in names


# ---- user administration ----------------------------------------------------------------------


def test_users_crud_as_admin(stack: Stack, admin: Api) -> None:
    username = unique("crud")
    created = admin.ok(
        "POST", "/api/v1/auth/users", json={"username": username, "password": PASSWORD, "role": "operator"}
    )
    assert_user(created, username, "operator")

    listed = admin.ok("GET", "/api/v1/auth/users")
    assert set(listed) == {"users"}
    mine = [u for u in listed["users"] if u["username"] == username]
    assert mine == [created]
    assert any(u["username"] == "admin" and u["role"] == "admin" for u in listed["users"])

    me = Api.login(stack.http_url, username, PASSWORD).ok("GET", "/api/v1/auth/me")
    assert me["role"] == "operator"

    updated = admin.ok("PUT", f"/api/v1/auth/users/{username}", json={"role": "viewer"})
    assert_user(updated, username, "viewer")
    # A fresh login carries the new role.
    assert Api.login(stack.http_url, username, PASSWORD).ok("GET", "/api/v1/auth/me")["role"] == "viewer"

    # Only the password changes: the role stays.
    updated = admin.ok("PUT", f"/api/v1/auth/users/{username}", json={"password": "other-" + PASSWORD})
    assert updated["role"] == "viewer"
    error(login(stack, username, PASSWORD), 401, BAD_CREDENTIALS)
    assert login(stack, username, "other-" + PASSWORD).status_code == 200

    deleted = admin.ok("DELETE", f"/api/v1/auth/users/{username}")
    assert set(deleted) == {"message"} and username in deleted["message"]
    assert all(u["username"] != username for u in admin.ok("GET", "/api/v1/auth/users")["users"])
    error(login(stack, username, "other-" + PASSWORD), 401, BAD_CREDENTIALS)


def test_create_user_defaults_to_viewer(admin: Api) -> None:
    username = unique("default")
    user = admin.ok("POST", "/api/v1/auth/users", json={"username": username, "password": PASSWORD})
    assert_user(user, username, "viewer")


def test_user_admin_errors(admin: Api) -> None:
    username = make_user(admin)
    users = "/api/v1/auth/users"
    error(
        admin.post(users, json={"username": username, "password": PASSWORD, "role": "viewer"}),
        409,
        f"用户 {username} 已存在",
    )
    error(
        admin.post(users, json={"username": unique("r"), "password": PASSWORD, "role": "king"}),
        400,
        "无效的角色: king",
    )
    error(
        admin.post(users, json={"username": unique("p"), "password": "short", "role": "viewer"}),
        400,
        "密码长度至少为12位",
    )
    error(admin.post(users, json={"username": "bad name!", "password": PASSWORD, "role": "viewer"}), 400)
    error(admin.post(users, json={"username": "", "password": PASSWORD, "role": "viewer"}), 400)
    missing = unique("missing")
    error(admin.put(f"{users}/{missing}", json={"role": "viewer"}), 404, f"用户 {missing} 不存在")
    error(admin.delete(f"{users}/{missing}"), 404, f"用户 {missing} 不存在")
    error(admin.put(f"{users}/{username}", json={"role": "king"}), 400, "无效的角色: king")
    error(admin.put(f"{users}/{username}", json={"password": "short"}), 400, "密码长度至少为12位")


def test_the_last_admin_cannot_be_removed_demoted_or_disabled(admin: Api) -> None:
    users = "/api/v1/auth/users"
    error(admin.delete(f"{users}/admin"), 400, LAST_ADMIN)
    error(admin.put(f"{users}/admin", json={"role": "operator"}), 400, LAST_ADMIN)
    error(admin.put(f"{users}/admin", json={"disabled": True}), 400, LAST_ADMIN)
    me = admin.ok("GET", "/api/v1/auth/me")
    assert me["role"] == "admin" and me["disabled"] is False
    # With a second admin, one of them may go.
    second = make_user(admin, role="admin")
    demoted = admin.ok("PUT", f"{users}/{second}", json={"role": "operator"})
    assert demoted["role"] == "operator"
    admin.ok("DELETE", f"{users}/{second}")


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_user_admin_is_403_for_operator_and_viewer(role: str, admin: Api, operator: Api, viewer: Api) -> None:
    api = operator if role == "operator" else viewer
    target = make_user(admin)
    users = "/api/v1/auth/users"
    for response in (
        api.get(users),
        api.post(users, json={"username": unique("x"), "password": PASSWORD, "role": "admin"}),
        api.put(f"{users}/{target}", json={"role": "admin"}),
        api.put(f"{users}/admin", json={"password": "hijacked-password"}),
        api.delete(f"{users}/{target}"),
    ):
        error(response, 403, "需要管理员权限")
    # Nothing changed.
    assert [u["role"] for u in admin.ok("GET", users)["users"] if u["username"] == target] == ["viewer"]


# ---- what the gateway answers itself ----------------------------------------------------------


def test_a_body_over_the_limit_is_413(admin: Api) -> None:
    name = unique("big")
    body = json.dumps({"name": name, "task_type": "example_task", "description": "x" * (2 * 1024 * 1024)})
    response = admin.post("/tasks", content=body, headers={"content-type": "application/json"})
    error(response, 413)
    assert admin.ok("GET", "/tasks", params={"name": name})["total"] == 0


def test_an_unknown_query_parameter_is_400(admin: Api) -> None:
    detail = error(admin.get("/tasks", params={"foo": "1"}), 400)
    assert "foo" in detail


def test_a_query_parameter_cannot_override_the_path_id(admin: Api) -> None:
    named = admin.create_task(name=unique("path"))
    other = admin.create_task(name=unique("query"))
    # The transcoder would let the query win; the gateway refuses such requests.
    for method, path, params in [
        ("GET", f"/tasks/{named['id']}", {"task_id": other["id"]}),
        ("GET", f"/tasks/{named['id']}", {"taskId": other["id"]}),
        ("DELETE", f"/tasks/{named['id']}", {"task_id": other["id"], "force": "true"}),
        ("GET", f"/tasks/{named['id']}/executions", {"task_id": other["id"]}),
        ("GET", "/executions/1", {"execution_id": 2}),
    ]:
        detail = error(admin.request(method, path, params=params), 400)
        assert "与路径中的值重复" in detail
    assert admin.get(f"/tasks/{other['id']}").status_code == 200  # nothing was deleted


def test_a_bad_path_id_or_query_value_is_400(admin: Api) -> None:
    error(admin.get("/tasks/abc"), 400)
    error(admin.get("/tasks", params={"limit": "many"}), 400)


def test_a_malformed_json_body_is_400(admin: Api) -> None:
    response = admin.post("/tasks", content=b'{"name": ', headers={"content-type": "application/json"})
    error(response, 400)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/scheduler/nope"),
        ("GET", "/api/v1/nope"),
        ("GET", "/nope"),
        ("DELETE", "/api/v1/scheduler/stats"),  # wrong method
        ("PATCH", "/api/v1/scheduler/tasks/1"),  # wrong method
        ("GET", "/api/v1/scheduler/tasks/1/trigger"),  # wrong method
    ],
)
def test_unknown_paths_and_wrong_methods_are_404(admin: Api, method: str, path: str) -> None:
    error(admin.request(method, path), 404)


def test_the_root_redirects_to_the_admin_page(stack: Stack) -> None:
    response = httpx.get(f"{stack.http_url}/", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"].endswith("/admin/scheduler/")
    page = httpx.get(f"{stack.http_url}/", follow_redirects=True)
    assert page.status_code == 200


def test_health_needs_no_token(stack: Stack) -> None:
    response = httpx.get(f"{stack.http_url}/healthz")
    assert response.status_code == 200


def test_times_are_utc(admin: Api) -> None:
    me = admin.ok("GET", "/api/v1/auth/me")
    created = datetime.fromisoformat(me["created_at"].replace("Z", "+00:00"))
    assert created.tzinfo is not None and created <= datetime.now(UTC)


def test_a_disabled_or_deleted_users_token_stops_working_at_once(stack: Stack, admin: Api) -> None:
    name = unique("gone")
    admin.ok(
        "POST", "/api/v1/auth/users", json={"username": name, "password": "pass-" + PASSWORD, "role": "admin"}
    )
    user = Api.login(stack.http_url, name, "pass-" + PASSWORD)
    assert user.get("/tasks").status_code == 200
    admin.ok("PUT", f"/api/v1/auth/users/{name}", json={"disabled": True})
    error(user.get("/tasks"), 401, "用户已被禁用")
    # Enabled again, the user logs in again: disabling ended the old sessions for good.
    admin.ok("PUT", f"/api/v1/auth/users/{name}", json={"disabled": False})
    error(user.get("/tasks"), 401, reason="TOKEN_REVOKED")
    user = Api.login(stack.http_url, name, "pass-" + PASSWORD)
    assert user.get("/tasks").status_code == 200
    admin.ok("DELETE", f"/api/v1/auth/users/{name}")
    error(user.get("/tasks"), 401, "用户不存在")


def test_a_demotion_applies_to_existing_tokens_at_once(stack: Stack, admin: Api) -> None:
    name = unique("demoted")
    admin.ok(
        "POST", "/api/v1/auth/users", json={"username": name, "password": "pass-" + PASSWORD, "role": "admin"}
    )
    user = Api.login(stack.http_url, name, "pass-" + PASSWORD)
    admin.ok("PUT", f"/api/v1/auth/users/{name}", json={"role": "viewer"})
    # The admin's token is void; a new login grants the new role.
    error(
        user.post("/tasks", json={"name": unique(), "task_type": "manual_task"}), 401, reason="TOKEN_REVOKED"
    )
    user = Api.login(stack.http_url, name, "pass-" + PASSWORD)
    error(user.post("/tasks", json={"name": unique(), "task_type": "manual_task"}), 403)
    assert user.ok("GET", "/api/v1/auth/me")["role"] == "viewer"

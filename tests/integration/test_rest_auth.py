"""REST through the real Envoy: login, tokens, user administration, and what the gateway itself answers.

Every request goes to the stack's HTTP port (Envoy), so these tests see exactly what a browser or
curl sees: the HTTP status, the JSON body and the `{"detail": ...}` error shape.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from services.stack import Stack
from tests.integration.api import RFC3339_UTC, Api, error, unique
from tests.integration.conftest import ADMIN_PASSWORD

PASSWORD = "pw-" + secrets.token_hex(6)
BAD_CREDENTIALS = "用户名或密码错误"
LOCKED = "账户已被锁定，请15分钟后再试"
LAST_ADMIN = "不能删除或降级最后一个管理员"


# ---- helpers ----------------------------------------------------------------------------------


def login(stack: Stack, username: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{stack.http_url}/api/v1/auth/login", json={"username": username, "password": password}
    )


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


def test_five_wrong_passwords_lock_the_username_for_15_minutes(stack: Stack, admin: Api) -> None:
    username = make_user(admin)
    other = make_user(admin)
    for _ in range(4):
        error(login(stack, username, "wrong-password"), 401, BAD_CREDENTIALS)
    error(login(stack, username, "wrong-password"), 401, LOCKED)
    # While locked, even the right password is refused.
    error(login(stack, username, PASSWORD), 401, LOCKED)
    # The lock is per username: another user and the admin are not affected.
    assert login(stack, other, PASSWORD).status_code == 200
    assert login(stack, "admin", ADMIN_PASSWORD).status_code == 200
    # An admin setting a new password is the way out of a lockout.
    admin.ok("PUT", f"/api/v1/auth/users/{username}", json={"password": "new-" + PASSWORD})
    assert login(stack, username, "new-" + PASSWORD).status_code == 200


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
    assert response.json() == {"detail": "Jwt is missing"}
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_garbage_and_forged_tokens_are_401(stack: Stack) -> None:
    error(Api(stack.http_url, "garbage").get("/tasks"), 401)
    error(Api(stack.http_url, "abc.def.ghi").get("/tasks"), 401)
    # A well-formed token claiming admin, signed with somebody else's key under the real kid.
    kid = json.loads(stack.jwks_path.read_text())["keys"][0]["kid"]
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
    kid = json.loads(stack.jwks_path.read_text())["keys"][0]["kid"]
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


def test_the_access_token_cookie_works_like_the_header(stack: Stack, viewer: Api) -> None:
    """EventSource cannot send headers; the UI puts the token in the access_token cookie."""
    assert viewer.token is not None
    with httpx.Client(base_url=stack.http_url, cookies={"access_token": viewer.token}) as client:
        me = client.get("/api/v1/auth/me")
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "viewer"
        tasks = client.get("/api/v1/scheduler/tasks")
        assert tasks.status_code == 200, tasks.text
        assert "tasks" in tasks.json()
        # The cookie carries the viewer's role, not more.
        error(
            client.post("/api/v1/scheduler/tasks", json={"name": unique("c"), "task_type": "example_task"}),
            403,
        )
    with httpx.Client(base_url=stack.http_url, cookies={"access_token": "garbage"}) as client:
        error(client.get("/api/v1/auth/me"), 401)


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
        "密码长度至少为8位",
    )
    error(admin.post(users, json={"username": "bad name!", "password": PASSWORD, "role": "viewer"}), 400)
    error(admin.post(users, json={"username": "", "password": PASSWORD, "role": "viewer"}), 400)
    missing = unique("missing")
    error(admin.put(f"{users}/{missing}", json={"role": "viewer"}), 404, f"用户 {missing} 不存在")
    error(admin.delete(f"{users}/{missing}"), 404, f"用户 {missing} 不存在")
    error(admin.put(f"{users}/{username}", json={"role": "king"}), 400, "无效的角色: king")
    error(admin.put(f"{users}/{username}", json={"password": "short"}), 400, "密码长度至少为8位")


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
        "POST", "/api/v1/auth/users", json={"username": name, "password": "password-1234", "role": "admin"}
    )
    user = Api.login(stack.http_url, name, "password-1234")
    assert user.get("/tasks").status_code == 200
    admin.ok("PUT", f"/api/v1/auth/users/{name}", json={"disabled": True})
    error(user.get("/tasks"), 401, "用户已被禁用")
    admin.ok("PUT", f"/api/v1/auth/users/{name}", json={"disabled": False})
    assert user.get("/tasks").status_code == 200
    admin.ok("DELETE", f"/api/v1/auth/users/{name}")
    error(user.get("/tasks"), 401, "用户不存在")


def test_a_demotion_applies_to_existing_tokens_at_once(stack: Stack, admin: Api) -> None:
    name = unique("demoted")
    admin.ok(
        "POST", "/api/v1/auth/users", json={"username": name, "password": "password-1234", "role": "admin"}
    )
    user = Api.login(stack.http_url, name, "password-1234")
    admin.ok("PUT", f"/api/v1/auth/users/{name}", json={"role": "viewer"})
    error(user.post("/tasks", json={"name": unique(), "task_type": "manual_task"}), 403)
    assert user.ok("GET", "/api/v1/auth/me")["role"] == "viewer"

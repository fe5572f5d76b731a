"""The audit log through the real Envoy and over gRPC, on both backends: every change through the API
is recorded with its actor, client address and what changed; only admins read it; runs show who
triggered and who terminated them."""

from __future__ import annotations

from typing import Any

import grpc
import httpx

from stack import Stack
from tests.integration.api import Api, error, parse_time, unique
from tests.integration.conftest import USER_PASSWORD
from tests.waiting import wait_for
from zquant.scheduler.v1 import audit_service_pb2, audit_service_pb2_grpc

LONG_CONFIG = {"duration_seconds": 20, "steps": 20}
ENTRY_FIELDS = {
    "id",
    "time",
    "actor",
    "address",
    "action",
    "target_type",
    "target_id",
    "target_name",
    "changes",
}


def entries(admin: Api, **filters: Any) -> list[dict[str, Any]]:
    page = admin.ok("GET", "/api/v1/audit", params={"limit": 500, **filters})
    assert page["total"] == len(page["entries"])
    result: list[dict[str, Any]] = page["entries"]
    return result


def test_each_task_change_is_recorded_with_its_actor_newest_first(
    stack: Stack, admin: Api, operator: Api
) -> None:
    task = admin.create_task(name=unique("audited"), config=LONG_CONFIG, tags=["a"])
    task_id = task["id"]
    admin.ok("PUT", f"/tasks/{task_id}", json={"max_retries": 0, "tags": ["a", "b"]})
    for action in ("disable", "enable", "pause", "resume"):
        operator.ok("POST", f"/tasks/{task_id}/{action}", json={})
    run = operator.ok("POST", f"/tasks/{task_id}/trigger", json={})["execution_id"]
    wait_for(
        lambda: admin.ok("GET", f"/tasks/{task_id}/executions/{run}")["status"] == "running",
        30,
        "the run to start",
    )
    operator.ok("POST", f"/executions/{run}/terminate", json={})
    ended = admin.wait_execution(task_id, run)
    assert (ended["status"], ended["triggered_by"], ended["terminated_by"]) == ("terminated", "op", "op")
    admin.ok("DELETE", f"/tasks/{task_id}")

    logged = entries(admin, target_type="task", target_id=str(task_id))
    assert [(e["action"], e["actor"]) for e in logged] == [
        ("task.delete", "admin"),
        ("task.trigger", "op"),
        ("task.resume", "op"),
        ("task.pause", "op"),
        ("task.enable", "op"),
        ("task.disable", "op"),
        ("task.update", "admin"),
        ("task.create", "admin"),
    ]
    assert all(set(e) == ENTRY_FIELDS and e["target_name"] == task["name"] for e in logged)
    assert all(e["address"] == "127.0.0.1" for e in logged)  # the client address the gateway saw
    times = [parse_time(e["time"]) for e in logged]
    assert times == sorted(times, reverse=True)
    assert logged[-1]["changes"]["tags"] == ["a"] and logged[-1]["changes"]["max_retries"] == 3
    assert logged[-2]["changes"] == {"max_retries": [3, 0], "tags": [["a"], ["a", "b"]]}
    assert logged[1]["changes"] == {"execution_id": run}
    terminated = entries(admin, action="execution.terminate", target_id=str(run))
    assert [(e["actor"], e["target_type"], e["target_name"]) for e in terminated] == [
        ("op", "execution", task["name"])
    ]


def test_a_refused_change_leaves_no_entry(admin: Api) -> None:
    name = unique("refused")
    error(admin.post("/tasks", json={"name": name, "task_type": "example_task", "tags": ["a b"]}), 400)
    assert not [e for e in entries(admin, action="task.create") if e["target_name"] == name]


def test_user_changes_are_recorded_without_the_password(stack: Stack, admin: Api) -> None:
    username = unique("audited-user")
    admin.ok("POST", "/api/v1/auth/users", json={"username": username, "password": USER_PASSWORD})
    admin.ok(
        "PUT", f"/api/v1/auth/users/{username}", json={"role": "operator", "password": USER_PASSWORD + "x"}
    )
    admin.ok("POST", f"/api/v1/auth/users/{username}/unlock", json={})
    admin.ok("DELETE", f"/api/v1/auth/users/{username}")
    logged = entries(admin, target_type="user", target_id=username)
    assert [(e["action"], e["actor"], e["changes"]) for e in logged] == [
        ("user.delete", "admin", {}),
        ("user.unlock", "admin", {"cleared": 0}),
        ("user.update", "admin", {"role": ["viewer", "operator"], "password": "changed"}),
        ("user.create", "admin", {"role": "viewer"}),
    ]

    address = stack.http_url.removeprefix("http://")
    with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel:
        page = audit_service_pb2_grpc.AuditServiceStub(channel).ListAuditEntries(
            audit_service_pb2.ListAuditEntriesRequest(target_type="user", target_id=username, limit=2),
            metadata=(("authorization", f"Bearer {admin.token}"),),
        )
    assert [entry.action for entry in page.entries] == ["user.delete", "user.unlock"] and page.total == 4


def test_only_admins_read_the_log_and_bad_filters_are_400(admin: Api, operator: Api, viewer: Api) -> None:
    for user in (operator, viewer):
        error(user.get("/api/v1/audit"), 403, reason="ROLE_REQUIRED")
    error(admin.get("/api/v1/audit", params={"action": "task.explode"}), 400, reason="FILTER_INVALID")
    error(admin.get("/api/v1/audit", params={"target_type": "host"}), 400, reason="FILTER_INVALID")
    error(admin.get("/api/v1/audit", params={"limit": 501}), 400, reason="PAGE_INVALID")


def test_logins_and_refused_logins_are_recorded_with_the_name_tried_and_the_address(
    stack: Stack, admin: Api
) -> None:
    username = unique("login-audit")
    admin.ok("POST", "/api/v1/auth/users", json={"username": username, "password": USER_PASSWORD})
    login = stack.http_url + "/api/v1/auth/login"
    assert (
        httpx.post(login, json={"username": username, "password": "not-" + USER_PASSWORD}).status_code == 401
    )
    Api.login(stack.http_url, username, USER_PASSWORD)
    admin.ok("PUT", f"/api/v1/auth/users/{username}", json={"disabled": True})
    assert httpx.post(login, json={"username": username, "password": USER_PASSWORD}).status_code == 401
    logins = [e for e in entries(admin, target_type="user", target_id=username) if "login" in e["action"]]
    assert [(e["action"], e["actor"], e["changes"]) for e in logins] == [
        ("user.login_failed", username, {"reason": "disabled"}),
        ("user.login", username, {}),
        ("user.login_failed", username, {"reason": "bad_credentials"}),
    ]
    assert all(e["address"] == "127.0.0.1" for e in logins)  # the client address the gateway saw

"""Task tags through the real Envoy and over gRPC, on both backends: set on create, batch create and
update, printed with every task, filtered on with `tag=`, and refused with TAG_INVALID when malformed."""

from __future__ import annotations

import grpc

from stack import Stack
from tests.integration.api import Api, error, unique
from zquant.scheduler.v1 import task_service_pb2, task_service_pb2_grpc


def tagged(admin: Api, tag: str) -> list[str]:
    return [task["name"] for task in admin.ok("GET", "/tasks", params={"tag": tag, "order": "asc"})["tasks"]]


def test_tags_are_set_printed_and_filtered_on_over_rest_and_grpc(stack: Stack, admin: Api) -> None:
    team, other = unique("team"), unique("其他")
    first = admin.create_task(name=unique("a"), tags=[team, "日报"])
    assert first["tags"] == [team, "日报"]
    batch = admin.ok(
        "POST",
        "/tasks:batchCreate",
        json={
            "tasks": [
                {"name": unique("b"), "task_type": "example_task", "tags": [team]},
                {"name": unique("c"), "task_type": "example_task", "tags": [other]},
            ]
        },
    )["tasks"]
    untagged = admin.create_task(name=unique("d"))
    assert untagged["tags"] == [] and [task["tags"] for task in batch] == [[team], [other]]
    assert tagged(admin, team) == [first["name"], batch[0]["name"]]

    changed = admin.ok("PUT", f"/tasks/{first['id']}", json={"tags": [other]})
    assert changed["tags"] == [other]
    assert tagged(admin, team) == [batch[0]["name"]]
    assert tagged(admin, other) == [first["name"], batch[1]["name"]]
    assert admin.ok("GET", f"/tasks/{first['id']}")["tags"] == [other]

    address = stack.http_url.removeprefix("http://")
    with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel:
        stub = task_service_pb2_grpc.TaskServiceStub(channel)
        metadata = (("authorization", f"Bearer {admin.token}"),)
        created = stub.CreateTask(
            task_service_pb2.CreateTaskRequest(name=unique("e"), task_type="example_task", tags=[team]),
            metadata=metadata,
        )
        page = stub.ListTasks(task_service_pb2.ListTasksRequest(tag=team, order="asc"), metadata=metadata)
    assert [task.name for task in page.tasks] == [batch[0]["name"], created.name] and page.total == 2
    assert list(created.tags) == [team]


def test_malformed_tags_are_refused_with_a_reason_and_nothing_is_stored(admin: Api) -> None:
    name = unique("bad")
    for tags, says in [
        (["a b"], "标签只能包含"),
        (["x" * 33], "标签长度"),
        ([f"t{i}" for i in range(11)], "最多10个标签"),
        (["a", "a"], "标签重复"),
        ("a", "标签必须是字符串数组"),
    ]:
        body = {"name": name, "task_type": "example_task", "tags": tags}
        error(admin.post("/tasks", json=body), 400, contains=says, reason="TAG_INVALID")
    assert admin.ok("GET", "/tasks", params={"name": name})["total"] == 0
    task = admin.create_task(name=name, tags=["ok"])
    error(admin.put(f"/tasks/{task['id']}", json={"tags": ["有 空格"]}), 400, reason="TAG_INVALID")
    assert admin.ok("GET", f"/tasks/{task['id']}")["tags"] == ["ok"]
    error(admin.get("/tasks", params={"tag": "a%b"}), 400, reason="TAG_INVALID")

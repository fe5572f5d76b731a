"""REST through the real Envoy: workflow nodes, workflow validation with the guide's messages, saving
workflows, children hidden from the task list, and delete rules for referenced tasks."""

from __future__ import annotations

import re
from typing import Any

from tests.integration.api import Api, error, unique

CYCLE = re.compile(r"^检测到循环依赖，任务 (\d+) 存在循环依赖关系$")


# ---- helpers ----------------------------------------------------------------------------------


def create(api: Api, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": unique(),
        "task_type": "example_task",
        "config": {"duration_seconds": 0.1, "steps": 1},
    }
    body.update(fields)
    task: dict[str, Any] = api.ok("POST", "/tasks", json=body)
    return task


def node(task: dict[str, Any], name: str, *dependencies: dict[str, Any]) -> dict[str, Any]:
    return {"task_id": task["id"], "name": name, "dependencies": [d["id"] for d in dependencies]}


def workflow_config(*nodes: dict[str, Any], workflow_type: str = "serial", **extra: Any) -> dict[str, Any]:
    return {"workflow_type": workflow_type, "tasks": list(nodes), "on_failure": "stop", **extra}


VALID = {"valid": True, "message": "配置有效", "reason": "", "task_ids": []}


def validate(api: Api, config: dict[str, Any], task_id: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = api.ok("POST", f"/tasks/{task_id}/workflow/validate", json=config)
    assert set(result) == {"valid", "message", "reason", "task_ids"}, result
    return result


def listed_ids(api: Api, name: str, **params: Any) -> set[int]:
    result = api.ok("GET", "/tasks", params={"name": name, **params})
    assert result["total"] == len(result["tasks"])
    return {task["id"] for task in result["tasks"]}


# ---- nodes ------------------------------------------------------------------------------------


def test_workflow_nodes_in_config_order(admin: Api) -> None:
    extract, transform, load = create(admin), create(admin, interval_seconds=3600), create(admin)
    config = workflow_config(
        node(load, "加载", transform),
        node(extract, "抽取"),
        node(transform, "转换", extract),
        workflow_type="parallel",
    )
    workflow = create(admin, task_type="workflow", config=config)
    result = admin.ok("GET", f"/tasks/{workflow['id']}/workflow")
    assert set(result) == {"tasks"}
    nodes = result["tasks"]
    assert [t["id"] for t in nodes] == [load["id"], extract["id"], transform["id"]]
    assert [t["node_name"] for t in nodes] == ["加载", "抽取", "转换"]
    assert [t["dependencies"] for t in nodes] == [[transform["id"]], [], [extract["id"]]]
    # Each node is the whole task.
    assert nodes[2]["name"] == transform["name"] and nodes[2]["interval_seconds"] == 3600
    assert nodes[1]["task_type"] == "example_task" and nodes[1]["config"] == extract["config"]
    assert all(isinstance(t["id"], int) for t in nodes)


def test_workflow_nodes_errors(admin: Api) -> None:
    plain = create(admin)
    error(admin.get(f"/tasks/{plain['id']}/workflow"), 400, f"任务 {plain['id']} 不是编排任务")
    error(admin.get("/tasks/99999999/workflow"), 404, "任务 99999999 不存在")


# ---- validate ---------------------------------------------------------------------------------


def test_validate_a_valid_config(admin: Api, viewer: Api) -> None:
    first, second = create(admin), create(admin)
    config = workflow_config(node(first, "任务1"), node(second, "任务2", first))
    assert validate(admin, config) == VALID
    # Any role may validate, and the path id names the workflow being edited.
    workflow = create(admin, task_type="workflow", config=config)
    assert validate(viewer, config, workflow["id"]) == VALID
    # The guide's own example shape, with real ids.
    guide = {
        "workflow_type": "serial",
        "tasks": [{"task_id": first["id"], "name": "任务1", "dependencies": []}],
        "on_failure": "stop",
    }
    assert validate(admin, guide) == VALID
    # dependencies and on_failure are optional.
    assert validate(admin, {"workflow_type": "parallel", "tasks": [{"task_id": first["id"], "name": "x"}]})[
        "valid"
    ]


def test_validate_reports_missing_tasks(admin: Api) -> None:
    existing = create(admin)
    config = workflow_config(
        node(existing, "有"),
        {"task_id": 99999998, "name": "无1", "dependencies": []},
        {"task_id": 99999999, "name": "无2", "dependencies": []},
    )
    assert validate(admin, config) == {
        "valid": False,
        "message": "以下任务不存在: {99999998, 99999999}",
        "reason": "WORKFLOW_INVALID",
        "task_ids": [99999998, 99999999],
    }


def test_validate_reports_a_cycle(admin: Api) -> None:
    a, b, c = create(admin), create(admin), create(admin)
    config = workflow_config(node(a, "A", c), node(b, "B", a), node(c, "C", b))
    result = validate(admin, config)
    assert result["valid"] is False
    match = CYCLE.match(result["message"])
    assert match is not None, result
    assert int(match.group(1)) in {a["id"], b["id"], c["id"]}
    # The cycle's members, for the editor to mark.
    assert result["reason"] == "WORKFLOW_CYCLE"
    assert sorted(result["task_ids"]) == sorted([a["id"], b["id"], c["id"]])
    # A task depending on itself is a cycle too.
    result = validate(admin, workflow_config(node(a, "A", a)))
    assert result == {
        "valid": False,
        "message": f"检测到循环依赖，任务 {a['id']} 存在循环依赖关系",
        "reason": "WORKFLOW_CYCLE",
        "task_ids": [a["id"]],
    }


def test_validate_reports_disabled_tasks(admin: Api) -> None:
    on, off = create(admin), create(admin, enabled=False)
    result = validate(admin, workflow_config(node(on, "开"), node(off, "关")))
    assert result == {
        "valid": False,
        "message": f"以下任务未启用: [{off['id']}]",
        "reason": "WORKFLOW_INVALID",
        "task_ids": [off["id"]],
    }


def test_validate_reports_bad_shapes(admin: Api) -> None:
    task = create(admin)
    bad_type = validate(admin, workflow_config(node(task, "x"), workflow_type="sideways"))
    assert bad_type["valid"] is False and "sideways" in bad_type["message"]
    assert validate(admin, {"tasks": [node(task, "x")]})["valid"] is False  # no workflow_type
    empty = validate(admin, workflow_config())
    assert empty["valid"] is False and empty["message"]
    no_id = validate(admin, workflow_config({"name": "无ID"}))
    assert no_id == {
        "valid": False,
        "message": "任务配置中缺少 task_id",
        "reason": "WORKFLOW_INVALID",
        "task_ids": [],
    }
    outside = validate(
        admin, workflow_config({"task_id": task["id"], "name": "x", "dependencies": [99999999]})
    )
    assert outside["valid"] is False and "99999999" in outside["message"]
    bad_failure = validate(admin, workflow_config(node(task, "x"), on_failure="explode"))
    assert bad_failure["valid"] is False and "explode" in bad_failure["message"]


def test_a_workflow_cannot_contain_itself(admin: Api) -> None:
    task = create(admin)
    workflow = create(admin, task_type="workflow", config=workflow_config(node(task, "x")))
    config = workflow_config(node(task, "x"), node(workflow, "自己"))
    result = validate(admin, config, workflow["id"])
    assert result == {
        "valid": False,
        "message": f"检测到循环依赖，任务 {workflow['id']} 存在循环依赖关系",
        "reason": "WORKFLOW_CYCLE",
        "task_ids": [workflow["id"]],
    }
    error(
        admin.put(f"/tasks/{workflow['id']}", json={"config": config}),
        400,
        f"编排任务配置无效: {result['message']}",
    )


# ---- saving workflows -------------------------------------------------------------------------


def test_create_and_update_validate_the_workflow_config(admin: Api) -> None:
    task, off = create(admin), create(admin, enabled=False)
    missing = workflow_config(node(task, "x"), {"task_id": 99999999, "name": "无"})
    error(
        admin.post("/tasks", json={"name": unique(), "task_type": "workflow", "config": missing}),
        400,
        "编排任务配置无效: 以下任务不存在: {99999999}",
    )
    disabled = workflow_config(node(off, "关"))
    error(
        admin.post("/tasks", json={"name": unique(), "task_type": "workflow", "config": disabled}),
        400,
        f"编排任务配置无效: 以下任务未启用: [{off['id']}]",
    )
    cycle = workflow_config(node(task, "x", task))
    detail = error(
        admin.post("/tasks", json={"name": unique(), "task_type": "workflow", "config": cycle}), 400
    )
    assert detail == f"编排任务配置无效: 检测到循环依赖，任务 {task['id']} 存在循环依赖关系"
    error(
        admin.post("/tasks", json={"name": unique(), "task_type": "workflow", "config": {}}),
        400,
        contains="编排任务配置无效: ",
    )
    workflow = create(admin, task_type="workflow", config=workflow_config(node(task, "x")))
    error(
        admin.put(f"/tasks/{workflow['id']}", json={"config": missing}),
        400,
        "编排任务配置无效: 以下任务不存在: {99999999}",
    )
    assert admin.ok("GET", f"/tasks/{workflow['id']}")["config"] == workflow["config"]
    other = create(admin)
    updated = admin.ok(
        "PUT",
        f"/tasks/{workflow['id']}",
        json={"config": workflow_config(node(task, "x"), node(other, "y", task))},
    )
    assert [t["id"] for t in admin.ok("GET", f"/tasks/{workflow['id']}/workflow")["tasks"]] == [
        task["id"],
        other["id"],
    ]
    assert updated["config"]["tasks"][1]["dependencies"] == [task["id"]]


# ---- children in the task list ----------------------------------------------------------------


def test_children_are_hidden_from_the_list_unless_asked_for(admin: Api, viewer: Api) -> None:
    prefix = unique("tree")
    child = create(admin, name=f"{prefix}_child")
    loose = create(admin, name=f"{prefix}_loose")
    workflow = create(
        admin, name=f"{prefix}_flow", task_type="workflow", config=workflow_config(node(child, "c"))
    )
    assert listed_ids(admin, prefix) == {loose["id"], workflow["id"]}
    assert listed_ids(admin, prefix, include_children="true") == {child["id"], loose["id"], workflow["id"]}
    assert listed_ids(viewer, prefix) == {loose["id"], workflow["id"]}
    # Still reachable directly and through the workflow.
    assert admin.ok("GET", f"/tasks/{child['id']}")["id"] == child["id"]
    # Even a disabled workflow hides its children: they belong to it.
    admin.ok("POST", f"/tasks/{workflow['id']}/disable")
    assert listed_ids(admin, prefix) == {loose["id"], workflow["id"]}
    # Once no workflow references the task, it is listed again.
    admin.ok("PUT", f"/tasks/{workflow['id']}", json={"config": workflow_config(node(loose, "l"))})
    assert listed_ids(admin, prefix) == {child["id"], workflow["id"]}


# ---- delete -----------------------------------------------------------------------------------


def test_delete_is_refused_while_a_workflow_references_the_task(admin: Api) -> None:
    child, sibling = create(admin), create(admin)
    workflow = create(
        admin, task_type="workflow", config=workflow_config(node(child, "c"), node(sibling, "s", child))
    )
    detail = error(admin.delete(f"/tasks/{child['id']}"), 409)
    assert str(child["id"]) in detail and workflow["name"] in detail
    assert admin.ok("GET", f"/tasks/{child['id']}")["id"] == child["id"]
    # force deletes; the workflow then lists only the nodes that still exist.
    assert admin.ok("DELETE", f"/tasks/{child['id']}", params={"force": "true"}) == {"message": "任务已删除"}
    error(admin.get(f"/tasks/{child['id']}"), 404, f"任务 {child['id']} 不存在")
    nodes = admin.ok("GET", f"/tasks/{workflow['id']}/workflow")["tasks"]
    assert [t["id"] for t in nodes] == [sibling["id"]]
    # The workflow itself can be deleted, and then its children are free.
    assert admin.ok("DELETE", f"/tasks/{workflow['id']}") == {"message": "任务已删除"}
    assert admin.ok("DELETE", f"/tasks/{sibling['id']}") == {"message": "任务已删除"}


def test_validate_names_a_missing_workflow_type(admin: Api) -> None:
    result = admin.ok("POST", "/tasks/0/workflow/validate", json={})
    assert result == {
        "valid": False,
        "message": "编排任务配置中缺少 workflow_type，支持的模式：serial, parallel",
        "reason": "WORKFLOW_INVALID",
        "task_ids": [],
    }

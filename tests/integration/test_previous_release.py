"""Expand, then contract (docs/migrations.md): the previous release's registry keeps working while
this release's migration step runs under it, as in a rolling update.

"The previous release" is the code just before the newest migration: the first parent of the
first-parent commit that added this release's head revision (the last code written for the
previous schema). ZQ_PREVIOUS_RELEASE=<commit> names another. Its tree is taken with `git archive`
into a temporary directory and runs with this checkout's virtualenv (the pinned dependencies are
the same; its own gen/ goes first on the path).

On PostgreSQL, the production backend: the old registry starts on an empty schema and brings it
to its own head, the current `python -m services.registry.migrate` then takes it to this head
while the old registry runs, and the old registry's basic calls (login, create, list and trigger
tasks, the scheduler's claim and finish of a run) still work: nothing this release's migration does
breaks what the previous code reads or writes.

A shallow clone (CI checkouts with `fetch-depth: 1`) has not got the previous commit: the test is
skipped there with that reason; in a full clone a missing commit fails it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.registry.db import MIGRATIONS, Database, schema_revisions
from stack.ports import free_ports
from tests.conftest import postgres_schema_url
from tests.integration.api import unique
from tests.integration.conftest import ADMIN_PASSWORD
from zquant.scheduler.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    execution_service_pb2,
    execution_service_pb2_grpc,
    registry_internal_service_pb2,
    registry_internal_service_pb2_grpc,
    task_service_pb2,
    task_service_pb2_grpc,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVICE_TOKEN = "previous-release-service-token"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def head_revision_file() -> str:
    """The file of this release's head revision, relative to the checkout."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config).get_revision("head")
    assert script is not None and script.path is not None
    return str(Path(script.path).resolve().relative_to(ROOT))


def previous_release() -> str:
    """The commit of the previous release (see the module doc)."""
    configured = os.environ.get("ZQ_PREVIOUS_RELEASE", "").strip()
    if configured:
        return git("rev-parse", "--verify", f"{configured}^{{commit}}")
    head_file = head_revision_file()
    added = git("log", "--first-parent", "--format=%H", "--", head_file).splitlines()
    if not added:
        raise LookupError(f"no commit on the first-parent history adds {head_file}")
    return git("rev-parse", "--verify", f"{added[-1]}^1")


@dataclass
class OldRegistry:
    commit: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def wait_serving(registry: OldRegistry, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if registry.process.poll() is not None:
            raise AssertionError(f"the old registry exited:\n{registry.log_path.read_text()[-3000:]}")
        try:
            with grpc.insecure_channel(registry.address) as channel:
                response = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            if response.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the old registry did not serve:\n{registry.log_path.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with postgres_schema_url("zq_previous") as url:
        yield url


@pytest.fixture(scope="module")
def old_registry(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OldRegistry]:
    try:
        commit = previous_release()
    except (subprocess.CalledProcessError, LookupError) as exc:
        if git("rev-parse", "--is-shallow-repository") == "true":
            pytest.skip(f"a shallow clone has not got the previous release ({exc}); fetch the history")
        raise
    tmp = tmp_path_factory.mktemp("previous-release")
    code = tmp / "code"
    code.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(code, filter="data")
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "PYTHONPATH": f"{code}{os.pathsep}{code / 'gen'}",
        "ZQ_DATABASE_URL": database_url,
        "ZQ_DATA_DIR": str(tmp / "data"),
        "ZQ_REGISTRY_PORT": str(port),
        "ZQ_SERVICE_TOKEN": SERVICE_TOKEN,
        "ZQ_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ZQ_MIGRATE_ON_START": "on",  # the previous release brings the empty schema to its head
        "ZQ_METRICS_PORT": "0",
    }
    log_path = tmp / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.registry"],
            cwd=code,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    registry = OldRegistry(commit, port, log_path, process)
    try:
        wait_serving(registry)
        yield registry
    finally:
        process.terminate()
        process.wait(30)


def test_the_previous_registry_keeps_working_when_this_release_migrates_its_schema(
    old_registry: OldRegistry, database_url: str
) -> None:
    # The previous release's registry is other code than this one's (else this proves nothing).
    changed = subprocess.run(
        ["git", "diff", "--quiet", old_registry.commit, "--", "services/registry"], cwd=ROOT
    )
    assert changed.returncode == 1, f"services/registry is unchanged since {old_registry.commit}"
    db = Database(database_url)
    try:
        before, head = schema_revisions(db.engine)
        assert before is not None and before != head, f"the previous release is already at head {head}"
        step = subprocess.run(
            [sys.executable, "-m", "services.registry.migrate"],
            cwd=ROOT,
            env={**os.environ, "ZQ_DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert step.returncode == 0, step.stdout + step.stderr
        assert schema_revisions(db.engine)[0] == head
    finally:
        db.dispose()

    with grpc.insecure_channel(old_registry.address) as channel:
        login = auth_service_pb2_grpc.AuthServiceStub(channel).Login(
            auth_service_pb2.LoginRequest(username="admin", password=ADMIN_PASSWORD), timeout=30
        )
        user = (("authorization", f"Bearer {login.access_token}"),)
        service = (("authorization", f"Bearer {SERVICE_TOKEN}"),)
        tasks = task_service_pb2_grpc.TaskServiceStub(channel)
        name = unique("old")
        task = tasks.CreateTask(
            task_service_pb2.CreateTaskRequest(
                name=name, task_type="example_task", cron_expression="0 3 * * *"
            ),
            metadata=user,
            timeout=30,
        )
        listed = tasks.ListTasks(task_service_pb2.ListTasksRequest(), metadata=user, timeout=30)
        assert name in [t.name for t in listed.tasks]
        triggered = tasks.TriggerTask(
            task_service_pb2.TriggerTaskRequest(task_id=task.id), metadata=user, timeout=30
        )
        # The scheduler's side of a run: claim it for an executor, then finish it.
        internal = registry_internal_service_pb2_grpc.RegistryInternalServiceStub(channel)
        started = internal.StartExecution(
            registry_internal_service_pb2.StartExecutionRequest(
                execution_id=triggered.execution_id, executor="127.0.0.1:1"
            ),
            metadata=service,
            timeout=30,
        )
        internal.FinishExecution(
            registry_internal_service_pb2.FinishExecutionRequest(
                execution_id=triggered.execution_id, attempt=started.attempt, status="success"
            ),
            metadata=service,
            timeout=30,
        )
        execution = execution_service_pb2_grpc.ExecutionServiceStub(channel).GetExecution(
            execution_service_pb2.GetExecutionRequest(execution_id=triggered.execution_id),
            metadata=user,
            timeout=30,
        )
        assert (execution.task_id, execution.status) == (task.id, "success")
    assert old_registry.process.poll() is None

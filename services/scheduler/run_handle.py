"""What the dispatcher holds of each run it drives, and of an attempt claimed for an executor.

A `RunHandle` lives from the launch of a run until the dispatcher is done with it; the claims, the
executor stream and the cancels (`claims.py`, `executor_stream.py`, `cancels.py`) all read and set
it. A `Claim` is one attempt of a run given to one executor by the registry: what its `Run` call
needs. Whatever ends an attempt asks the ledger with `RunHandle.end_request`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf import struct_pb2

from services.scheduler.clients import ExecutorHandle
from services.scheduler.workflow_runs import WorkflowRun
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2


@dataclass(frozen=True, slots=True)
class Claim:
    """A run claimed for an executor: what its Run call needs."""

    handle: ExecutorHandle
    attempt: int
    task: task_pb2.Task
    # The run already runs on that executor (adopted from a previous leader): re-attach, never start.
    attach: bool = False
    # For a re-attach: when the run was claimed for that executor (the registry's start time).
    assigned_at: datetime | None = None


@dataclass
class RunHandle:
    execution_id: int
    task_id: int
    # The workflow run this is a node of (0 = none): woken when this run ends.
    parent_id: int = 0
    handle: ExecutorHandle | None = None
    # The executor whose room this run holds (counted in the pool), until the dispatcher gives it
    # back (`Dispatcher.give_back_room`): exactly once, as soon as the executor no longer needs it.
    room: ExecutorHandle | None = None
    attempt: int = 0
    # Terminated by someone: set once; the run's executor is told until it says it stopped the job
    # (`cancel_delivered`). A Cancel can overtake its Run on the wire and find nothing to stop, so
    # the executor's acceptance and every report that still says "terminate" send it again.
    cancel_requested: bool = False
    cancel_delivered: bool = False
    cancel_sending: bool = False
    # Set while this run is a workflow driven by the scheduler itself.
    workflow: WorkflowRun | None = None
    # When the run was due (planned fire time, retry due time, creation of a manual run): the start
    # delay metric measures from here.
    due: datetime | None = None
    # What the job is told about its run (services/common/run_params.py).
    logical_date: str = ""
    params: struct_pb2.Struct = field(default_factory=struct_pb2.Struct)

    @property
    def under_way(self) -> bool:
        return self.handle is not None or self.workflow is not None

    def end_request(
        self, status: str, result: Any, error_message: str
    ) -> internal_pb2.FinishExecutionRequest:
        """The end of the current attempt, as the ledger records it."""
        request = internal_pb2.FinishExecutionRequest(
            execution_id=self.execution_id, attempt=self.attempt, status=status, error_message=error_message
        )
        if result is not None:
            request.result.CopyFrom(result)
        return request

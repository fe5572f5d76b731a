// A workflow run for the DAG view: the workflow's nodes and the child executions of the run,
// refreshed every 2 s while the run is active and once more when it ends.

import { useCallback, useEffect, useMemo } from 'react';

import { api } from '../api/client';
import { isActiveStatus, POLL_INTERVAL_MS } from '../api/live';
import type { Execution, WorkflowNode } from '../api/types';
import { usePolling } from './usePolling';
import { useRemote } from './useRemote';

export interface WorkflowRun {
  nodes: WorkflowNode[] | undefined;
  /** The latest child execution of each node, by task id. */
  runsByTask: ReadonlyMap<number, Execution>;
  loading: boolean;
  error: unknown;
  /** Reads the child executions again now. */
  reload: () => void;
}

export function useWorkflowRun(workflowTaskId: number, executionId: number, active: boolean): WorkflowRun {
  const nodes = useRemote(useCallback(() => api.getWorkflow(workflowTaskId), [workflowTaskId]));
  const runs = useRemote(
    useCallback(() => api.listExecutions({ parent_execution_id: executionId, limit: 1000 }), [executionId]),
  );
  const reloadRuns = runs.reload;

  const runsByTask = useMemo(() => {
    const latest = new Map<number, Execution>();
    for (const run of runs.data?.executions ?? []) {
      const known = latest.get(run.task_id);
      if (!known || run.id > known.id) latest.set(run.task_id, run);
    }
    return latest;
  }, [runs.data]);
  // A node rerun alone after the run ended is polled too, until it ends.
  const nodeActive = [...runsByTask.values()].some((run) => isActiveStatus(run.status));
  usePolling(() => void reloadRuns(true), POLL_INTERVAL_MS, active || nodeActive);
  useEffect(() => {
    if (!active) void reloadRuns(true);
  }, [active, reloadRuns]);
  const reload = useCallback(() => void reloadRuns(true), [reloadRuns]);

  return {
    nodes: nodes.data?.tasks,
    runsByTask,
    loading: nodes.loading,
    error: nodes.error ?? runs.error,
    reload,
  };
}

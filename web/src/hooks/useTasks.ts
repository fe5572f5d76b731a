import { useCallback, useMemo } from 'react';

import { api } from '../api/client';
import type { TaskList, TaskListQuery } from '../api/types';
import { useRemote, type Remote } from './useRemote';

/** One page of the task list (server-side paging, filters and sorting). */
export function useTasks(query: TaskListQuery): Remote<TaskList> {
  return useRemote(useCallback(() => api.listTasks(query), [query]));
}

const fetchWorkflows = () =>
  api.listTasks({ skip: 0, limit: 1000, task_type: 'workflow', include_children: true });

/** Ids of all workflow tasks (nested ones included), to know which runs have a DAG. */
export function useWorkflowTaskIds(enabled: boolean): Set<number> {
  const { data } = useRemote(enabled ? fetchWorkflows : null);
  return useMemo(() => new Set(data?.tasks.map((t) => t.id)), [data]);
}

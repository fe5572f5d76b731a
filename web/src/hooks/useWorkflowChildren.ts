// Sub-tasks of the expanded workflow rows (GET /tasks/{id}/workflow), loaded on first expand and
// reloaded in the background with the list, so expanding survives auto-refresh.

import { useCallback, useEffect, useRef, useState } from 'react';

import { api } from '../api/client';
import type { WorkflowNode } from '../api/types';

export interface ChildrenState {
  nodes?: WorkflowNode[];
  loading: boolean;
  error?: unknown;
}

export function useWorkflowChildren(expandedIds: number[]) {
  const [children, setChildren] = useState<ReadonlyMap<number, ChildrenState>>(new Map());
  const requested = useRef(new Set<number>());

  const load = useCallback(async (id: number, background: boolean) => {
    const update = (patch: Partial<ChildrenState>) =>
      setChildren((map) => new Map(map).set(id, { loading: false, ...map.get(id), ...patch }));
    if (!background) update({ loading: true });
    try {
      const { tasks } = await api.getWorkflow(id);
      update({ nodes: tasks, loading: false, error: undefined });
    } catch (error) {
      update({ loading: false, error });
    }
  }, []);

  const key = expandedIds.join(',');
  useEffect(() => {
    for (const id of key ? key.split(',').map(Number) : []) {
      if (requested.current.has(id)) continue;
      requested.current.add(id);
      void load(id, false);
    }
  }, [key, load]);

  /** Background reload of the given workflows' sub-tasks. */
  const refresh = useCallback(
    (ids: number[]) => Promise.all(ids.map((id) => load(id, true))).then(() => undefined),
    [load],
  );

  return { children, refresh };
}

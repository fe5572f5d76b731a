import { useCallback } from 'react';

import { api } from '../api/client';
import type { Execution, Stats } from '../api/types';
import { useRemote, type Remote } from './useRemote';

/** How many recent runs the charts are computed from. */
export const CHART_RUNS = 500;

export interface StatsData {
  stats: Stats;
  /** The most recent runs (newest first), for the client-side charts. */
  runs: Execution[];
}

/** Statistics of one task, or global when `taskId` is undefined. */
export function useStats(taskId: number | undefined): Remote<StatsData> {
  return useRemote(
    useCallback(async () => {
      const [stats, runs] = await Promise.all([
        api.getStats(taskId),
        api.listExecutions({ task_id: taskId, limit: CHART_RUNS }),
      ]);
      return { stats, runs: runs.executions };
    }, [taskId]),
  );
}

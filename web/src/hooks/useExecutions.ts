// Execution history (per task or global) with live updates of the active rows.

import { useCallback, useEffect, useMemo, useRef, useState } from 'react';

import { api } from '../api/client';
import { isActiveStatus, watchExecution } from '../api/live';
import type { Execution, ExecutionList, ExecutionQuery } from '../api/types';
import { useRemote, type Remote } from './useRemote';

/** Browsers open ~6 HTTP/1.1 connections per host: beyond this many streams, active rows poll. */
export const MAX_STREAMS = 3;

/** One page of executions, newest first. `taskId` undefined = all tasks. */
export function useExecutions(taskId: number | undefined, query: ExecutionQuery): Remote<ExecutionList> {
  return useRemote(
    useCallback(
      () => (taskId === undefined ? api.listExecutions(query) : api.listTaskExecutions(taskId, query)),
      [taskId, query],
    ),
  );
}

/** The freshest view of a row: the live state, unless the list already knows the run ended. */
export function mergeLive(row: Execution, live: Execution | undefined): Execution {
  if (!live) return row;
  if (!isActiveStatus(row.status) && isActiveStatus(live.status)) return row;
  return live;
}

/**
 * Watches every pending/running execution of `rows` (SSE, falling back to 2 s polling) and returns
 * their latest states by id. Watching stops when a run ends or leaves `rows`.
 */
export function useLiveExecutions(rows: Execution[]): ReadonlyMap<number, Execution> {
  const [live, setLive] = useState<ReadonlyMap<number, Execution>>(new Map());
  const watchers = useRef(new Map<number, () => void>());
  const streams = useRef(new Set<number>());
  const ended = useRef(new Set<number>());

  // "taskId:executionId" of the active rows; a string so the effect runs on change only.
  const wanted = rows
    .filter((e) => isActiveStatus(e.status))
    .map((e) => `${e.task_id}:${e.id}`)
    .join(',');

  useEffect(() => {
    const targets = new Map(
      (wanted ? wanted.split(',') : []).map((pair) => {
        const [taskId, id] = pair.split(':').map(Number) as [number, number];
        return [id, taskId];
      }),
    );
    const forget = (id: number) => {
      watchers.current.delete(id);
      streams.current.delete(id);
    };
    for (const [id, stop] of watchers.current) {
      if (!targets.has(id)) {
        stop();
        forget(id);
      }
    }
    for (const [id, taskId] of targets) {
      // Rows the list still shows as active after their live state ended are not watched again.
      if (watchers.current.has(id) || ended.current.has(id)) continue;
      const stream = streams.current.size < MAX_STREAMS;
      if (stream) streams.current.add(id);
      const stop = watchExecution(
        taskId,
        id,
        (execution) => {
          setLive((map) => new Map(map).set(id, execution));
          if (!isActiveStatus(execution.status)) {
            ended.current.add(id);
            forget(id);
          }
        },
        { stream },
      );
      watchers.current.set(id, stop);
    }
  }, [wanted]);

  useEffect(() => {
    const active = watchers.current;
    const open = streams.current;
    return () => {
      active.forEach((stop) => stop());
      active.clear();
      open.clear();
    };
  }, []);

  return live;
}

/** `rows` with their live states merged in. */
export function useLiveRows(rows: Execution[]): Execution[] {
  const live = useLiveExecutions(rows);
  return useMemo(() => rows.map((row) => mergeLive(row, live.get(row.id))), [rows, live]);
}

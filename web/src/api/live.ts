// Live updates of one execution: the SSE watch stream, falling back to polling every 2 s when the
// stream fails (or is not wanted). Stops by itself once the run has ended.

import { ApiError, api } from './client';
import type { Execution, ExecutionStatus, WatchEvent } from './types';

export const POLL_INTERVAL_MS = 2000;

export function isActiveStatus(status: ExecutionStatus | '' | undefined): boolean {
  return status === 'pending' || status === 'running';
}

export interface WatchOptions {
  /** false: poll only (used when too many streams are open; browsers allow ~6 connections per host). */
  stream: boolean;
}

/** Starts watching; returns a function that stops it. `onUpdate` gets every new state. */
export function watchExecution(
  taskId: number,
  executionId: number,
  onUpdate: (execution: Execution) => void,
  options: WatchOptions,
): () => void {
  let stopped = false;
  let source: EventSource | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const stop = () => {
    stopped = true;
    source?.close();
    source = null;
    clearTimeout(timer);
  };

  const deliver = (execution: Execution) => {
    if (stopped) return;
    onUpdate(execution);
    if (!isActiveStatus(execution.status)) stop();
  };

  const poll = async () => {
    try {
      deliver(await api.getExecution(taskId, executionId));
    } catch (error) {
      // Gone or forbidden: nothing more to watch. Network or server trouble: keep trying.
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) stop();
    }
    if (!stopped) timer = setTimeout(() => void poll(), POLL_INTERVAL_MS);
  };

  if (options.stream && typeof EventSource !== 'undefined') {
    source = new EventSource(api.watchUrl(taskId, executionId));
    source.onmessage = (message: MessageEvent<string>) => {
      let event: WatchEvent;
      try {
        event = JSON.parse(message.data) as WatchEvent;
      } catch {
        return;
      }
      if (event.execution) deliver(event.execution);
      if (event.event_type === 'end') stop();
    };
    // Any error (also a stream that ends without its in-band end event, which EventSource would
    // otherwise reconnect and replay): close it and poll instead.
    source.onerror = () => {
      source?.close();
      source = null;
      if (!stopped) void poll();
    };
  } else {
    void poll();
  }
  return stop;
}

// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from 'vitest';

import { watchExecution } from './live';
import type { Execution } from './types';

class FakeEventSource {
  static last: FakeEventSource | undefined;
  onmessage: ((event: MessageEvent<string>) => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeEventSource.last = this;
  }
  close() {
    this.closed = true;
  }
  emit(data: unknown) {
    this.onmessage?.({ data: JSON.stringify(data) } as MessageEvent<string>);
  }
}

const exec = (status: Execution['status'], step: number): Execution => ({
  id: 11,
  task_id: 1,
  parent_execution_id: 0,
  status,
  trigger: 'manual',
  duration_seconds: 0,
  result: { current_step: step, total_steps: 30 },
  error_message: '',
  retry_count: 0,
  executor: '',
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe('watchExecution', () => {
  it('follows the SSE stream and closes on the end event', () => {
    vi.stubGlobal('EventSource', FakeEventSource);
    const updates: number[] = [];
    watchExecution(1, 11, (e) => updates.push(e.result.current_step as number), { stream: true });
    const source = FakeEventSource.last!;
    expect(source.url).toBe('/api/v1/scheduler/tasks/1/executions/11/watch');
    source.emit({ event_type: 'snapshot', execution: exec('running', 1) });
    source.emit({ event_type: 'heartbeat', execution: exec('running', 2) });
    source.emit({ event_type: 'end', execution: exec('success', 30) });
    source.emit({ event_type: 'snapshot', execution: exec('running', 1) });
    expect(updates).toEqual([1, 2, 30]);
    expect(source.closed).toBe(true);
  });

  it('falls back to polling every 2 s when the stream fails, until the run ends', async () => {
    vi.useFakeTimers();
    vi.stubGlobal('EventSource', FakeEventSource);
    const states = [exec('running', 5), exec('running', 6), exec('failed', 6)];
    const fetch = vi.fn(
      async (_url: string) => new Response(JSON.stringify(states.shift()), { status: 200 }),
    );
    vi.stubGlobal('fetch', fetch);
    const updates: string[] = [];
    watchExecution(1, 11, (e) => updates.push(`${e.status}:${e.result.current_step}`), { stream: true });
    FakeEventSource.last!.onerror?.();
    expect(FakeEventSource.last!.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(2000);
    await vi.advanceTimersByTimeAsync(2000);
    await vi.advanceTimersByTimeAsync(6000);
    expect(updates).toEqual(['running:5', 'running:6', 'failed:6']);
    expect(fetch).toHaveBeenCalledTimes(3);
    expect(fetch.mock.calls[0]?.[0]).toBe('/api/v1/scheduler/tasks/1/executions/11');
  });

  it('stops when told to', async () => {
    vi.useFakeTimers();
    const fetch = vi.fn(async () => new Response(JSON.stringify(exec('running', 1)), { status: 200 }));
    vi.stubGlobal('fetch', fetch);
    const stop = watchExecution(1, 11, () => undefined, { stream: false });
    await vi.advanceTimersByTimeAsync(0);
    stop();
    await vi.advanceTimersByTimeAsync(10000);
    expect(fetch).toHaveBeenCalledTimes(1);
  });
});

import { describe, expect, it } from 'vitest';

import type { Execution } from '../api/types';
import { mergeLive } from './useExecutions';

const base: Execution = {
  id: 1,
  task_id: 1,
  parent_execution_id: 0,
  status: 'running',
  trigger: 'manual',
  duration_seconds: 0,
  result: { current_step: 1, total_steps: 30 },
  error_message: '',
  retry_count: 0,
  executor: 'exec-1',
};

describe('mergeLive', () => {
  it('prefers the live state of an active row', () => {
    const live = { ...base, result: { current_step: 5, total_steps: 30 } };
    expect(mergeLive(base, live)).toBe(live);
  });
  it('keeps a finished live state over a stale list row', () => {
    const live = { ...base, status: 'success' as const };
    expect(mergeLive(base, live)).toBe(live);
  });
  it('never lets a stale live state reopen a finished row', () => {
    const finished = { ...base, status: 'success' as const };
    expect(mergeLive(finished, base)).toBe(finished);
  });
  it('is the row itself without live data', () => {
    expect(mergeLive(base, undefined)).toBe(base);
  });
});

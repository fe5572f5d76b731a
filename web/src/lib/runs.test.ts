import { describe, expect, it } from 'vitest';

import type { Execution } from '../api/types';
import { bucketRuns, durationPoints } from './runs';

let nextId = 1;
function run(start: string, status: Execution['status'], duration = 1): Execution {
  return {
    id: nextId++,
    task_id: 1,
    parent_execution_id: 0,
    status,
    trigger: 'schedule',
    start_time: start,
    duration_seconds: duration,
    result: {},
    error_message: '',
    retry_count: 0,
    executor: '',
  };
}

describe('bucketRuns', () => {
  it('is empty without runs', () => {
    expect(bucketRuns([]).buckets).toEqual([]);
  });
  it('counts per hour within two days, filling the gaps (local time, TZ=Asia/Shanghai)', () => {
    const { unit, buckets } = bucketRuns([
      run('2025-01-20T02:10:00Z', 'success'),
      run('2025-01-20T02:50:00Z', 'failed'),
      run('2025-01-20T04:05:00Z', 'success'),
      run('2025-01-20T04:06:00Z', 'running'),
    ]);
    expect(unit).toBe('hour');
    expect(buckets.map((b) => [b.label, b.success, b.failed])).toEqual([
      ['01-20 10:00', 1, 1],
      ['01-20 11:00', 0, 0],
      ['01-20 12:00', 1, 0],
    ]);
  });
  it('counts per day over longer spans', () => {
    const { unit, buckets } = bucketRuns([
      run('2025-01-01T01:00:00Z', 'success'),
      run('2025-01-05T01:00:00Z', 'failed'),
    ]);
    expect(unit).toBe('day');
    expect(buckets).toHaveLength(5);
    expect(buckets[4]).toMatchObject({ label: '2025-01-05', failed: 1 });
  });
});

describe('durationPoints', () => {
  it('keeps finished runs with a duration, oldest first', () => {
    const points = durationPoints([
      run('2025-01-02T00:00:00Z', 'success', 3),
      run('2025-01-01T00:00:00Z', 'failed', 5),
      run('2025-01-03T00:00:00Z', 'running', 0),
      run('2025-01-04T00:00:00Z', 'skipped', 0),
    ]);
    expect(points.map((p) => p.seconds)).toEqual([5, 3]);
  });
});

// Client-side aggregation of executions for the statistics charts (pure; unit-tested).

import dayjs from 'dayjs';

import type { Execution } from '../api/types';

export type BucketUnit = 'hour' | 'day';

export interface RunBucket {
  /** Start of the bucket, epoch ms (local time boundaries). */
  start: number;
  label: string;
  success: number;
  failed: number;
}

export interface DurationPoint {
  time: number;
  seconds: number;
  status: Execution['status'];
}

const MAX_FILLED_BUCKETS = 90;

function timeOf(execution: Execution): number | null {
  const value = execution.start_time || execution.created_at || execution.scheduled_time;
  return value ? Date.parse(value) : null;
}

/** Successes and failures per hour (data spanning ≤ 48 h) or per day, oldest first. */
export function bucketRuns(executions: Execution[]): { unit: BucketUnit; buckets: RunBucket[] } {
  const times = executions.map(timeOf).filter((t): t is number => t !== null && !Number.isNaN(t));
  if (times.length === 0) return { unit: 'day', buckets: [] };
  const min = Math.min(...times);
  const max = Math.max(...times);
  const unit: BucketUnit = max - min <= 48 * 3600 * 1000 ? 'hour' : 'day';
  const labelFormat = unit === 'hour' ? 'MM-DD HH:00' : 'YYYY-MM-DD';
  const startOf = (t: number) => dayjs(t).startOf(unit).valueOf();

  const buckets = new Map<number, RunBucket>();
  const bucket = (start: number): RunBucket => {
    let b = buckets.get(start);
    if (!b) {
      b = { start, label: dayjs(start).format(labelFormat), success: 0, failed: 0 };
      buckets.set(start, b);
    }
    return b;
  };
  // Fill the gaps so the time axis is even, unless that would make too many bars.
  const first = startOf(min);
  const last = startOf(max);
  const span = dayjs(last).diff(dayjs(first), unit);
  if (span < MAX_FILLED_BUCKETS) {
    for (let i = 0; i <= span; i += 1) bucket(dayjs(first).add(i, unit).valueOf());
  }
  for (const execution of executions) {
    const t = timeOf(execution);
    if (t === null || Number.isNaN(t)) continue;
    if (execution.status === 'success') bucket(startOf(t)).success += 1;
    else if (execution.status === 'failed') bucket(startOf(t)).failed += 1;
  }
  return { unit, buckets: [...buckets.values()].sort((a, b) => a.start - b.start) };
}

/** Durations of finished runs, oldest first. */
export function durationPoints(executions: Execution[]): DurationPoint[] {
  return executions
    .filter((e) => (e.status === 'success' || e.status === 'failed') && e.duration_seconds > 0)
    .map((e) => ({ time: timeOf(e), seconds: e.duration_seconds, status: e.status }))
    .filter((p): p is DurationPoint => p.time !== null && !Number.isNaN(p.time))
    .sort((a, b) => a.time - b.time);
}

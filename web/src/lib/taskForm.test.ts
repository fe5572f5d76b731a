import { describe, expect, it } from 'vitest';

import type { Task } from '../api/types';
import {
  buildCreatePayload,
  buildUpdatePayload,
  initialValues,
  invalidTag,
  scheduleModeOf,
  type TaskFormValues,
} from './taskForm';

function task(overrides: Partial<Task> = {}): Task {
  return {
    id: 7,
    name: '示例任务-每日18点',
    task_type: 'example_task',
    cron_expression: '0 18 * * *',
    interval_seconds: 0,
    timezone: 'Asia/Shanghai',
    enabled: true,
    paused: false,
    description: '示例任务，每天18:00执行',
    config: { duration_seconds: 10, steps: 20 },
    max_retries: 3,
    retry_interval: 300,
    timeout_seconds: 0,
    concurrency_policy: 'forbid',
    ...overrides,
  };
}

const edit = (t: Task, change: Partial<TaskFormValues>) => {
  const before = initialValues('edit', t);
  return buildUpdatePayload(before, { ...before, ...change });
};

describe('scheduleModeOf', () => {
  it('reads the one schedule a task has', () => {
    expect(scheduleModeOf(task())).toBe('cron');
    expect(scheduleModeOf(task({ cron_expression: '', interval_seconds: 60 }))).toBe('interval');
    expect(scheduleModeOf(task({ cron_expression: '', run_at: '2030-01-01T00:00:00Z' }))).toBe('once');
    expect(scheduleModeOf(task({ cron_expression: '' }))).toBe('none');
  });
});

describe('buildCreatePayload', () => {
  const base = initialValues('create', undefined);

  it('keeps max_retries 0 as 0 (the original turned it into 3)', () => {
    expect(buildCreatePayload({ ...base, name: 'x', max_retries: 0 }).max_retries).toBe(0);
  });

  it('sends only the chosen schedule', () => {
    const payload = buildCreatePayload({
      ...base,
      name: ' 实时进度测试任务 ',
      schedule_mode: 'interval',
      cron_expression: '0 18 * * *',
      interval_seconds: 120,
      config_text: '{"duration_seconds": 30, "steps": 30}',
    });
    expect(payload).toEqual({
      name: '实时进度测试任务',
      task_type: 'example_task',
      enabled: true,
      interval_seconds: 120,
      timezone: 'Asia/Shanghai',
      config: { duration_seconds: 30, steps: 30 },
      max_retries: 3,
      retry_interval: 60,
      concurrency_policy: 'forbid',
    });
  });

  it('gives manual tasks no schedule and no time zone', () => {
    const payload = buildCreatePayload({
      ...base,
      name: 'm',
      task_type: 'manual_task',
      schedule_mode: 'cron',
      cron_expression: '* * * * *',
    });
    expect(payload).not.toHaveProperty('cron_expression');
    expect(payload).not.toHaveProperty('timezone');
  });

  it('omits empty description, config and timeout', () => {
    const payload = buildCreatePayload({ ...base, name: 'x', description: '  ', timeout_seconds: 0 });
    expect(payload).not.toHaveProperty('description');
    expect(payload).not.toHaveProperty('config');
    expect(payload).not.toHaveProperty('timeout_seconds');
  });
});

describe('copy', () => {
  it('pre-fills {name}_副本 with enabled off', () => {
    const values = initialValues('copy', task());
    expect(values.name).toBe('示例任务-每日18点_副本');
    expect(values.enabled).toBe(false);
    expect(values.schedule_mode).toBe('cron');
    expect(JSON.parse(values.config_text)).toEqual({ duration_seconds: 10, steps: 20 });
  });
});

describe('buildUpdatePayload', () => {
  it('sends nothing when nothing changed', () => {
    expect(edit(task(), {})).toEqual({});
  });

  it('switching cron to interval clears cron with null', () => {
    expect(edit(task(), { schedule_mode: 'interval', interval_seconds: 60 })).toEqual({
      cron_expression: null,
      interval_seconds: 60,
    });
  });

  it('switching to no schedule clears it', () => {
    expect(edit(task({ cron_expression: '', interval_seconds: 30 }), { schedule_mode: 'none' })).toEqual({
      interval_seconds: null,
    });
  });

  it('switching to a one-time run clears the interval', () => {
    expect(
      edit(task({ cron_expression: '', interval_seconds: 30 }), {
        schedule_mode: 'once',
        run_at: '2030-01-01T10:00:00.000Z',
      }),
    ).toEqual({ interval_seconds: null, run_at: '2030-01-01T10:00:00.000Z' });
  });

  it('compares run_at as instants, not strings', () => {
    const t = task({ cron_expression: '', run_at: '2030-01-01T10:00:00Z' });
    expect(edit(t, { run_at: '2030-01-01T10:00:00.000Z' })).toEqual({});
  });

  it('a cron edit sends the new expression only', () => {
    expect(edit(task(), { cron_expression: '0/15 * * * *' })).toEqual({ cron_expression: '0/15 * * * *' });
  });

  it('0 retries is a change to 0', () => {
    expect(edit(task(), { max_retries: 0 })).toEqual({ max_retries: 0 });
  });

  it('clearing the description or the timeout sends null', () => {
    expect(edit(task(), { description: '' })).toEqual({ description: null });
    expect(edit(task({ timeout_seconds: 30 }), { timeout_seconds: null })).toEqual({ timeout_seconds: null });
    expect(edit(task(), { timeout_seconds: 45 })).toEqual({ timeout_seconds: 45 });
  });

  it('clearing the config sends {}; reordering keys is no change', () => {
    expect(edit(task(), { config_text: '' })).toEqual({ config: {} });
    expect(edit(task(), { config_text: '{"steps": 20, "duration_seconds": 10}' })).toEqual({});
    expect(edit(task(), { config_text: '{"steps": 5}' })).toEqual({ config: { steps: 5 } });
  });

  it('sends name, time zone and policy changes', () => {
    expect(edit(task(), { name: 'renamed', timezone: 'UTC', concurrency_policy: 'allow' })).toEqual({
      name: 'renamed',
      timezone: 'UTC',
      concurrency_policy: 'allow',
    });
  });

  it('never sends a schedule for manual tasks', () => {
    const manual = task({ task_type: 'manual_task', cron_expression: '' });
    expect(edit(manual, { schedule_mode: 'cron', cron_expression: '* * * * *' })).toEqual({});
  });
});

describe('trading calendar in the form', () => {
  it('sends the calendar with its shift and holiday policy for a cron task', () => {
    const values = { ...initialValues('create', undefined), name: 'x', schedule_mode: 'cron' as const };
    const payload = buildCreatePayload({
      ...values,
      cron_expression: '0 18 * * *',
      calendar: 'XSHG',
      calendar_shift: -1,
      calendar_holidays: 'record',
    });
    expect(payload).toMatchObject({ calendar: 'XSHG', calendar_shift: -1, calendar_holidays: 'record' });
  });

  it('sends no calendar without one or without a cron schedule', () => {
    const values = { ...initialValues('create', undefined), name: 'x', schedule_mode: 'interval' as const };
    expect(buildCreatePayload({ ...values, interval_seconds: 60, calendar: 'XSHG' })).not.toHaveProperty(
      'calendar',
    );
  });

  it('clears the calendar when the schedule stops being a cron', () => {
    const changes = edit(task({ calendar: 'XSHG', calendar_shift: 0, calendar_holidays: 'silent' }), {
      schedule_mode: 'interval',
      interval_seconds: 60,
    });
    expect(changes).toMatchObject({ calendar: null, interval_seconds: 60, cron_expression: null });
  });

  it('sends only a changed shift', () => {
    const changes = edit(task({ calendar: 'XSHG' }), { calendar_shift: 1 });
    expect(changes).toEqual({ calendar_shift: 1 });
  });
});

describe('tags', () => {
  it('are sent on create when set, and only when they changed on edit', () => {
    const values = { ...initialValues('create', undefined), name: 'a', tags: ['日报', 'team-a'] };
    expect(buildCreatePayload(values).tags).toEqual(['日报', 'team-a']);
    expect(buildCreatePayload({ ...values, tags: [] }).tags).toBeUndefined();
    const tagged = task({ tags: ['x'] });
    expect(edit(tagged, {})).toEqual({});
    expect(edit(tagged, { tags: ['x', 'y'] })).toEqual({ tags: ['x', 'y'] });
    expect(edit(tagged, { tags: [] })).toEqual({ tags: [] });
  });

  it('names the first tag the registry would refuse', () => {
    expect(invalidTag(['ok', '中文', 'a.b:c-d_e'])).toBeUndefined();
    expect(invalidTag(['ok', 'a b', 'x'.repeat(40)])).toBe('a b');
    expect(invalidTag(['x'.repeat(33)])).toBe('x'.repeat(33));
  });
});

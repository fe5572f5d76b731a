// The task form's values and how they become POST /tasks and PUT /tasks/{id} bodies (pure;
// unit-tested). One schedule at a time: the `schedule_mode` radio decides which of cron / interval /
// run_at is set; the others are cleared. Edit sends only what changed, `null` to clear.

import type {
  ConcurrencyPolicy,
  HolidayPolicy,
  JsonObject,
  Task,
  TaskCreate,
  TaskType,
  TaskUpdate,
} from '../api/types';
import { canonicalJson, parseConfig, prettyJson } from './json';

export type ScheduleMode = 'cron' | 'interval' | 'once' | 'none';
export type FormMode = 'create' | 'edit' | 'copy';

export const DEFAULT_TIMEZONE = 'Asia/Shanghai';
/** Copy pre-fills `{name}_副本` (the original's label, in both languages). */
export const COPY_SUFFIX = '_副本';
export const MAX_RETRIES_LIMIT = 100;
export const RETRY_INTERVAL_LIMIT = 86400;

export interface TaskFormValues {
  name: string;
  task_type: TaskType;
  schedule_mode: ScheduleMode;
  cron_expression: string;
  interval_seconds: number | null;
  /** RFC 3339 instant. */
  run_at: string | null;
  timezone: string;
  description: string;
  config_text: string;
  max_retries: number;
  retry_interval: number;
  /** null = no limit. */
  timeout_seconds: number | null;
  concurrency_policy: ConcurrencyPolicy;
  /** Only used on create and copy. */
  enabled: boolean;
  /** Cron schedules only: "" = every day. */
  calendar: string;
  calendar_shift: number;
  calendar_holidays: HolidayPolicy;
  tags: string[];
}

interface Schedule {
  cron_expression: string | null;
  interval_seconds: number | null;
  run_at: string | null;
}

export function scheduleModeOf(
  task: Pick<Task, 'cron_expression' | 'interval_seconds' | 'run_at'>,
): ScheduleMode {
  if (task.cron_expression) return 'cron';
  if (task.interval_seconds > 0) return 'interval';
  if (task.run_at) return 'once';
  return 'none';
}

export function initialValues(mode: FormMode, task: Task | undefined): TaskFormValues {
  if (!task || mode === 'create') {
    return {
      name: '',
      task_type: 'example_task',
      schedule_mode: 'none',
      cron_expression: '',
      interval_seconds: null,
      run_at: null,
      timezone: DEFAULT_TIMEZONE,
      description: '',
      config_text: '',
      max_retries: 3,
      retry_interval: 60,
      timeout_seconds: null,
      concurrency_policy: 'forbid',
      enabled: true,
      calendar: '',
      calendar_shift: 0,
      calendar_holidays: 'silent',
      tags: [],
    };
  }
  const hasConfig = task.config && Object.keys(task.config).length > 0;
  return {
    name: mode === 'copy' ? `${task.name}${COPY_SUFFIX}` : task.name,
    task_type: task.task_type,
    schedule_mode: task.task_type === 'manual_task' ? 'none' : scheduleModeOf(task),
    cron_expression: task.cron_expression ?? '',
    interval_seconds: task.interval_seconds > 0 ? task.interval_seconds : null,
    run_at: task.run_at || null,
    timezone: task.timezone || DEFAULT_TIMEZONE,
    description: task.description ?? '',
    config_text: hasConfig ? prettyJson(task.config) : '',
    max_retries: task.max_retries,
    retry_interval: task.retry_interval,
    timeout_seconds: task.timeout_seconds > 0 ? task.timeout_seconds : null,
    concurrency_policy: task.concurrency_policy || 'forbid',
    enabled: mode === 'copy' ? false : task.enabled,
    calendar: task.calendar ?? '',
    calendar_shift: task.calendar_shift ?? 0,
    calendar_holidays: task.calendar_holidays === 'record' ? 'record' : 'silent',
    tags: [...(task.tags ?? [])],
  };
}

/** The schedule the values describe; manual tasks and "不调度" have none. */
export function scheduleOf(values: TaskFormValues): Schedule {
  const none: Schedule = { cron_expression: null, interval_seconds: null, run_at: null };
  if (values.task_type === 'manual_task') return none;
  switch (values.schedule_mode) {
    case 'cron':
      return { ...none, cron_expression: values.cron_expression.trim() || null };
    case 'interval':
      return { ...none, interval_seconds: values.interval_seconds || null };
    case 'once':
      return { ...none, run_at: values.run_at || null };
    case 'none':
      return none;
  }
}

interface CalendarChoice {
  calendar: string | null;
  calendar_shift: number;
  calendar_holidays: HolidayPolicy;
}

/** The trading calendar the values describe: only with a cron schedule. */
export function calendarOf(values: TaskFormValues): CalendarChoice {
  const calendar = scheduleOf(values).cron_expression !== null ? values.calendar.trim() : '';
  if (!calendar) return { calendar: null, calendar_shift: 0, calendar_holidays: 'silent' };
  return {
    calendar,
    calendar_shift: values.calendar_shift || 0,
    calendar_holidays: values.calendar_holidays,
  };
}

function configOf(values: TaskFormValues): JsonObject | null {
  const parsed = parseConfig(values.config_text);
  if (!parsed.ok) throw new Error('invalid config');
  return parsed.value;
}

function timeoutOf(values: TaskFormValues): number | null {
  return values.timeout_seconds && values.timeout_seconds > 0 ? values.timeout_seconds : null;
}

function sameInstant(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return a === b;
  return Date.parse(a) === Date.parse(b);
}

export function buildCreatePayload(values: TaskFormValues): TaskCreate {
  const schedule = scheduleOf(values);
  const config = configOf(values);
  const timeout = timeoutOf(values);
  const payload: TaskCreate = {
    name: values.name.trim(),
    task_type: values.task_type,
    enabled: values.enabled,
    max_retries: values.max_retries,
    retry_interval: values.retry_interval,
    concurrency_policy: values.concurrency_policy,
  };
  if (schedule.cron_expression !== null) payload.cron_expression = schedule.cron_expression;
  if (schedule.interval_seconds !== null) payload.interval_seconds = schedule.interval_seconds;
  if (schedule.run_at !== null) payload.run_at = schedule.run_at;
  if (values.task_type !== 'manual_task') payload.timezone = values.timezone;
  if (values.description.trim()) payload.description = values.description;
  if (config) payload.config = config;
  if (timeout !== null) payload.timeout_seconds = timeout;
  const calendar = calendarOf(values);
  if (calendar.calendar !== null) {
    payload.calendar = calendar.calendar;
    payload.calendar_shift = calendar.calendar_shift;
    payload.calendar_holidays = calendar.calendar_holidays;
  }
  if (values.tags.length > 0) payload.tags = values.tags;
  return payload;
}

/** The PUT body: fields whose value differs between the form as opened and as submitted. */
export function buildUpdatePayload(before: TaskFormValues, after: TaskFormValues): TaskUpdate {
  const changes: TaskUpdate = {};
  if (after.name.trim() !== before.name.trim()) changes.name = after.name.trim();

  const from = scheduleOf(before);
  const to = scheduleOf(after);
  if (to.cron_expression !== from.cron_expression) changes.cron_expression = to.cron_expression;
  if (to.interval_seconds !== from.interval_seconds) changes.interval_seconds = to.interval_seconds;
  if (!sameInstant(to.run_at, from.run_at)) changes.run_at = to.run_at;
  if (after.task_type !== 'manual_task' && after.timezone !== before.timezone) {
    changes.timezone = after.timezone;
  }

  if (after.description !== before.description) {
    changes.description = after.description.trim() ? after.description : null;
  }
  const config = configOf(after);
  if (canonicalJson(config ?? {}) !== canonicalJson(configOf(before) ?? {})) changes.config = config ?? {};

  if (after.max_retries !== before.max_retries) changes.max_retries = after.max_retries;
  if (after.retry_interval !== before.retry_interval) changes.retry_interval = after.retry_interval;
  if (timeoutOf(after) !== timeoutOf(before)) changes.timeout_seconds = timeoutOf(after);
  if (after.concurrency_policy !== before.concurrency_policy) {
    changes.concurrency_policy = after.concurrency_policy;
  }
  const calendarBefore = calendarOf(before);
  const calendarAfter = calendarOf(after);
  if (calendarAfter.calendar !== calendarBefore.calendar) changes.calendar = calendarAfter.calendar;
  if (calendarAfter.calendar_shift !== calendarBefore.calendar_shift) {
    changes.calendar_shift = calendarAfter.calendar_shift;
  }
  if (calendarAfter.calendar_holidays !== calendarBefore.calendar_holidays) {
    changes.calendar_holidays = calendarAfter.calendar_holidays;
  }
  if (after.tags.join('\n') !== before.tags.join('\n')) changes.tags = after.tags;
  return changes;
}

/** The registry's tag rules (store/tasks.py), so the form says what is wrong before saving. */
export const MAX_TAGS = 10;
const TAG_PATTERN = /^[\p{L}\p{N}_.:-]{1,32}$/u;

export function invalidTag(tags: string[]): string | undefined {
  return tags.find((tag) => !TAG_PATTERN.test(tag));
}

// Status and type tags shared by the task table, the history drawer and the DAG legend.

import { Tag } from 'antd';

import type { ExecutionStatus, ExecutionTrigger, TaskType } from '../api/types';
import { useI18n, type MessageKey, type Translate } from '../i18n';
import { DATA_SYNC_TYPES } from '../lib/dataSync';

export const TASK_TYPES: TaskType[] = [
  'example_task',
  'manual_task',
  'common_task',
  'workflow',
  ...DATA_SYNC_TYPES,
];
export const EXECUTION_STATUSES: ExecutionStatus[] = [
  'pending',
  'running',
  'success',
  'failed',
  'terminated',
  'skipped',
];

const TYPE_COLORS: Record<TaskType, string> = {
  example_task: 'cyan',
  manual_task: 'default',
  common_task: 'blue',
  workflow: 'purple',
  data_sync_stock_list: 'green',
  data_sync_trading_calendar: 'green',
  data_sync_daily_data: 'green',
  data_sync_all_daily_data: 'green',
};

/** antd tag colours, also used (as hex) by the DAG nodes. */
export const EXECUTION_STATUS_COLORS: Record<ExecutionStatus, string> = {
  pending: 'default',
  running: 'processing',
  success: 'success',
  failed: 'error',
  terminated: 'warning',
  skipped: 'default',
};

const SCHEDULE_STATUS_COLORS: Record<string, string> = {
  disabled: 'default',
  paused: 'warning',
  pending: 'blue',
  running: 'processing',
  success: 'success',
  failed: 'error',
  manual: 'default',
  finished: 'default',
};

export function TaskTypeTag({ type }: { type: TaskType }) {
  const { t } = useI18n();
  const known = TASK_TYPES.includes(type);
  return <Tag color={known ? TYPE_COLORS[type] : 'default'}>{known ? t(`type_${type}`) : type}</Tag>;
}

export function ExecutionStatusTag({ status, testId }: { status: ExecutionStatus; testId?: string }) {
  const { t } = useI18n();
  const known = EXECUTION_STATUSES.includes(status);
  return (
    <Tag color={EXECUTION_STATUS_COLORS[status] ?? 'default'} data-testid={testId} data-status={status}>
      {known ? t(`status_${status}`) : status}
    </Tag>
  );
}

export function ScheduleStatusTag({ status }: { status: string | undefined }) {
  const { t } = useI18n();
  if (!status) return <Tag>{t('unknown')}</Tag>;
  const color = SCHEDULE_STATUS_COLORS[status];
  return (
    <Tag color={color ?? 'default'} data-status={status}>
      {color ? t(`sched_${status}` as MessageKey) : status}
    </Tag>
  );
}

const TRIGGERS: ExecutionTrigger[] = ['schedule', 'manual', 'retry', 'workflow', 'backfill'];

export function triggerLabel(trigger: ExecutionTrigger, t: Translate): string {
  return TRIGGERS.includes(trigger) ? t(`trigger_${trigger}`) : trigger;
}

// Preset antd colours a task label is drawn in: the same label always gets the same colour.
const LABEL_COLORS = [
  'magenta',
  'red',
  'volcano',
  'orange',
  'gold',
  'lime',
  'green',
  'cyan',
  'blue',
  'geekblue',
  'purple',
];

export function labelColor(label: string): string {
  let hash = 0;
  for (const char of label) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) >>> 0;
  return LABEL_COLORS[hash % LABEL_COLORS.length] ?? 'default';
}

/** A task's own tags (labels), each in its colour. */
export function TaskLabels({ tags, taskId }: { tags: string[] | undefined; taskId: number }) {
  if (!tags?.length) return null;
  return (
    <span className="task-labels" data-testid={`task-tags-${taskId}`}>
      {tags.map((label) => (
        <Tag key={label} color={labelColor(label)} className="task-label" data-tag={label}>
          {label}
        </Tag>
      ))}
    </span>
  );
}

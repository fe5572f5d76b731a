// Status and type tags shared by the task table, the history drawer and the DAG legend.

import { Tag } from 'antd';

import type { ExecutionStatus, ExecutionTrigger, TaskType } from '../api/types';
import { useI18n, type MessageKey, type Translate } from '../i18n';

export const TASK_TYPES: TaskType[] = ['example_task', 'manual_task', 'common_task', 'workflow'];
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

const TRIGGERS: ExecutionTrigger[] = ['schedule', 'manual', 'retry', 'workflow'];

export function triggerLabel(trigger: ExecutionTrigger, t: Translate): string {
  return TRIGGERS.includes(trigger) ? t(`trigger_${trigger}`) : trigger;
}

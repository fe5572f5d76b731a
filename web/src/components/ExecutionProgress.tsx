// Progress of one execution: bar (result.progress_percent), `步骤 x/y` and result.message.

import { Progress, Typography } from 'antd';
import type { ProgressProps } from 'antd';

import type { Execution } from '../api/types';
import { useI18n } from '../i18n';

/** True when the result carries the guide's progress structure. */
export function hasProgress(execution: Execution): boolean {
  const result = execution.result ?? {};
  return typeof result.progress_percent === 'number' || typeof result.total_steps === 'number';
}

function percentOf(execution: Execution): number {
  const { progress_percent: percent, current_step: current, total_steps: total } = execution.result;
  if (typeof percent === 'number') return Math.max(0, Math.min(100, Math.round(percent)));
  if (typeof current === 'number' && typeof total === 'number' && total > 0) {
    return Math.round((current / total) * 100);
  }
  return execution.status === 'success' ? 100 : 0;
}

const PROGRESS_STATUS: Partial<Record<Execution['status'], ProgressProps['status']>> = {
  running: 'active',
  success: 'success',
  failed: 'exception',
  terminated: 'exception',
};

interface Props {
  execution: Execution;
  /** Prefix of the test ids (`exec-progress-{id}`, `exec-steps-{id}`, `exec-message-{id}`). */
  testIdPrefix?: string;
}

export function ExecutionProgress({ execution, testIdPrefix = 'exec' }: Props) {
  const { t } = useI18n();
  const { id, result } = execution;
  const percent = percentOf(execution);
  return (
    <div className="exec-progress">
      <Progress
        percent={percent}
        size="small"
        status={PROGRESS_STATUS[execution.status] ?? 'normal'}
        data-testid={`${testIdPrefix}-progress-${id}`}
        data-percent={percent}
      />
      <Typography.Text data-testid={`${testIdPrefix}-steps-${id}`} className="exec-steps">
        {typeof result.current_step === 'number' && typeof result.total_steps === 'number'
          ? t('steps', { current: result.current_step, total: result.total_steps })
          : t('progress', { p: percent })}
      </Typography.Text>
      {typeof result.message === 'string' && result.message && (
        <Typography.Text
          type="secondary"
          ellipsis
          className="exec-message"
          data-testid={`${testIdPrefix}-message-${id}`}
        >
          {result.message}
        </Typography.Text>
      )}
    </div>
  );
}

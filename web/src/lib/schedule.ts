import type { Task } from '../api/types';
import type { Translate } from '../i18n';
import { formatTime } from './format';
import { scheduleModeOf } from './taskForm';

/** The 调度方式 cell: `Cron: expr`, `每N秒`, `一次性: time` or `手动`. */
export function describeSchedule(task: Task, t: Translate): string {
  if (task.task_type === 'manual_task') return t('scheduleManual');
  switch (scheduleModeOf(task)) {
    case 'cron':
      return t('scheduleCron', { expr: task.cron_expression });
    case 'interval':
      return t('scheduleInterval', { n: task.interval_seconds });
    case 'once':
      return t('scheduleOnce', { time: formatTime(task.run_at) });
    case 'none':
      return t('scheduleManual');
  }
}

// The header's system status: green while a scheduler leads, red when none does (runs are still
// recorded but wait), with the leader, the runs waiting and each executor's slots in the tooltip, and
// the free slots of all executors beside it. Polled every 2 s.

import { Badge, Tooltip } from 'antd';

import { useSystemStatus } from '../hooks/useSystemStatus';
import { useI18n } from '../i18n';

export function SystemStatus() {
  const { t } = useI18n();
  const { data, error } = useSystemStatus();
  if (!data && error === undefined) return null;
  const up = Boolean(data?.scheduler_up) && error === undefined;
  const state = error !== undefined ? 'unknown' : up ? 'up' : 'down';
  const tip =
    state === 'unknown'
      ? t('statusUnknownTip')
      : up
        ? t('statusUpTip', { leader: data?.leader ?? '', pending: data?.runs_pending ?? 0 })
        : t('statusDownTip', { pending: data?.runs_pending ?? 0 });
  const executors = data?.executors ?? [];
  const executorLines = executors.map((e) => (
    <div key={e.address} data-testid="system-status-executor" data-reachable={String(e.reachable)}>
      {e.reachable
        ? t(e.draining ? 'statusExecutorDraining' : 'statusExecutor', {
            address: e.address,
            active: e.active_runs,
            capacity: e.capacity,
          })
        : t('statusExecutorDown', { address: e.address })}
    </div>
  ));
  return (
    <Tooltip
      title={
        <span data-testid="system-status-tip">
          {tip}
          {executorLines}
        </span>
      }
    >
      <span className={`system-status system-status-${state}`} data-testid="system-status" data-state={state}>
        <Badge status={up ? 'success' : 'error'} />
        {up ? t('statusUp') : state === 'down' ? t('statusDown') : t('statusUnknown')}
        {data && data.runs_pending > 0 && (
          <span className="system-status-pending">{t('statusPending', { pending: data.runs_pending })}</span>
        )}
        {up && executors.length > 0 && (
          <span
            className="system-status-slots"
            data-testid="system-status-slots"
            data-free={data?.free_slots ?? 0}
          >
            {t('statusFreeSlots', { free: data?.free_slots ?? 0, executors: executors.length })}
          </span>
        )}
      </span>
    </Tooltip>
  );
}

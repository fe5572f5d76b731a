// Statistics of one task or of all tasks, with charts of the recent runs (lazy-loaded chunk).

import { ReloadOutlined } from '@ant-design/icons';
import { Alert, Button, Card, Col, Drawer, Row, Spin, Statistic, Typography } from 'antd';
import { lazy, Suspense } from 'react';

import { errorText } from '../api/client';
import type { Task } from '../api/types';
import { useStats } from '../hooks/useStats';
import { useI18n } from '../i18n';
import { formatDuration, formatPercent, formatTime, successRateColor } from '../lib/format';

const StatsCharts = lazy(() => import('./StatsCharts'));

const RATE_COLORS = { green: '#52c41a', orange: '#fa8c16', red: '#ff4d4f' };

export function StatsDrawer({ task, onClose }: { task?: Task; onClose: () => void }) {
  const { t } = useI18n();
  const { data, loading, error, reload } = useStats(task?.id);
  const stats = data?.stats;
  const units = { h: t('durationH'), m: t('durationM'), s: t('durationS') };

  const figure = (testId: string, title: string, value: number | string, color?: string) => (
    <Col span={4}>
      <Card size="small">
        <Statistic
          title={title}
          value={value}
          valueStyle={color ? { color } : undefined}
          formatter={() => <span data-testid={testId}>{value}</span>}
        />
      </Card>
    </Col>
  );

  return (
    <Drawer
      open
      width="min(820px, 100vw)"
      title={task ? t('statsTitle', { name: task.name }) : t('globalStatsTitle')}
      onClose={onClose}
      extra={
        <Button
          icon={<ReloadOutlined />}
          loading={loading}
          data-testid="stats-refresh"
          onClick={() => void reload()}
        >
          {t('refresh')}
        </Button>
      }
    >
      <div data-testid="stats-drawer">
        {error !== undefined && <Alert type="error" showIcon message={errorText(error, t('statsFailed'))} />}
        {!stats ? (
          loading && <Spin />
        ) : (
          <>
            <Row gutter={[12, 12]}>
              {figure('stats-total', t('statTotal'), stats.total_executions)}
              {figure('stats-success', t('statSuccess'), stats.success_count, RATE_COLORS.green)}
              {figure('stats-failed', t('statFailed'), stats.failed_count, RATE_COLORS.red)}
              {figure('stats-running', t('statRunning'), stats.running_count, '#1677ff')}
              {figure(
                'stats-success-rate',
                t('statSuccessRate'),
                formatPercent(stats.success_rate),
                RATE_COLORS[successRateColor(stats.success_rate)],
              )}
              {figure(
                'stats-avg-duration',
                t('statAvgDuration'),
                formatDuration(stats.avg_duration_seconds, units),
              )}
            </Row>
            <Typography.Paragraph className="stats-latest">
              {t('statLatest')}:{' '}
              <span data-testid="stats-latest">{formatTime(stats.latest_execution_time)}</span>
              {stats.pending_count !== undefined && (
                <Typography.Text type="secondary">
                  {' · '}
                  {t('statPending')} {stats.pending_count} · {t('statTerminated')}{' '}
                  {stats.terminated_count ?? 0} · {t('statSkipped')} {stats.skipped_count ?? 0}
                </Typography.Text>
              )}
            </Typography.Paragraph>
            <Suspense fallback={<Spin />}>
              <StatsCharts runs={data.runs} />
            </Suspense>
          </>
        )}
      </div>
    </Drawer>
  );
}

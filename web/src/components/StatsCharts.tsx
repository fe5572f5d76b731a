// Two small SVG charts drawn by hand (lazy-loaded chunk): runs per hour/day (success stacked on
// failed) and the duration of finished runs over time.

import { Typography } from 'antd';
import dayjs from 'dayjs';
import { useMemo } from 'react';

import type { Execution } from '../api/types';
import { useI18n } from '../i18n';
import { TIME_FORMAT } from '../lib/format';
import { bucketRuns, durationPoints } from '../lib/runs';

const WIDTH = 700;
const HEIGHT = 220;
const PAD = { left: 44, right: 12, top: 12, bottom: 40 };
const PLOT_W = WIDTH - PAD.left - PAD.right;
const PLOT_H = HEIGHT - PAD.top - PAD.bottom;
const COLORS = { success: '#52c41a', failed: '#ff4d4f', line: '#1677ff', grid: '#f0f0f0', axis: '#8c8c8c' };

/** About four round tick values from 0 to max. */
function ticks(max: number): number[] {
  if (max <= 0) return [0];
  const rough = max / 4;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? rough;
  const result: number[] = [];
  for (let v = 0; v <= max + step / 2; v += step) result.push(Number(v.toPrecision(6)));
  return result;
}

function YAxis({ values, top }: { values: number[]; top: number }) {
  return (
    <g>
      {values.map((v) => {
        const y = PAD.top + PLOT_H - (v / top) * PLOT_H;
        return (
          <g key={v}>
            <line x1={PAD.left} x2={WIDTH - PAD.right} y1={y} y2={y} stroke={COLORS.grid} />
            <text x={PAD.left - 6} y={y + 4} textAnchor="end" fontSize={11} fill={COLORS.axis}>
              {v}
            </text>
          </g>
        );
      })}
    </g>
  );
}

function RunsChart({ runs }: { runs: Execution[] }) {
  const { t } = useI18n();
  const { unit, buckets } = useMemo(() => bucketRuns(runs), [runs]);
  const max = Math.max(1, ...buckets.map((b) => b.success + b.failed));
  const yTicks = ticks(max);
  const top = yTicks[yTicks.length - 1] || 1;
  const slot = PLOT_W / Math.max(1, buckets.length);
  const barW = Math.max(2, Math.min(36, slot * 0.7));
  const labelEvery = Math.ceil(buckets.length / 8);
  return (
    <div className="chart" data-testid="stats-runs-chart">
      <Typography.Text strong>
        {t('chartRuns', { n: runs.length, unit: unit === 'hour' ? t('unitHour') : t('unitDay') })}
      </Typography.Text>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} width="100%" role="img">
        <YAxis values={yTicks} top={top} />
        {buckets.map((b, i) => {
          const x = PAD.left + i * slot + (slot - barW) / 2;
          const hSuccess = (b.success / top) * PLOT_H;
          const hFailed = (b.failed / top) * PLOT_H;
          const base = PAD.top + PLOT_H;
          return (
            <g key={b.start}>
              <title>{`${b.label}\n${t('statSuccess')}: ${b.success}\n${t('statFailed')}: ${b.failed}`}</title>
              <rect x={x} y={base - hSuccess} width={barW} height={hSuccess} fill={COLORS.success} />
              <rect x={x} y={base - hSuccess - hFailed} width={barW} height={hFailed} fill={COLORS.failed} />
              {i % labelEvery === 0 && (
                <text x={x + barW / 2} y={base + 16} textAnchor="middle" fontSize={10} fill={COLORS.axis}>
                  {unit === 'hour' ? b.label.slice(6) : b.label.slice(5)}
                </text>
              )}
            </g>
          );
        })}
        <Legend />
      </svg>
    </div>
  );
}

function Legend() {
  const { t } = useI18n();
  const y = HEIGHT - 8;
  return (
    <g fontSize={11} fill={COLORS.axis}>
      <rect x={PAD.left} y={y - 9} width={10} height={10} fill={COLORS.success} />
      <text x={PAD.left + 14} y={y}>
        {t('statSuccess')}
      </text>
      <rect x={PAD.left + 90} y={y - 9} width={10} height={10} fill={COLORS.failed} />
      <text x={PAD.left + 104} y={y}>
        {t('statFailed')}
      </text>
    </g>
  );
}

function DurationChart({ runs }: { runs: Execution[] }) {
  const { t } = useI18n();
  const points = useMemo(() => durationPoints(runs), [runs]);
  const max = Math.max(1, ...points.map((p) => p.seconds));
  const yTicks = ticks(max);
  const top = yTicks[yTicks.length - 1] || 1;
  const first = points[0]?.time ?? 0;
  const span = Math.max(1, (points[points.length - 1]?.time ?? 0) - first);
  const xOf = (time: number) =>
    points.length === 1 ? PAD.left + PLOT_W / 2 : PAD.left + ((time - first) / span) * PLOT_W;
  const yOf = (seconds: number) => PAD.top + PLOT_H - (seconds / top) * PLOT_H;
  const path = points
    .map((p, i) => `${i === 0 ? 'M' : 'L'} ${xOf(p.time).toFixed(1)} ${yOf(p.seconds).toFixed(1)}`)
    .join(' ');
  return (
    <div className="chart" data-testid="stats-duration-chart">
      <Typography.Text strong>{t('chartDuration')}</Typography.Text>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} width="100%" role="img">
        <YAxis values={yTicks} top={top} />
        <path d={path} fill="none" stroke={COLORS.line} strokeWidth={1.5} />
        {points.map((p) => (
          <circle
            key={`${p.time}-${p.seconds}`}
            cx={xOf(p.time)}
            cy={yOf(p.seconds)}
            r={2.5}
            fill={p.status === 'failed' ? COLORS.failed : COLORS.line}
          >
            <title>{`${dayjs(p.time).format(TIME_FORMAT)}: ${p.seconds.toFixed(2)}s`}</title>
          </circle>
        ))}
        {points.length > 0 && (
          <g fontSize={10} fill={COLORS.axis}>
            <text x={PAD.left} y={PAD.top + PLOT_H + 16}>
              {dayjs(first).format('MM-DD HH:mm')}
            </text>
            <text x={WIDTH - PAD.right} y={PAD.top + PLOT_H + 16} textAnchor="end">
              {dayjs(first + span).format('MM-DD HH:mm')}
            </text>
          </g>
        )}
      </svg>
    </div>
  );
}

export default function StatsCharts({ runs }: { runs: Execution[] }) {
  const { t } = useI18n();
  if (runs.length === 0) return <Typography.Text type="secondary">{t('chartEmpty')}</Typography.Text>;
  return (
    <div className="stats-charts">
      <RunsChart runs={runs} />
      <DurationChart runs={runs} />
    </div>
  );
}

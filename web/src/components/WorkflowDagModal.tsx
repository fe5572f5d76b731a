// DAG view of one workflow run (lazy-loaded chunk): the workflow's nodes laid out by dependency
// depth, arrows for dependencies, each node coloured by the status of its child execution.
// Refreshed every 2 s while the run is active.

import { Alert, Modal, Space, Spin, Typography } from 'antd';
import { useMemo } from 'react';

import { errorText } from '../api/client';
import { isActiveStatus } from '../api/live';
import type { Execution, ExecutionStatus, WorkflowNode } from '../api/types';
import { useWorkflowRun } from '../hooks/useWorkflowRun';
import { useI18n, type Translate } from '../i18n';
import { DAG_GEOMETRY, layoutDag } from '../lib/dag';
import { ExecutionProgress, hasProgress } from './ExecutionProgress';
import { EXECUTION_STATUSES, ExecutionStatusTag } from './tags';

/** Node fill and text colours by child execution status; `none` = no run yet. */
export const NODE_COLORS: Record<ExecutionStatus | 'none', { fill: string; stroke: string; text: string }> = {
  none: { fill: '#fafafa', stroke: '#d9d9d9', text: '#595959' },
  pending: { fill: '#f0f5ff', stroke: '#adc6ff', text: '#1d39c4' },
  running: { fill: '#1677ff', stroke: '#0958d9', text: '#ffffff' },
  success: { fill: '#52c41a', stroke: '#389e0d', text: '#ffffff' },
  failed: { fill: '#ff4d4f', stroke: '#cf1322', text: '#ffffff' },
  terminated: { fill: '#fa8c16', stroke: '#d46b08', text: '#ffffff' },
  skipped: { fill: '#d9d9d9', stroke: '#bfbfbf', text: '#595959' },
};

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

interface DagViewProps {
  nodes: WorkflowNode[];
  runsByTask: ReadonlyMap<number, Execution>;
  t: Translate;
}

export function DagView({ nodes, runsByTask, t }: DagViewProps) {
  const layout = useMemo(() => layoutDag(nodes), [nodes]);
  const { nodeWidth: w, nodeHeight: h } = DAG_GEOMETRY;
  const byId = new Map(layout.nodes.map((n) => [n.id, n]));
  const nodeById = new Map(nodes.map((n) => [n.id, n]));
  return (
    <svg
      className="dag-view"
      data-testid="dag-view"
      viewBox={`0 0 ${layout.width} ${layout.height}`}
      width={layout.width}
      style={{ maxWidth: '100%', height: 'auto' }}
      role="img"
    >
      <defs>
        <marker
          id="dag-arrow"
          viewBox="0 0 10 10"
          refX="9"
          refY="5"
          markerWidth="8"
          markerHeight="8"
          orient="auto-start-reverse"
        >
          <path d="M 0 0 L 10 5 L 0 10 z" fill="#8c8c8c" />
        </marker>
      </defs>
      {layout.edges.map(({ from, to }) => {
        const a = byId.get(from);
        const b = byId.get(to);
        if (!a || !b) return null;
        const x1 = a.x + w / 2;
        const y1 = a.y + h;
        const x2 = b.x + w / 2;
        const y2 = b.y;
        const mid = (y1 + y2) / 2;
        return (
          <path
            key={`${from}-${to}`}
            d={`M ${x1} ${y1} C ${x1} ${mid}, ${x2} ${mid}, ${x2} ${y2 - 2}`}
            fill="none"
            stroke="#8c8c8c"
            strokeWidth={1.5}
            markerEnd="url(#dag-arrow)"
            data-testid={`dag-edge-${from}-${to}`}
          />
        );
      })}
      {layout.nodes.map((placed) => {
        const node = nodeById.get(placed.id);
        if (!node) return null;
        const run = runsByTask.get(node.id);
        const status = run?.status ?? 'none';
        const colors = NODE_COLORS[status] ?? NODE_COLORS.none;
        const label = node.node_name || node.name;
        const statusText = run
          ? EXECUTION_STATUSES.includes(run.status)
            ? t(`status_${run.status}`)
            : run.status
          : t('dagNotStarted');
        const percent =
          run && typeof run.result?.progress_percent === 'number'
            ? ` ${Math.round(run.result.progress_percent)}%`
            : '';
        return (
          <g
            key={node.id}
            transform={`translate(${placed.x}, ${placed.y})`}
            className={`dag-node dag-node-${status}`}
            data-testid={`dag-node-${node.id}`}
            data-status={status}
          >
            <title>{`${label} (#${node.id})\n${statusText}${run?.error_message ? `\n${run.error_message}` : ''}`}</title>
            <rect width={w} height={h} rx={8} fill={colors.fill} stroke={colors.stroke} strokeWidth={1.5} />
            <text x={w / 2} y={24} textAnchor="middle" fill={colors.text} fontSize={13} fontWeight={600}>
              {truncate(label, 16)}
            </text>
            <text x={w / 2} y={44} textAnchor="middle" fill={colors.text} fontSize={12}>
              {`#${node.id} · ${statusText}${percent}`}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

interface Props {
  /** The workflow run (kept live by the history drawer). */
  execution: Execution;
  name: string;
  onClose: () => void;
}

export default function WorkflowDagModal({ execution, name, onClose }: Props) {
  const { t } = useI18n();
  const run = useWorkflowRun(execution.task_id, execution.id, isActiveStatus(execution.status));
  return (
    <Modal
      open
      width={960}
      footer={null}
      title={t('dagTitle', { id: execution.id, name })}
      onCancel={onClose}
    >
      <Space direction="vertical" style={{ width: '100%' }} data-testid="dag-modal">
        <Space wrap>
          <ExecutionStatusTag status={execution.status} testId={`dag-status-${execution.id}`} />
          {hasProgress(execution) && <ExecutionProgress execution={execution} testIdPrefix="dag" />}
        </Space>
        {run.error !== undefined && (
          <Alert type="error" showIcon message={errorText(run.error, t('dagLoadFailed'))} />
        )}
        {run.loading && !run.nodes ? (
          <Spin />
        ) : run.nodes && run.nodes.length > 0 ? (
          <div className="dag-scroll">
            <DagView nodes={run.nodes} runsByTask={run.runsByTask} t={t} />
          </div>
        ) : (
          run.nodes && <Typography.Text type="secondary">{t('dagEmpty')}</Typography.Text>
        )}
        <Space wrap size={12} className="dag-legend">
          {(['none', ...EXECUTION_STATUSES] as const).map((status) => (
            <Space key={status} size={4}>
              <span
                className="dag-swatch"
                style={{ background: NODE_COLORS[status].fill, borderColor: NODE_COLORS[status].stroke }}
              />
              {status === 'none' ? t('dagNotStarted') : t(`status_${status}`)}
            </Space>
          ))}
        </Space>
      </Space>
    </Modal>
  );
}

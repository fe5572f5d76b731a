// DAG view of one workflow run (lazy-loaded chunk): the editor's canvas in run mode, each node
// coloured by the status of its child execution. Refreshed every 2 s while the run is active.

import { Alert, App, Button, Modal, Select, Space, Spin, Tooltip, Typography } from 'antd';
import { useMemo, useState } from 'react';

import { api, errorText } from '../api/client';
import { isActiveStatus } from '../api/live';
import type { Execution, WorkflowNode } from '../api/types';
import { useCurrentUser } from '../auth/AuthProvider';
import { useAction } from '../hooks/useAction';
import { useWorkflowRun } from '../hooks/useWorkflowRun';
import { useI18n, type Translate } from '../i18n';
import { ExecutionProgress, hasProgress } from './ExecutionProgress';
import { EXECUTION_STATUSES, ExecutionStatusTag } from './tags';
import { NODE_COLORS, WorkflowCanvas, type CanvasNode } from './WorkflowCanvas';

interface RunCanvasProps {
  nodes: WorkflowNode[];
  runsByTask: ReadonlyMap<number, Execution>;
  t: Translate;
}

/** The workflow canvas in run mode: every node coloured by the status of its run. */
function RunCanvas({ nodes, runsByTask, t }: RunCanvasProps) {
  const canvasNodes: CanvasNode[] = useMemo(
    () =>
      nodes.map((node) => {
        const run = runsByTask.get(node.id);
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
        return {
          task_id: node.id,
          dependencies: node.dependencies,
          label,
          detail: `#${node.id} · ${statusText}${percent}`,
          title: `${label} (#${node.id})\n${statusText}${run?.error_message ? `\n${run.error_message}` : ''}`,
          status: run?.status ?? 'none',
        };
      }),
    [nodes, runsByTask, t],
  );
  return <WorkflowCanvas mode="run" nodes={canvasNodes} height={440} />;
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
  const { can } = useCurrentUser();
  const act = useAction();
  const { message } = App.useApp();
  const [node, setNode] = useState<number>();
  // One node of a finished run runs again alone, as a new child of this run (its newest attempt).
  const rerunNode = async () => {
    if (node === undefined) return;
    const started = await act(() => api.rerunNode(execution.id, node), { failure: t('rerunFailed') });
    if (started) {
      void message.success(t('rerunDone', { id: started.id }));
      run.reload();
    }
  };
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
          <RunCanvas nodes={run.nodes} runsByTask={run.runsByTask} t={t} />
        ) : (
          run.nodes && <Typography.Text type="secondary">{t('dagEmpty')}</Typography.Text>
        )}
        {can.operate && !isActiveStatus(execution.status) && run.nodes && run.nodes.length > 0 && (
          <Space wrap>
            <Select
              style={{ minWidth: 240 }}
              placeholder={t('rerunNodePick')}
              value={node}
              onChange={setNode}
              data-testid="dag-rerun-node-select"
              options={run.nodes.map((n) => ({ value: n.id, label: `${n.node_name || n.name} (#${n.id})` }))}
            />
            <Tooltip title={t('rerunNodeHint')}>
              <Button
                disabled={node === undefined}
                data-testid="dag-rerun-node"
                onClick={() => void rerunNode()}
              >
                {t('rerunNode')}
              </Button>
            </Tooltip>
          </Space>
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

// Execution history of one task or of all tasks: filters, server-side paging, live progress of
// active runs, terminate, the full result, and the DAG of workflow runs.

import { ApartmentOutlined, ReloadOutlined, StopOutlined } from '@ant-design/icons';
import {
  Alert,
  App,
  Button,
  DatePicker,
  Drawer,
  Popconfirm,
  Select,
  Space,
  Table,
  Tooltip,
  Typography,
} from 'antd';
import type { ColumnsType } from 'antd/es/table';
import type { Dayjs } from 'dayjs';
import { lazy, Suspense, useMemo, useState, type HTMLAttributes } from 'react';

import { api, errorText } from '../api/client';
import { isActiveStatus } from '../api/live';
import type { Execution, ExecutionQuery, ExecutionStatus, Task } from '../api/types';
import { useCurrentUser } from '../auth/AuthProvider';
import { useAction } from '../hooks/useAction';
import { useExecutions, useLiveRows } from '../hooks/useExecutions';
import { usePolling } from '../hooks/usePolling';
import { useWorkflowTaskIds } from '../hooks/useTasks';
import { useI18n } from '../i18n';
import { formatDuration, formatTime, TIME_FORMAT } from '../lib/format';
import { testId } from '../lib/testId';
import { ExecutionProgress, hasProgress } from './ExecutionProgress';
import { ResultModal } from './ResultModal';
import { EXECUTION_STATUSES, ExecutionStatusTag, triggerLabel } from './tags';

const WorkflowDagModal = lazy(() => import('./WorkflowDagModal'));

/** How often the list itself is re-read while the drawer is open (new runs appear). */
const LIST_REFRESH_MS = 5000;
const NO_ROWS: Execution[] = [];

interface Props {
  /** undefined = global history. */
  task?: Task;
  onClose: () => void;
}

export function ExecutionDrawer({ task, onClose }: Props) {
  const { t } = useI18n();
  const { can } = useCurrentUser();
  const { message } = App.useApp();
  const act = useAction();

  const [statuses, setStatuses] = useState<ExecutionStatus[]>([]);
  const [range, setRange] = useState<[Dayjs, Dayjs] | null>(null);
  const [paging, setPaging] = useState({ page: 1, size: 20 });
  const query = useMemo<ExecutionQuery>(
    () => ({
      status: statuses.join(',') || undefined,
      start_time_from: range?.[0].toISOString(),
      start_time_to: range?.[1].toISOString(),
      skip: (paging.page - 1) * paging.size,
      limit: paging.size,
    }),
    [statuses, range, paging],
  );
  const list = useExecutions(task?.id, query);
  usePolling(() => void list.reload(true), LIST_REFRESH_MS, true);
  const rows = useLiveRows(list.data?.executions ?? NO_ROWS);

  const workflowIds = useWorkflowTaskIds(!task);
  const isWorkflowRun = (e: Execution) => (task ? task.task_type === 'workflow' : workflowIds.has(e.task_id));

  const [resultOf, setResultOf] = useState<Execution>();
  const [dagOf, setDagOf] = useState<Execution>();
  const dagExecution = dagOf && (rows.find((r) => r.id === dagOf.id) ?? dagOf);

  const terminate = async (execution: Execution) => {
    await act(() => api.terminateExecution(execution.id), {
      success: t('terminateRequested'),
      failure: t('terminateFailed'),
    });
    void list.reload(true);
  };

  const units = { h: t('durationH'), m: t('durationM'), s: t('durationS') };
  // The result (live progress) comes right after the status so that it is on screen without
  // scrolling sideways on a laptop-sized window.
  const columns: ColumnsType<Execution> = [
    { key: 'id', title: 'ID', dataIndex: 'id', width: 80 },
    ...(task
      ? []
      : [
          {
            key: 'task',
            title: t('execTask'),
            width: 160,
            render: (_: unknown, e: Execution) => (
              <span>
                {e.task_name || '-'} <Typography.Text type="secondary">#{e.task_id}</Typography.Text>
              </span>
            ),
          },
        ]),
    {
      key: 'status',
      title: t('execStatus'),
      width: 90,
      render: (_, e) => <ExecutionStatusTag status={e.status} testId={`exec-status-${e.id}`} />,
    },
    {
      key: 'result',
      title: t('execResult'),
      width: 300,
      render: (_, e) => {
        const result = e.result ?? {};
        if (!hasProgress(e) && Object.keys(result).length === 0) return '-';
        const summary =
          typeof result.message === 'string' && result.message ? result.message : JSON.stringify(result);
        return (
          <div
            role="button"
            tabIndex={0}
            className="exec-result"
            data-testid={`exec-result-${e.id}`}
            title={t('viewResult')}
            onClick={() => setResultOf(e)}
            onKeyDown={(event) => event.key === 'Enter' && setResultOf(e)}
          >
            {hasProgress(e) ? (
              <ExecutionProgress execution={e} />
            ) : (
              <Typography.Link ellipsis>{summary}</Typography.Link>
            )}
          </div>
        );
      },
    },
    {
      key: 'trigger',
      title: t('execTrigger'),
      width: 90,
      render: (_, e) =>
        e.parent_execution_id ? (
          <Tooltip title={t('childRunOf', { id: e.parent_execution_id })}>
            {triggerLabel(e.trigger, t)}
          </Tooltip>
        ) : (
          triggerLabel(e.trigger, t)
        ),
    },
    {
      key: 'scheduled',
      title: t('execScheduled'),
      width: 165,
      render: (_, e) => formatTime(e.scheduled_time),
    },
    { key: 'start', title: t('execStart'), width: 165, render: (_, e) => formatTime(e.start_time) },
    { key: 'end', title: t('execEnd'), width: 165, render: (_, e) => formatTime(e.end_time) },
    {
      key: 'duration',
      title: t('execDuration'),
      width: 100,
      render: (_, e) => (e.end_time ? formatDuration(e.duration_seconds, units) : '-'),
    },
    { key: 'retry', title: t('execRetry'), dataIndex: 'retry_count', width: 80 },
    {
      key: 'executor',
      title: t('execExecutor'),
      width: 130,
      ellipsis: true,
      render: (_, e) => e.executor || '-',
    },
    {
      key: 'error',
      title: t('execError'),
      width: 180,
      ellipsis: { showTitle: false },
      render: (_, e) =>
        e.error_message ? (
          <Tooltip title={e.error_message}>
            <Typography.Text type="danger" data-testid={`exec-error-${e.id}`}>
              {e.error_message}
            </Typography.Text>
          </Tooltip>
        ) : (
          '-'
        ),
    },
    {
      key: 'actions',
      title: t('execActions'),
      width: 130,
      fixed: 'right',
      render: (_, e) => (
        <Space size={0}>
          {can.operate && isActiveStatus(e.status) && (
            <Popconfirm
              title={t('confirmTerminate')}
              okText={t('ok')}
              cancelText={t('cancel')}
              okButtonProps={{ danger: true, ...testId(`confirm-terminate-${e.id}`) }}
              onConfirm={() => terminate(e)}
            >
              <Button
                type="link"
                size="small"
                danger
                icon={<StopOutlined />}
                data-testid={`exec-terminate-${e.id}`}
              >
                {t('terminate')}
              </Button>
            </Popconfirm>
          )}
          {isWorkflowRun(e) && (
            <Button
              type="link"
              size="small"
              icon={<ApartmentOutlined />}
              data-testid={`exec-dag-${e.id}`}
              onClick={() => setDagOf(e)}
            >
              {t('dag')}
            </Button>
          )}
        </Space>
      ),
    },
  ];

  return (
    <Drawer
      open
      width="min(1500px, 96vw)"
      title={task ? t('historyTitle', { name: task.name }) : t('globalHistoryTitle')}
      onClose={onClose}
      extra={
        <Button
          icon={<ReloadOutlined />}
          data-testid="history-refresh"
          onClick={async () => {
            await list.reload();
            void message.success(t('refreshed'));
          }}
        >
          {t('refresh')}
        </Button>
      }
    >
      <div data-testid="history-drawer">
        <Space wrap className="filters">
          <Select<ExecutionStatus[]>
            mode="multiple"
            allowClear
            style={{ minWidth: 220 }}
            placeholder={t('filterStatus')}
            value={statuses}
            data-testid="history-filter-status"
            options={EXECUTION_STATUSES.map((s) => ({ value: s, label: t(`status_${s}`) }))}
            onChange={(value) => {
              setStatuses(value);
              setPaging((p) => ({ ...p, page: 1 }));
            }}
          />
          <span data-testid="history-filter-time">
            <DatePicker.RangePicker
              showTime
              format={TIME_FORMAT}
              value={range}
              placeholder={[t('execStart'), t('execEnd')]}
              onChange={(value) => {
                setRange(value && value[0] && value[1] ? [value[0], value[1]] : null);
                setPaging((p) => ({ ...p, page: 1 }));
              }}
            />
          </span>
        </Space>
        {list.error !== undefined && (
          <Alert
            type="error"
            showIcon
            className="list-error"
            message={errorText(list.error, t('loadExecutionsFailed'))}
          />
        )}
        <Table<Execution>
          rowKey="id"
          size="small"
          columns={columns}
          dataSource={rows}
          loading={list.loading}
          scroll={{ x: columns.reduce((sum, c) => sum + Number(c.width ?? 0), 0) }}
          onRow={(e) =>
            ({ ...testId(`exec-row-${e.id}`), 'data-status': e.status }) as HTMLAttributes<HTMLElement>
          }
          pagination={{
            current: paging.page,
            pageSize: paging.size,
            total: list.data?.total ?? 0,
            showSizeChanger: true,
            showTotal: (total) => t('totalItems', { total }),
            onChange: (page, size) => setPaging({ page, size }),
          }}
        />
      </div>
      {resultOf && (
        <ResultModal
          execution={rows.find((r) => r.id === resultOf.id) ?? resultOf}
          onClose={() => setResultOf(undefined)}
        />
      )}
      {dagExecution && (
        <Suspense fallback={null}>
          <WorkflowDagModal
            execution={dagExecution}
            name={task?.name ?? dagExecution.task_name ?? ''}
            onClose={() => setDagOf(undefined)}
          />
        </Suspense>
      )}
    </Drawer>
  );
}

// Execution history of one task or of all tasks: filters, server-side paging, live progress of
// active runs, terminate, the full result, and the DAG of workflow runs.

import { ApartmentOutlined, FileTextOutlined, ReloadOutlined, StopOutlined } from '@ant-design/icons';
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
import { lazy, Suspense, useCallback, useMemo, useState, type HTMLAttributes } from 'react';

import { api, errorText } from '../api/client';
import { isActiveStatus } from '../api/live';
import type { Execution, ExecutionQuery, ExecutionStatus, Task } from '../api/types';
import { useCurrentUser } from '../auth/AuthProvider';
import { useAction } from '../hooks/useAction';
import { useExecutions, useLiveRows } from '../hooks/useExecutions';
import { usePolling } from '../hooks/usePolling';
import { useDebouncedValue } from '../hooks/useDebouncedValue';
import { useRemote } from '../hooks/useRemote';
import { useWorkflowTaskIds } from '../hooks/useTasks';
import { useI18n } from '../i18n';
import { formatDuration, formatShortTime, formatTime, TIME_FORMAT } from '../lib/format';
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
  // Global history only: runs of one task.
  const [taskFilter, setTaskFilter] = useState<number>();
  const query = useMemo<ExecutionQuery>(
    () => ({
      task_id: task ? undefined : taskFilter,
      status: statuses.join(',') || undefined,
      start_time_from: range?.[0].toISOString(),
      start_time_to: range?.[1].toISOString(),
      skip: (paging.page - 1) * paging.size,
      limit: paging.size,
    }),
    [task, taskFilter, statuses, range, paging],
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

  // A workflow run reruns from its failed step, reusing the nodes that succeeded.
  const rerun = async (execution: Execution) => {
    const started = await act(() => api.rerunExecution(execution.id, 'failed'), {
      failure: t('rerunFailed'),
    });
    if (started) void message.success(t('rerunDone', { id: started.id }));
    void list.reload(true);
  };

  const units = { h: t('durationH'), m: t('durationM'), s: t('durationS') };
  // Every column fits a 1280 px window (fixed layout, compact times with the full one as tooltip);
  // the result (live progress) takes the room that is left.
  const columns: ColumnsType<Execution> = [
    { key: 'id', title: 'ID', dataIndex: 'id', width: 60 },
    ...(task
      ? []
      : [
          {
            key: 'task',
            title: t('execTask'),
            width: 120,
            ellipsis: true,
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
      width: 84,
      render: (_, e) => <ExecutionStatusTag status={e.status} testId={`exec-status-${e.id}`} />,
    },
    {
      key: 'result',
      title: t('execResult'),
      render: (_, e) => {
        const result = e.result ?? {};
        if (!hasProgress(e) && Object.keys(result).length === 0) return '-';
        // A readable line, never raw JSON: the message, else the exit code, else "view result".
        const summary =
          typeof result.message === 'string' && result.message
            ? result.message
            : typeof result.exit_code === 'number'
              ? `exit ${result.exit_code}`
              : t('viewResult');
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
      width: 80,
      // The logical date under the trigger; the parent, the rerun link, the params and who triggered
      // or terminated the run in the tooltip.
      render: (_, e) => {
        const notes = [
          e.parent_execution_id ? t('childRunOf', { id: e.parent_execution_id }) : '',
          e.rerun_of_execution_id ? t('rerunOf', { id: e.rerun_of_execution_id }) : '',
          e.logical_date ? `${t('logicalDate')}: ${e.logical_date}` : '',
          e.params && Object.keys(e.params).length ? JSON.stringify(e.params) : '',
          e.triggered_by ? t('triggeredBy', { user: e.triggered_by }) : '',
          e.terminated_by ? t('terminatedBy', { user: e.terminated_by }) : '',
          e.note ?? '',
        ].filter(Boolean);
        const label = (
          <span
            data-testid={`exec-trigger-${e.id}`}
            data-triggered-by={e.triggered_by || undefined}
            data-terminated-by={e.terminated_by || undefined}
          >
            {triggerLabel(e.trigger, t)}
            {e.logical_date && <div className="exec-logical-date">{e.logical_date.slice(5)}</div>}
            {/* The mark itself (日历数据未覆盖); the whole note is in the tooltip. */}
            {e.note && (
              <div className="exec-note" data-testid={`exec-note-${e.id}`}>
                {e.note.split(':')[0]}
              </div>
            )}
          </span>
        );
        return notes.length ? <Tooltip title={notes.join('\n')}>{label}</Tooltip> : label;
      },
    },
    {
      key: 'start',
      title: t('execStart'),
      width: 118,
      // The planned time, which the start follows, is in the tooltip.
      render: (_, e) => (
        <span
          title={`${t('execScheduled')}: ${formatTime(e.scheduled_time)}\n${t('execStart')}: ${formatTime(e.start_time)}`}
        >
          {formatShortTime(e.start_time, true)}
        </span>
      ),
    },
    {
      key: 'end',
      title: t('execEnd'),
      width: 118,
      render: (_, e) => <span title={formatTime(e.end_time)}>{formatShortTime(e.end_time, true)}</span>,
    },
    {
      key: 'duration',
      title: t('execDuration'),
      width: 80,
      render: (_, e) => (e.end_time ? formatDuration(e.duration_seconds, units) : '-'),
    },
    { key: 'retry', title: t('execRetry'), dataIndex: 'retry_count', width: 76 },
    {
      key: 'executor',
      title: t('execExecutor'),
      width: 80,
      ellipsis: true,
      render: (_, e) => e.executor || '-',
    },
    {
      key: 'error',
      title: t('execError'),
      width: 110,
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
      width: 120,
      render: (_, e) => (
        <Space size={0}>
          {!isWorkflowRun(e) && (
            <Tooltip title={t('viewLog')}>
              <Button
                type="link"
                size="small"
                icon={<FileTextOutlined />}
                aria-label={t('viewLog')}
                data-testid={`exec-log-${e.id}`}
                onClick={() => setResultOf(e)}
              />
            </Tooltip>
          )}
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
          {can.operate && !e.parent_execution_id && (e.status === 'failed' || e.status === 'terminated') && (
            <Button type="link" size="small" data-testid={`exec-rerun-${e.id}`} onClick={() => void rerun(e)}>
              {t('rerun')}
            </Button>
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
      // Narrower margins than a drawer's default: every column of the guide fits at 1280 px.
      styles={{ body: { padding: '16px 16px' } }}
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
          {!task && (
            <TaskPicker
              value={taskFilter}
              onChange={(id) => {
                setTaskFilter(id);
                setPaging((p) => ({ ...p, page: 1 }));
              }}
            />
          )}
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
          tableLayout="fixed"
          className="exec-table"
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

/** A task chosen by searching its name (sub-tasks of workflows included), for the global history. */
function TaskPicker({
  value,
  onChange,
}: {
  value: number | undefined;
  onChange: (id: number | undefined) => void;
}) {
  const { t } = useI18n();
  const [search, setSearch] = useState('');
  const name = useDebouncedValue(search.trim(), 300);
  const { data } = useRemote(
    useCallback(
      () => api.listTasks({ skip: 0, limit: 20, name: name || undefined, include_children: true }),
      [name],
    ),
  );
  return (
    <Select<number>
      showSearch
      allowClear
      filterOption={false}
      style={{ minWidth: 220 }}
      placeholder={t('filterTask')}
      value={value}
      data-testid="history-filter-task"
      onSearch={setSearch}
      onChange={(id) => onChange(id ?? undefined)}
      options={(data?.tasks ?? []).map((task) => ({ value: task.id, label: `${task.name} #${task.id}` }))}
    />
  );
}

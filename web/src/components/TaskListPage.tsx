// The scheduler page: toolbar, filters, the task table (server-side paging, sorting, workflow
// expansion) with auto-refresh every 5 s, and the form modal and drawers it opens.

import {
  BarChartOutlined,
  HistoryOutlined,
  PauseCircleOutlined,
  PlayCircleOutlined,
  PlusOutlined,
  ReloadOutlined,
  TagOutlined,
} from '@ant-design/icons';
import { Alert, App, Button, Input, Select, Space, Table } from 'antd';
import type { TableProps } from 'antd';
import { useCallback, useEffect, useMemo, useState, type Key } from 'react';

import { ApiError, api, errorText } from '../api/client';
import type { SortOrder, Task, TaskListQuery, TaskOrderBy, TaskType } from '../api/types';
import { useCurrentUser } from '../auth/AuthProvider';
import { useAction } from '../hooks/useAction';
import { useDebouncedValue } from '../hooks/useDebouncedValue';
import { usePolling } from '../hooks/usePolling';
import { useTasks } from '../hooks/useTasks';
import { useWorkflowChildren } from '../hooks/useWorkflowChildren';
import { useI18n } from '../i18n';
import type { FormMode } from '../lib/taskForm';
import { testId } from '../lib/testId';
import { BackfillModal } from './BackfillModal';
import { ExecutionDrawer } from './ExecutionDrawer';
import { StatsDrawer } from './StatsDrawer';
import { TASK_TYPES } from './tags';
import type { TaskActionHandlers, TaskStateAction } from './TaskActions';
import { TaskFormModal } from './TaskFormModal';
import { TransferButtons } from './TransferButtons';
import { buildRows, taskColumns, taskIdOfKey, type Row } from './taskRows';

export const AUTO_REFRESH_MS = 5000;
const DEFAULT_SORT: { order_by: TaskOrderBy; order: SortOrder } = { order_by: 'id', order: 'desc' };

/** Which drawer shows what: a task, or everything (global). */
type Scope = { task?: Task };

export function TaskListPage() {
  const { t } = useI18n();
  const { can } = useCurrentUser();
  const { message, modal } = App.useApp();
  const act = useAction();

  // ---- list query ----
  const [paging, setPaging] = useState({ page: 1, size: 20 });
  const [taskType, setTaskType] = useState<TaskType>();
  const [enabled, setEnabled] = useState<boolean>();
  const [nameInput, setNameInput] = useState('');
  const name = useDebouncedValue(nameInput.trim(), 400);
  const [tagInput, setTagInput] = useState('');
  const tag = useDebouncedValue(tagInput.trim(), 400);
  const [sort, setSort] = useState(DEFAULT_SORT);
  const query = useMemo<TaskListQuery>(
    () => ({
      skip: (paging.page - 1) * paging.size,
      limit: paging.size,
      task_type: taskType,
      enabled,
      name: name || undefined,
      tag: tag || undefined,
      // A name or tag search also finds the sub-tasks inside workflows (hidden from the plain list).
      include_children: name || tag ? true : undefined,
      ...sort,
    }),
    [paging, taskType, enabled, name, tag, sort],
  );
  const tasks = useTasks(query);

  // ---- workflow expansion (kept across refreshes) ----
  const [expandedKeys, setExpandedKeys] = useState<readonly Key[]>([]);
  const expandedIds = useMemo(
    () => [...new Set(expandedKeys.map((key) => taskIdOfKey(String(key))))],
    [expandedKeys],
  );
  const { children, refresh: refreshChildren } = useWorkflowChildren(expandedIds);

  // ---- refresh ----
  const [autoRefresh, setAutoRefresh] = useState(true);
  const [refreshing, setRefreshing] = useState(false);
  const reloadTasks = tasks.reload;
  const refreshAll = useCallback(
    () => Promise.all([reloadTasks(true), refreshChildren(expandedIds)]).then(() => undefined),
    [reloadTasks, refreshChildren, expandedIds],
  );
  usePolling(() => void refreshAll(), AUTO_REFRESH_MS, autoRefresh);
  const refreshNow = async () => {
    setRefreshing(true);
    await refreshAll();
    setRefreshing(false);
  };

  // ---- dialogs ----
  const [form, setForm] = useState<{ mode: FormMode; task?: Task }>();
  const [history, setHistory] = useState<Scope>();
  const [stats, setStats] = useState<Scope>();
  const [backfill, setBackfill] = useState<Task>();

  // An alert's link (?task=ID&execution=ID) opens that task's history once the page is up.
  useEffect(() => {
    const linked = Number(new URLSearchParams(window.location.search).get('task'));
    if (!Number.isInteger(linked) || linked <= 0) return;
    api.getTask(linked).then(
      (task) => setHistory({ task }),
      () => undefined,
    );
  }, []);

  // ---- row actions ----
  const handlers = useMemo<TaskActionHandlers>(() => {
    const stateTexts: Record<TaskStateAction, { success: string; failure: string }> = {
      enable: { success: t('taskEnabled'), failure: t('enableFailed') },
      disable: { success: t('taskDisabled'), failure: t('disableFailed') },
      pause: { success: t('taskPaused'), failure: t('pauseFailed') },
      resume: { success: t('taskResumed'), failure: t('resumeFailed') },
    };
    const afterDelete = (task: Task) => {
      // Deleting the last top-level row of a page moves back one page.
      const rows = tasks.data?.tasks ?? [];
      const lastOnPage = rows.length === 1 && rows[0]?.id === task.id;
      if (lastOnPage && paging.page > 1) setPaging((p) => ({ ...p, page: p.page - 1 }));
      void refreshAll();
    };
    const forceDelete = (task: Task, detail: string) =>
      modal.confirm({
        title: t('forceDeleteTitle'),
        content: (
          <>
            <p data-testid="force-delete-detail">{detail}</p>
            <p>{t('forceDeleteQuestion')}</p>
          </>
        ),
        okText: t('forceDelete'),
        cancelText: t('cancel'),
        okButtonProps: { danger: true, ...testId('force-delete-ok') },
        onOk: async () => {
          const done = await act(() => api.deleteTask(task.id, true), {
            success: t('deleted'),
            failure: t('deleteFailed'),
          });
          if (done) afterDelete(task);
        },
      });
    return {
      onEdit: (task) => setForm({ mode: 'edit', task }),
      onCopy: (task) => setForm({ mode: 'copy', task }),
      onHistory: (task) => setHistory({ task }),
      onStats: (task) => setStats({ task }),
      onBackfill: (task) => setBackfill(task),
      onSetState: async (task, action) => {
        await act(() => api.setTaskState(task.id, action), stateTexts[action]);
        void refreshAll();
      },
      onTrigger: async (task) => {
        const triggered = await act(() => api.triggerTask(task.id), { failure: t('triggerFailed') });
        if (triggered?.scheduler_up === false) void message.warning(t('taskTriggeredNoScheduler'));
        else if (triggered) void message.success(t('taskTriggered'));
        void refreshAll();
      },
      onDelete: async (task) => {
        try {
          await api.deleteTask(task.id);
        } catch (error) {
          if (error instanceof ApiError && error.status === 409) forceDelete(task, error.detail);
          else void message.error(errorText(error, t('deleteFailed')));
          return;
        }
        void message.success(t('deleted'));
        afterDelete(task);
      },
    };
  }, [t, act, message, modal, refreshAll, tasks.data, paging.page]);

  const columns = useMemo(() => taskColumns({ t, can, handlers, query }), [t, can, handlers, query]);
  const rows = useMemo(() => buildRows(tasks.data?.tasks ?? [], children, t), [tasks.data, children, t]);

  const onTableChange: TableProps<Row>['onChange'] = (pagination, _filters, sorter, extra) => {
    if (extra.action === 'sort') {
      const single = Array.isArray(sorter) ? sorter[0] : sorter;
      setSort(
        single?.order && single.columnKey
          ? { order_by: single.columnKey as TaskOrderBy, order: single.order === 'ascend' ? 'asc' : 'desc' }
          : DEFAULT_SORT,
      );
      setPaging((p) => ({ ...p, page: 1 }));
    } else if (extra.action === 'paginate') {
      setPaging({ page: pagination.current ?? 1, size: pagination.pageSize ?? 20 });
    }
  };

  return (
    <div className="task-page">
      <Space wrap className="toolbar">
        {can.manage && (
          <Button
            type="primary"
            icon={<PlusOutlined />}
            data-testid="create-task"
            onClick={() => setForm({ mode: 'create' })}
          >
            {t('createTask')}
          </Button>
        )}
        <TransferButtons canImport={can.manage} onImported={() => void refreshAll()} />
        <Button icon={<BarChartOutlined />} data-testid="global-stats" onClick={() => setStats({})}>
          {t('globalStats')}
        </Button>
        <Button icon={<HistoryOutlined />} data-testid="global-history" onClick={() => setHistory({})}>
          {t('globalHistory')}
        </Button>
        <Button
          icon={<ReloadOutlined />}
          loading={refreshing}
          data-testid="refresh"
          onClick={() => void refreshNow()}
        >
          {t('refresh')}
        </Button>
        <Button
          icon={autoRefresh ? <PauseCircleOutlined /> : <PlayCircleOutlined />}
          data-testid="auto-refresh-toggle"
          data-state={autoRefresh ? 'on' : 'off'}
          onClick={() => setAutoRefresh((on) => !on)}
        >
          {autoRefresh ? t('stopAutoRefresh') : t('startAutoRefresh')}
        </Button>
      </Space>

      <Space wrap className="filters">
        <Select<TaskType>
          allowClear
          style={{ width: 160 }}
          placeholder={t('filterTaskType')}
          value={taskType}
          data-testid="filter-task-type"
          options={TASK_TYPES.map((type) => ({ value: type, label: t(`type_${type}`) }))}
          onChange={(value) => {
            setTaskType(value);
            setPaging((p) => ({ ...p, page: 1 }));
          }}
        />
        <Select<'true' | 'false'>
          allowClear
          style={{ width: 140 }}
          placeholder={t('filterEnabled')}
          value={enabled === undefined ? undefined : enabled ? 'true' : 'false'}
          data-testid="filter-enabled"
          options={[
            { value: 'true', label: t('enabledTag') },
            { value: 'false', label: t('disabledTag') },
          ]}
          onChange={(value) => {
            setEnabled(value === undefined ? undefined : value === 'true');
            setPaging((p) => ({ ...p, page: 1 }));
          }}
        />
        <Input.Search
          allowClear
          style={{ width: 240 }}
          placeholder={t('filterName')}
          value={nameInput}
          data-testid="filter-name"
          onChange={(event) => {
            setNameInput(event.target.value);
            setPaging((p) => ({ ...p, page: 1 }));
          }}
        />
        <Input
          allowClear
          style={{ width: 180 }}
          prefix={<TagOutlined />}
          placeholder={t('filterTag')}
          value={tagInput}
          data-testid="filter-tag"
          onChange={(event) => {
            setTagInput(event.target.value);
            setPaging((p) => ({ ...p, page: 1 }));
          }}
        />
      </Space>

      {tasks.error !== undefined && (
        <Alert
          type="error"
          showIcon
          className="list-error"
          data-testid="list-error"
          message={errorText(tasks.error, t('loadTasksFailed'))}
        />
      )}

      <Table<Row>
        rowKey="key"
        size="small"
        tableLayout="fixed"
        className="task-table"
        columns={columns}
        dataSource={rows}
        loading={tasks.loading}
        onChange={onTableChange}
        onRow={(row) => ({
          className: row.kind === 'task' && row.depth > 0 ? 'child-task-row' : undefined,
          ...(row.kind === 'task' ? testId(`task-row-${row.task.id}`) : {}),
        })}
        expandable={{
          expandedRowKeys: expandedKeys,
          onExpandedRowsChange: setExpandedKeys,
          indentSize: 24,
          expandIcon: ({ expanded, onExpand, record }) =>
            record.kind === 'task' && record.task.task_type === 'workflow' && record.children ? (
              <button
                type="button"
                className={`ant-table-row-expand-icon ant-table-row-expand-icon-${expanded ? 'expanded' : 'collapsed'}`}
                aria-label={expanded ? t('collapseWorkflow') : t('expandWorkflow')}
                aria-expanded={expanded}
                data-testid={`expand-${record.task.id}`}
                onClick={(event) => onExpand(record, event)}
              />
            ) : (
              <span className="ant-table-row-expand-icon ant-table-row-expand-icon-spaced" />
            ),
        }}
        pagination={{
          current: paging.page,
          pageSize: paging.size,
          total: tasks.data?.total ?? 0,
          showSizeChanger: true,
          pageSizeOptions: [10, 20, 50, 100],
          showTotal: (total) => t('totalItems', { total }),
        }}
      />

      {form && (
        <TaskFormModal
          mode={form.mode}
          task={form.task}
          onClose={() => setForm(undefined)}
          onSaved={() => {
            setForm(undefined);
            void refreshAll();
          }}
        />
      )}
      {history && <ExecutionDrawer task={history.task} onClose={() => setHistory(undefined)} />}
      {stats && <StatsDrawer task={stats.task} onClose={() => setStats(undefined)} />}
      {backfill && (
        <BackfillModal task={backfill} canOperate={can.operate} onClose={() => setBackfill(undefined)} />
      )}
    </div>
  );
}

// The task table: rows (top-level tasks with their workflow sub-tasks as tree children) and columns.

import { ApartmentOutlined, LoadingOutlined, SubnodeOutlined } from '@ant-design/icons';
import { Space, Tag, Tooltip, Typography } from 'antd';
import type { ColumnsType, ColumnType } from 'antd/es/table';
import type { ReactNode } from 'react';
import type { SortOrder as AntSortOrder } from 'antd/es/table/interface';

import { errorText } from '../api/client';
import type { Task, TaskOrderBy, TaskListQuery } from '../api/types';
import type { Permissions } from '../auth/permissions';
import type { ChildrenState } from '../hooks/useWorkflowChildren';
import type { Translate } from '../i18n';
import { formatShortTime, formatTime } from '../lib/format';
import { describeSchedule } from '../lib/schedule';
import { ExecutionStatusTag, ScheduleStatusTag, TaskLabels, TaskTypeTag } from './tags';
import { TaskActions, type TaskActionHandlers } from './TaskActions';

export interface TaskRow {
  kind: 'task';
  /** Path of task ids from the top-level row: "12", "12/5". */
  key: string;
  task: Task;
  depth: number;
  /** Set on workflow rows (tree data); a placeholder while loading or when empty. */
  children?: Row[];
}

export interface PlaceholderRow {
  kind: 'placeholder';
  key: string;
  text: string;
  loading: boolean;
}

export type Row = TaskRow | PlaceholderRow;

const MAX_DEPTH = 4;

/** Task id of a row key. */
export function taskIdOfKey(key: string): number {
  return Number(key.slice(key.lastIndexOf('/') + 1));
}

export function buildRows(
  tasks: Task[],
  children: ReadonlyMap<number, ChildrenState>,
  t: Translate,
  parentKey = '',
  depth = 0,
): Row[] {
  const path = parentKey.split('/');
  return tasks
    .filter((task) => !path.includes(String(task.id)))
    .map((task) => {
      const key = parentKey ? `${parentKey}/${task.id}` : String(task.id);
      const row: TaskRow = { kind: 'task', key, task, depth };
      if (task.task_type === 'workflow' && depth < MAX_DEPTH) {
        const state = children.get(task.id);
        const placeholder = (text: string, loading = false): Row[] => [
          { kind: 'placeholder', key: `${key}/-`, text, loading },
        ];
        if (state?.nodes) {
          row.children = state.nodes.length
            ? buildRows(state.nodes, children, t, key, depth + 1)
            : placeholder(t('noChildren'));
        } else if (state?.error) {
          row.children = placeholder(`${t('loadChildrenFailed')}: ${errorText(state.error, '')}`);
        } else {
          row.children = placeholder(t('loadingChildren'), true);
        }
      }
      return row;
    });
}

interface ColumnOptions {
  t: Translate;
  can: Permissions;
  handlers: TaskActionHandlers;
  query: TaskListQuery;
}

/** Rough rendered width of a 14 px label: CJK glyphs are square, Latin ones about half as wide. */
function labelWidth(text: string): number {
  let width = 0;
  for (const ch of text) width += /[\u2e80-\u9fff\uff00-\uffef]/.test(ch) ? 14 : 8;
  return width;
}

/**
 * Width of the actions column: the two inline actions and 更多 (TaskActions), in the current
 * language (a small link button adds 2 × 7 px of padding and a border; 更多 has its arrow), plus
 * the cell padding.
 */
export function actionsWidth(t: Translate, can: Permissions): number {
  const labels = can.operate ? [t('trigger'), t('history'), t('more')] : [t('history'), t('stats')];
  const arrow = can.operate ? 18 : 0;
  return labels.reduce((sum, label) => sum + labelWidth(label) + 16, 0) + arrow + 16 + 4;
}

/** A time cell: the compact form, the full time as its tooltip. */
function TimeCell({ value }: { value: string | null | undefined }) {
  return <span title={formatTime(value)}>{formatShortTime(value)}</span>;
}

export function taskColumns({ t, can, handlers, query }: ColumnOptions): ColumnsType<Row> {
  const sortOrder = (field: TaskOrderBy): AntSortOrder =>
    query.order_by === field ? (query.order === 'asc' ? 'ascend' : 'descend') : null;

  /** A column whose cells render tasks; placeholder rows span the whole table in the first column. */
  const column = (
    key: string,
    title: string,
    render: (task: Task, row: TaskRow) => ReactNode,
    extra: Partial<ColumnType<Row>> = {},
  ): ColumnType<Row> => ({
    key,
    title,
    onCell: (row) => (row.kind === 'placeholder' ? { colSpan: key === 'id' ? columnCount : 0 } : {}),
    render: (_: unknown, row: Row) =>
      row.kind === 'task' ? (
        render(row.task, row)
      ) : key === 'id' ? (
        <Typography.Text type="secondary" data-testid="children-placeholder">
          {row.loading && <LoadingOutlined style={{ marginRight: 8 }} />}
          {row.text}
        </Typography.Text>
      ) : null,
    ...extra,
  });
  const sortable = (field: TaskOrderBy): Partial<ColumnType<Row>> => ({
    sorter: true,
    sortOrder: sortOrder(field),
    sortDirections: ['descend', 'ascend'],
  });

  const columns: ColumnsType<Row> = [
    column('id', t('colId'), (task) => task.id, { width: 84, ...sortable('id') }),
    column(
      'name',
      t('colName'),
      (task, row) => {
        const nodeName = 'node_name' in task && typeof task.node_name === 'string' ? task.node_name : '';
        return (
          <Space size={6}>
            {row.depth > 0 && <SubnodeOutlined className="child-task-icon" />}
            {task.task_type === 'workflow' && <ApartmentOutlined className="workflow-icon" />}
            <Tooltip
              title={[nodeName && nodeName !== task.name ? nodeName : '', task.description]
                .filter(Boolean)
                .join(' · ')}
            >
              <span data-testid={`task-name-${task.id}`}>{task.name}</span>
            </Tooltip>
            <TaskLabels tags={task.tags} taskId={task.id} />
          </Space>
        );
      },
      { ellipsis: true, ...sortable('name') },
    ),
    column('task_type', t('colType'), (task) => <TaskTypeTag type={task.task_type} />, {
      width: 88,
      ...sortable('task_type'),
    }),
    column(
      'schedule',
      t('colSchedule'),
      (task) => (
        // The whole schedule and its zone in the tooltip: a long cron is cut short in the cell.
        <Tooltip title={[describeSchedule(task, t), task.timezone].filter(Boolean).join(' · ')}>
          <Typography.Text code={Boolean(task.cron_expression)}>{describeSchedule(task, t)}</Typography.Text>
        </Tooltip>
      ),
      { width: 104, ellipsis: true },
    ),
    column(
      'enabled',
      t('colEnabled'),
      (task) =>
        !task.enabled ? (
          <Tag data-testid={`task-enabled-${task.id}`}>{t('disabledTag')}</Tag>
        ) : task.paused ? (
          <Tag color="warning" data-testid={`task-enabled-${task.id}`}>
            {t('pausedTag')}
          </Tag>
        ) : (
          <Tag color="success" data-testid={`task-enabled-${task.id}`}>
            {t('enabledTag')}
          </Tag>
        ),
      { width: 88, ...sortable('enabled') },
    ),
    column('next_run_time', t('colNextRun'), (task) => <TimeCell value={task.next_run_time} />, {
      width: 100,
    }),
    column(
      'schedule_status',
      t('colScheduleStatus'),
      (task) => <ScheduleStatusTag status={task.schedule_status} />,
      { width: 80 },
    ),
    column(
      'latest',
      t('colLatest'),
      (task) =>
        task.latest_execution_status ? (
          <Space size={4}>
            <ExecutionStatusTag status={task.latest_execution_status} testId={`task-latest-${task.id}`} />
            <Typography.Text type="secondary" style={{ fontSize: 12 }}>
              <TimeCell value={task.latest_execution_time} />
            </Typography.Text>
          </Space>
        ) : (
          '-'
        ),
      { width: 144 },
    ),
    column('max_retries', t('colRetries'), (task) => task.max_retries, {
      width: 88,
      ...sortable('max_retries'),
    }),
    column('created_at', t('colCreatedAt'), (task) => <TimeCell value={task.created_at} />, {
      width: 100,
      ...sortable('created_at'),
    }),
    column('actions', t('colActions'), (task) => <TaskActions task={task} can={can} {...handlers} />, {
      width: actionsWidth(t, can),
      fixed: 'right',
    }),
  ];
  const columnCount = columns.length;
  return columns;
}

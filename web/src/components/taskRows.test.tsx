// The task table's columns: the guide's order and a scroll width that squeezes no column.

import { describe, expect, it } from 'vitest';

import { permissionsFor } from '../auth/permissions';
import { format, type Translate } from '../i18n';
import { en } from '../i18n/en';
import { zh } from '../i18n/zh';
import type { TaskActionHandlers } from './TaskActions';
import { actionsWidth, columnsWidth, taskColumns } from './taskRows';

const t: Translate = (key, params) => format(zh[key], params);
const noop = () => Promise.resolve();
const handlers: TaskActionHandlers = {
  onEdit: () => undefined,
  onCopy: () => undefined,
  onSetState: noop,
  onTrigger: noop,
  onHistory: () => undefined,
  onStats: () => undefined,
  onDelete: noop,
};
const columns = (role: 'admin' | 'operator' | 'viewer') =>
  taskColumns({
    t,
    can: permissionsFor(role),
    handlers,
    query: { skip: 0, limit: 20, order_by: 'id', order: 'desc' },
  });

describe('taskColumns', () => {
  it('follows the guide: ID, name, type, schedule, enabled, then the extra columns, actions last', () => {
    expect(columns('admin').map((c) => c.key)).toEqual([
      'id',
      'name',
      'task_type',
      'schedule',
      'enabled',
      'next_run_time',
      'schedule_status',
      'latest',
      'max_retries',
      'created_at',
      'actions',
    ]);
    expect(columns('admin').map((c) => c.title)).toContain('开启状态');
  });

  it('gives every column a width and scrolls by their sum', () => {
    for (const role of ['admin', 'operator', 'viewer'] as const) {
      const cols = columns(role);
      expect(cols.every((c) => typeof c.width === 'number')).toBe(true);
      expect(columnsWidth(cols)).toBe(cols.reduce((sum, c) => sum + Number(c.width), 0));
    }
    const actions = (role: 'admin' | 'viewer') => columns(role).find((c) => c.key === 'actions')!;
    expect(Number(actions('viewer').width)).toBeLessThan(Number(actions('admin').width));
  });

  it('sizes the actions column for one line of buttons in either language', () => {
    // 编辑 复制 禁用 暂停 触发 执行历史 统计 删除: 7 × (28 + 16) + (56 + 16) + cell padding.
    expect(actionsWidth(t, permissionsFor('admin'))).toBe(7 * 44 + 72 + 20);
    expect(actionsWidth(t, permissionsFor('viewer'))).toBe(72 + 44 + 20);
    const tEn: Translate = (key, params) => format(en[key], params);
    // Edit Copy Disable Pause Trigger History Stats Delete are wider than their Chinese labels.
    expect(actionsWidth(tEn, permissionsFor('admin'))).toBeGreaterThan(
      actionsWidth(t, permissionsFor('admin')),
    );
  });
});

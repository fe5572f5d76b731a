// The task table's columns: the guide's order and a scroll width that squeezes no column.

import { describe, expect, it } from 'vitest';

import { permissionsFor } from '../auth/permissions';
import { format, type Translate } from '../i18n';
import { en } from '../i18n/en';
import { zh } from '../i18n/zh';
import type { TaskActionHandlers } from './TaskActions';
import { actionsWidth, taskColumns } from './taskRows';

const t: Translate = (key, params) => format(zh[key], params);
const noop = () => Promise.resolve();
const handlers: TaskActionHandlers = {
  onEdit: () => undefined,
  onCopy: () => undefined,
  onSetState: noop,
  onTrigger: noop,
  onBackfill: () => undefined,
  onHistory: () => undefined,
  onStats: () => undefined,
  onDelete: noop,
};
const query = { skip: 0, limit: 20, order_by: 'id', order: 'desc' } as const;
const columns = (role: 'admin' | 'operator' | 'viewer') =>
  taskColumns({ t, can: permissionsFor(role), handlers, query });

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

  it('fits a 1280 px screen: every column but the name has a width, and the name keeps room', () => {
    const tEn: Translate = (key, params) => format(en[key], params);
    // 1280 px minus the page's padding (2 × 16 + 2 × 12) and a vertical scroll bar.
    const available = 1280 - 56 - 16;
    for (const translate of [t, tEn]) {
      for (const role of ['admin', 'operator', 'viewer'] as const) {
        const cols = taskColumns({ t: translate, can: permissionsFor(role), handlers, query });
        const fixed = cols.filter((c) => c.key !== 'name');
        expect(fixed.every((c) => typeof c.width === 'number')).toBe(true);
        expect(available - fixed.reduce((sum, c) => sum + Number(c.width), 0)).toBeGreaterThanOrEqual(100);
      }
    }
  });

  it('sizes the actions column for one line of buttons in either language', () => {
    // 触发 执行历史 更多▾ inline, the rest in the menu: (28 + 16) + (56 + 16) + (28 + 16 + 18) + cell padding.
    expect(actionsWidth(t, permissionsFor('admin'))).toBe(44 + 72 + 62 + 20);
    expect(actionsWidth(t, permissionsFor('operator'))).toBe(actionsWidth(t, permissionsFor('admin')));
    // Viewers: 执行历史 统计.
    expect(actionsWidth(t, permissionsFor('viewer'))).toBe(72 + 44 + 20);
    const tEn: Translate = (key, params) => format(en[key], params);
    // Trigger History More are wider than their Chinese labels.
    expect(actionsWidth(tEn, permissionsFor('admin'))).toBeGreaterThan(
      actionsWidth(t, permissionsFor('admin')),
    );
  });
});

// The action buttons of one task row (top-level or workflow sub-task), compact so every column fits
// a 1280 px screen: the two most used actions inline (触发 and 执行历史; 执行历史 and 统计 for
// viewers), the rest in a 更多 menu. Only the actions the role may use are offered. Disabling and
// deleting ask for confirmation first.

import { DownOutlined } from '@ant-design/icons';
import { App, Button, Dropdown, Space } from 'antd';
import type { ReactNode } from 'react';

import type { Task } from '../api/types';
import type { Permissions } from '../auth/permissions';
import { useI18n, type MessageKey } from '../i18n';
import { testId } from '../lib/testId';
export type TaskStateAction = 'enable' | 'disable' | 'pause' | 'resume';

export interface TaskActionHandlers {
  onEdit: (task: Task) => void;
  onCopy: (task: Task) => void;
  onSetState: (task: Task, action: TaskStateAction) => Promise<unknown>;
  onTrigger: (task: Task) => Promise<unknown>;
  onBackfill: (task: Task) => void;
  onHistory: (task: Task) => void;
  onStats: (task: Task) => void;
  onDelete: (task: Task) => Promise<unknown>;
}

interface Props extends TaskActionHandlers {
  task: Task;
  can: Permissions;
}

type ActionKind =
  | 'edit'
  | 'copy'
  | 'enable'
  | 'disable'
  | 'pause'
  | 'resume'
  | 'trigger'
  | 'backfill'
  | 'history'
  | 'stats'
  | 'delete';

interface Action {
  kind: ActionKind;
  run: () => unknown;
  danger?: boolean;
  /** Asks first, with this question. */
  confirm?: MessageKey;
}

export function TaskActions({ task, can, ...handlers }: Props) {
  const { t } = useI18n();
  const { modal } = App.useApp();
  const id = task.id;

  // Order of the guide: 编辑 复制 启用/禁用 暂停/恢复 触发 执行历史 统计 删除.
  const actions: Action[] = [];
  if (can.manage) {
    actions.push({ kind: 'edit', run: () => handlers.onEdit(task) });
    actions.push({ kind: 'copy', run: () => handlers.onCopy(task) });
  }
  if (can.operate) {
    actions.push(
      task.enabled
        ? {
            kind: 'disable',
            run: () => handlers.onSetState(task, 'disable'),
            danger: true,
            confirm: 'confirmDisable',
          }
        : { kind: 'enable', run: () => handlers.onSetState(task, 'enable') },
    );
    if (task.enabled) {
      actions.push(
        task.paused
          ? { kind: 'resume', run: () => handlers.onSetState(task, 'resume') }
          : { kind: 'pause', run: () => handlers.onSetState(task, 'pause') },
      );
    }
    actions.push({ kind: 'trigger', run: () => handlers.onTrigger(task) });
    // Only a scheduled task has planned times to backfill.
    if (task.cron_expression || task.interval_seconds || task.run_at) {
      actions.push({ kind: 'backfill', run: () => handlers.onBackfill(task) });
    }
  }
  actions.push({ kind: 'history', run: () => handlers.onHistory(task) });
  actions.push({ kind: 'stats', run: () => handlers.onStats(task) });
  if (can.manage) {
    actions.push({
      kind: 'delete',
      run: () => handlers.onDelete(task),
      danger: true,
      confirm: 'confirmDelete',
    });
  }

  const perform = (action: Action) => {
    if (!action.confirm) {
      void action.run();
      return;
    }
    modal.confirm({
      title: t(action.confirm),
      okText: t('ok'),
      cancelText: t('cancel'),
      okButtonProps: { danger: true, ...testId(`confirm-${action.kind}-${id}`) },
      onOk: () => action.run(),
    });
  };

  const inlineKinds: ActionKind[] = can.operate ? ['trigger', 'history'] : ['history', 'stats'];
  const inline = actions.filter((a) => inlineKinds.includes(a.kind));
  const more = actions.filter((a) => !inlineKinds.includes(a.kind));
  const link = (action: Action): ReactNode => (
    <Button
      key={action.kind}
      type="link"
      size="small"
      danger={action.danger}
      data-testid={`action-${action.kind}-${id}`}
      onClick={() => perform(action)}
    >
      {t(action.kind)}
    </Button>
  );
  return (
    <Space size={0} className="task-actions">
      {inline.map(link)}
      {more.length > 0 && (
        <Dropdown
          trigger={['click']}
          menu={{
            items: more.map((action) => ({
              key: action.kind,
              danger: action.danger,
              label: <span data-testid={`action-${action.kind}-${id}`}>{t(action.kind)}</span>,
            })),
            onClick: ({ key }) => {
              const action = more.find((a) => a.kind === key);
              if (action) perform(action);
            },
          }}
        >
          <Button type="link" size="small" data-testid={`action-more-${id}`}>
            {t('more')} <DownOutlined />
          </Button>
        </Dropdown>
      )}
    </Space>
  );
}

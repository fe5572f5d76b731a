// The action buttons of one task row (top-level or workflow sub-task). Only the buttons the role
// may use are rendered: viewers get history and statistics only.

import { Button, Popconfirm, Space } from 'antd';
import type { ReactNode } from 'react';

import type { Task } from '../api/types';
import type { Permissions } from '../auth/permissions';
import { useI18n } from '../i18n';
import { testId } from '../lib/testId';

export type TaskStateAction = 'enable' | 'disable' | 'pause' | 'resume';

export interface TaskActionHandlers {
  onEdit: (task: Task) => void;
  onCopy: (task: Task) => void;
  onSetState: (task: Task, action: TaskStateAction) => Promise<unknown>;
  onTrigger: (task: Task) => Promise<unknown>;
  onHistory: (task: Task) => void;
  onStats: (task: Task) => void;
  onDelete: (task: Task) => Promise<unknown>;
}

interface Props extends TaskActionHandlers {
  task: Task;
  can: Permissions;
}

export function TaskActions({ task, can, ...handlers }: Props) {
  const { t } = useI18n();
  const id = task.id;
  const link = (name: string, label: string, onClick?: () => void, danger = false): ReactNode => (
    <Button
      key={name}
      type="link"
      size="small"
      danger={danger}
      data-testid={`action-${name}-${id}`}
      onClick={onClick}
    >
      {label}
    </Button>
  );
  const confirm = (name: string, label: string, title: string, onConfirm: () => Promise<unknown>) => (
    <Popconfirm
      key={name}
      title={title}
      okText={t('ok')}
      cancelText={t('cancel')}
      okButtonProps={{ danger: true, ...testId(`confirm-${name}-${id}`) }}
      onConfirm={onConfirm}
    >
      {link(name, label, undefined, true)}
    </Popconfirm>
  );

  // Order of the brief: 编辑 复制 启用/禁用 暂停/恢复 触发 执行历史 统计 删除.
  const buttons: ReactNode[] = [];
  if (can.manage) {
    buttons.push(link('edit', t('edit'), () => handlers.onEdit(task)));
    buttons.push(link('copy', t('copy'), () => handlers.onCopy(task)));
  }
  if (can.operate) {
    buttons.push(
      task.enabled
        ? confirm('disable', t('disable'), t('confirmDisable'), () => handlers.onSetState(task, 'disable'))
        : link('enable', t('enable'), () => void handlers.onSetState(task, 'enable')),
    );
    if (task.enabled) {
      buttons.push(
        task.paused
          ? link('resume', t('resume'), () => void handlers.onSetState(task, 'resume'))
          : link('pause', t('pause'), () => void handlers.onSetState(task, 'pause')),
      );
    }
    buttons.push(link('trigger', t('trigger'), () => void handlers.onTrigger(task)));
  }
  buttons.push(link('history', t('history'), () => handlers.onHistory(task)));
  buttons.push(link('stats', t('stats'), () => handlers.onStats(task)));
  if (can.manage) {
    buttons.push(confirm('delete', t('delete'), t('confirmDelete'), () => handlers.onDelete(task)));
  }
  return (
    <Space size={0} wrap>
      {buttons}
    </Space>
  );
}

// The audit log (admin): who changed what, when and from where, newest first, paged on the server,
// filtered by user, action and target. Backed by GET /api/v1/audit.

import { ReloadOutlined } from '@ant-design/icons';
import { Button, Drawer, Input, Select, Space, Table, Tag, Typography } from 'antd';
import type { ColumnsType } from 'antd/es/table';
import { useCallback, useMemo, useState } from 'react';

import { api, errorText } from '../api/client';
import type { AuditAction, AuditEntry, AuditQuery, AuditTargetType, JsonValue } from '../api/types';
import { useDebouncedValue } from '../hooks/useDebouncedValue';
import { useRemote } from '../hooks/useRemote';
import { useI18n, type MessageKey } from '../i18n';
import { formatTime } from '../lib/format';
import { testId } from '../lib/testId';

export const AUDIT_ACTIONS: AuditAction[] = [
  'task.create',
  'task.update',
  'task.delete',
  'task.enable',
  'task.disable',
  'task.pause',
  'task.resume',
  'task.trigger',
  'execution.terminate',
  'user.create',
  'user.update',
  'user.delete',
  'user.unlock',
  'user.login',
  'user.login_failed',
  'alert_channel.create',
  'alert_channel.update',
  'alert_channel.delete',
  'alert_channel.test',
  'alert_rule.create',
  'alert_rule.update',
  'alert_rule.delete',
];
const TARGET_TYPES: AuditTargetType[] = ['task', 'execution', 'user', 'alert_channel', 'alert_rule'];
const ACTION_COLORS: Record<string, string> = {
  create: 'green',
  update: 'blue',
  delete: 'red',
  terminate: 'orange',
  login_failed: 'volcano',
};

const actionKey = (action: AuditAction) => `audit_${action.replace('.', '_')}` as MessageKey;

/** An update's `{field: [before, after]}` as "field: before → after"; other changes as "field: value". */
export function describeChanges(changes: Record<string, JsonValue | undefined>, update: boolean): string {
  const text = (value: JsonValue | undefined) => (typeof value === 'string' ? value : JSON.stringify(value));
  return Object.entries(changes)
    .map(([field, value]) =>
      update && Array.isArray(value) && value.length === 2
        ? `${field}: ${text(value[0])} → ${text(value[1])}`
        : `${field}: ${text(value)}`,
    )
    .join('; ');
}

export function AuditDrawer({ onClose }: { onClose: () => void }) {
  const { t } = useI18n();
  const [paging, setPaging] = useState({ page: 1, size: 20 });
  const [actorInput, setActorInput] = useState('');
  const actor = useDebouncedValue(actorInput.trim(), 400);
  const [action, setAction] = useState<AuditAction>();
  const [targetType, setTargetType] = useState<AuditTargetType>();
  const query = useMemo<AuditQuery>(
    () => ({
      skip: (paging.page - 1) * paging.size,
      limit: paging.size,
      actor: actor || undefined,
      action,
      target_type: targetType,
    }),
    [paging, actor, action, targetType],
  );
  const entries = useRemote(useCallback(() => api.listAudit(query), [query]));
  const firstPage = () => setPaging((p) => ({ ...p, page: 1 }));

  const columns: ColumnsType<AuditEntry> = [
    { key: 'time', title: t('auditTime'), width: 170, render: (_, e) => formatTime(e.time) },
    { key: 'actor', title: t('auditActor'), width: 110, ellipsis: true, dataIndex: 'actor' },
    {
      key: 'action',
      title: t('auditAction'),
      width: 110,
      render: (_, e) => (
        <Tag color={ACTION_COLORS[e.action.split('.')[1] ?? ''] ?? 'default'} data-action={e.action}>
          {AUDIT_ACTIONS.includes(e.action) ? t(actionKey(e.action)) : e.action}
        </Tag>
      ),
    },
    {
      key: 'target',
      title: t('auditTarget'),
      width: 200,
      ellipsis: true,
      render: (_, e) => `${t(`auditTarget_${e.target_type}` as MessageKey)} #${e.target_id} ${e.target_name}`,
    },
    {
      key: 'changes',
      title: t('auditChanges'),
      ellipsis: { showTitle: true },
      render: (_, e) => describeChanges(e.changes, e.action.endsWith('.update')) || '-',
    },
    { key: 'address', title: t('auditAddress'), width: 120, ellipsis: true, dataIndex: 'address' },
  ];

  return (
    <Drawer
      open
      width="min(1100px, 96vw)"
      title={t('auditTitle')}
      onClose={onClose}
      data-testid="audit-drawer"
    >
      <Space wrap style={{ marginBottom: 12 }}>
        <Input
          allowClear
          style={{ width: 160 }}
          placeholder={t('auditActor')}
          value={actorInput}
          data-testid="audit-filter-actor"
          onChange={(event) => {
            setActorInput(event.target.value);
            firstPage();
          }}
        />
        <Select<AuditAction>
          allowClear
          style={{ width: 160 }}
          placeholder={t('auditAction')}
          value={action}
          data-testid="audit-filter-action"
          options={AUDIT_ACTIONS.map((value) => ({ value, label: t(actionKey(value)) }))}
          onChange={(value) => {
            setAction(value);
            firstPage();
          }}
        />
        <Select<AuditTargetType>
          allowClear
          style={{ width: 130 }}
          placeholder={t('auditTarget')}
          value={targetType}
          data-testid="audit-filter-target"
          options={TARGET_TYPES.map((value) => ({ value, label: t(`auditTarget_${value}` as MessageKey) }))}
          onChange={(value) => {
            setTargetType(value);
            firstPage();
          }}
        />
        <Button icon={<ReloadOutlined />} onClick={() => void entries.reload()}>
          {t('refresh')}
        </Button>
      </Space>
      {entries.error !== undefined && (
        <Typography.Text type="danger">{errorText(entries.error, t('auditLoadFailed'))}</Typography.Text>
      )}
      <Table<AuditEntry>
        rowKey="id"
        size="small"
        tableLayout="fixed"
        columns={columns}
        dataSource={entries.data?.entries ?? []}
        loading={entries.loading}
        onRow={(entry) => testId(`audit-row-${entry.id}`) as object}
        pagination={{
          current: paging.page,
          pageSize: paging.size,
          total: entries.data?.total ?? 0,
          showSizeChanger: true,
          onChange: (page, size) => setPaging({ page, size }),
        }}
      />
    </Drawer>
  );
}

// Alert settings (admin): channels (create or edit with a JSON config, send a test, delete), rules
// (global or per task; create, edit, delete) and the latest deliveries. Backed by /api/v1/alerts.
// Secrets are write-only: a channel shows only which ones are stored, and its edit form starts from
// the public config: a secret left out stays as it is (PUT keeps it), null removes it.

import { PlusOutlined, ReloadOutlined } from '@ant-design/icons';
import {
  Button,
  Drawer,
  Form,
  Input,
  InputNumber,
  Modal,
  Select,
  Space,
  Switch,
  Table,
  Tabs,
  Tag,
  Typography,
} from 'antd';
import type { ColumnsType } from 'antd/es/table';
import type { FormInstance } from 'antd/es/form';
import { type ReactNode, useCallback, useState } from 'react';

import { api, errorText } from '../api/client';
import {
  ALERT_CHANNEL_TYPES,
  ALERT_EVENTS,
  type AlertChannel,
  type AlertChannelType,
  type AlertDelivery,
  type AlertEvent,
  type AlertRule,
  type JsonObject,
} from '../api/types';
import { useAction } from '../hooks/useAction';
import { useRemote } from '../hooks/useRemote';
import { useI18n, type MessageKey } from '../i18n';
import { formatTime } from '../lib/format';
import { testId } from '../lib/testId';

const CONFIG_EXAMPLES: Record<AlertChannelType, JsonObject> = {
  email: {
    smtp_url: 'smtp+starttls://smtp.example.com:587',
    username: 'alerts@example.com',
    password: '',
    from: 'alerts@example.com',
    to: ['oncall@example.com'],
    language: 'zh',
  },
  webhook: { url: 'https://hooks.example.com/zquant', secret: '' },
  dingtalk: { url: 'https://oapi.dingtalk.com/robot/send?access_token=...', secret: '' },
  wecom: { url: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...' },
  feishu: { url: 'https://open.feishu.cn/open-apis/bot/v2/hook/...', secret: '' },
};

const DELIVERY_EVENTS: string[] = [...ALERT_EVENTS, 'test', 'digest'];
const STATE_COLORS: Record<AlertDelivery['state'], string> = {
  pending: 'processing',
  sent: 'success',
  failed: 'error',
  suppressed: 'warning',
  digested: 'default',
};

function target(channel: AlertChannel): string {
  const config = channel.config as Record<string, unknown>;
  if (channel.type === 'email') return (config.to as string[] | undefined)?.join(', ') ?? '';
  return String(config.url ?? '');
}

export function AlertsDrawer({ onClose }: { onClose: () => void }) {
  const { t } = useI18n();
  const act = useAction();
  const channels = useRemote(useCallback(() => api.listAlertChannels(), []));
  const rules = useRemote(useCallback(() => api.listAlertRules(), []));
  const deliveries = useRemote(useCallback(() => api.listAlertDeliveries(), []));
  // A form open for a new channel or rule, or for editing one.
  const [creating, setCreating] = useState<'channel' | 'rule'>();
  const [editingChannel, setEditingChannel] = useState<AlertChannel>();
  const [editingRule, setEditingRule] = useState<AlertRule>();
  /** A delivery's event in the page's language (the rule events, the test message, a digest). */
  const eventLabel = (event: string) =>
    DELIVERY_EVENTS.includes(event) ? t(`alertEvent_${event}` as MessageKey) : event;
  const channelName = (id: number) => channels.data?.channels.find((c) => c.id === id)?.name ?? `#${id}`;
  const reloadAll = () => {
    void channels.reload(true);
    void rules.reload(true);
    void deliveries.reload(true);
  };

  const sendTest = async (channel: AlertChannel) => {
    const answer = await act(() => api.testAlertChannel(channel.id), { failure: t('alertSaveFailed') });
    if (answer === undefined) return;
    Modal[answer.ok ? 'success' : 'error']({
      title: answer.ok ? t('alertTestOk') : t('alertTestFailed', { error: answer.error }),
    });
    void deliveries.reload(true);
  };

  const channelColumns: ColumnsType<AlertChannel> = [
    { key: 'name', title: t('alertName'), dataIndex: 'name' },
    { key: 'type', title: t('alertType'), width: 100, render: (_, c) => <Tag>{c.type}</Tag> },
    { key: 'target', title: t('alertTarget'), ellipsis: true, render: (_, c) => target(c) },
    {
      key: 'secrets',
      title: t('alertSecrets'),
      width: 130,
      render: (_, c) => c.secrets_set.map((name) => <Tag key={name}>{name} ✓</Tag>),
    },
    {
      key: 'actions',
      title: t('colActions'),
      width: 220,
      render: (_, c) => (
        <Space size={0}>
          <Button
            type="link"
            size="small"
            {...testId(`alert-channel-edit-${c.id}`)}
            onClick={() => setEditingChannel(c)}
          >
            {t('edit')}
          </Button>
          <Button
            type="link"
            size="small"
            {...testId(`alert-channel-test-${c.id}`)}
            onClick={() => void sendTest(c)}
          >
            {t('alertTest')}
          </Button>
          <Button
            type="link"
            size="small"
            danger
            onClick={async () => {
              await act(() => api.deleteAlertChannel(c.id), {
                success: t('alertDeleted'),
                failure: t('alertDeleteFailed'),
              });
              void channels.reload(true);
            }}
          >
            {t('delete')}
          </Button>
        </Space>
      ),
    },
  ];

  const ruleColumns: ColumnsType<AlertRule> = [
    {
      key: 'name',
      title: t('alertName'),
      render: (_, r) => (r.enabled ? r.name : <Typography.Text delete>{r.name}</Typography.Text>),
    },
    {
      key: 'events',
      title: t('alertEvents'),
      render: (_, r) => r.events.map((e) => <Tag key={e}>{t(`alertEvent_${e}`)}</Tag>),
    },
    {
      key: 'channels',
      title: t('alertChannels'),
      render: (_, r) => r.channel_ids.map(channelName).join(', '),
    },
    {
      key: 'task',
      title: t('execTask'),
      width: 110,
      render: (_, r) => (r.task_id ? `#${r.task_id}` : t('alertAllTasks')),
    },
    {
      key: 'limit',
      title: t('alertRateCount'),
      width: 130,
      render: (_, r) => `${r.rate_limit_count} / ${r.rate_limit_seconds}s`,
    },
    {
      key: 'actions',
      title: t('colActions'),
      width: 130,
      render: (_, r) => (
        <Space size={0}>
          <Button
            type="link"
            size="small"
            {...testId(`alert-rule-edit-${r.id}`)}
            onClick={() => setEditingRule(r)}
          >
            {t('edit')}
          </Button>
          <Button
            type="link"
            size="small"
            danger
            onClick={async () => {
              await act(() => api.deleteAlertRule(r.id), {
                success: t('alertDeleted'),
                failure: t('alertDeleteFailed'),
              });
              void rules.reload(true);
            }}
          >
            {t('delete')}
          </Button>
        </Space>
      ),
    },
  ];

  const deliveryColumns: ColumnsType<AlertDelivery> = [
    { key: 'time', title: t('colCreatedAt'), width: 170, render: (_, d) => formatTime(d.created_at) },
    { key: 'event', title: t('alertEvents'), width: 120, render: (_, d) => eventLabel(d.event) },
    { key: 'channel', title: t('alertChannels'), render: (_, d) => channelName(d.channel_id) },
    {
      key: 'run',
      title: t('colId'),
      width: 90,
      render: (_, d) => (d.execution_id ? `#${d.execution_id}` : '-'),
    },
    {
      key: 'state',
      title: t('alertState'),
      width: 100,
      render: (_, d) => (
        <Tag color={STATE_COLORS[d.state]} data-state={d.state}>
          {t(`alertState_${d.state}`)}
        </Tag>
      ),
    },
    { key: 'attempts', title: t('alertAttempts'), width: 90, dataIndex: 'attempts' },
    { key: 'error', title: t('alertLastError'), ellipsis: true, dataIndex: 'last_error' },
  ];

  const failed = channels.error ?? rules.error ?? deliveries.error;
  return (
    <Drawer
      open
      width="min(1000px, 96vw)"
      title={t('alertsTitle')}
      onClose={onClose}
      data-testid="alerts-drawer"
    >
      <Space style={{ marginBottom: 12 }}>
        <Button
          type="primary"
          icon={<PlusOutlined />}
          {...testId('alert-channel-create')}
          onClick={() => setCreating('channel')}
        >
          {t('alertChannelCreate')}
        </Button>
        <Button icon={<PlusOutlined />} {...testId('alert-rule-create')} onClick={() => setCreating('rule')}>
          {t('alertRuleCreate')}
        </Button>
        <Button icon={<ReloadOutlined />} onClick={reloadAll}>
          {t('refresh')}
        </Button>
      </Space>
      {failed !== undefined && (
        <Typography.Text type="danger">{errorText(failed, t('alertLoadFailed'))}</Typography.Text>
      )}
      <Tabs
        items={[
          {
            key: 'channels',
            label: <span data-testid="alerts-tab-channels">{t('alertChannels')}</span>,
            children: (
              <Table<AlertChannel>
                rowKey="id"
                size="small"
                columns={channelColumns}
                dataSource={channels.data?.channels ?? []}
                loading={channels.loading}
                pagination={false}
              />
            ),
          },
          {
            key: 'rules',
            label: <span data-testid="alerts-tab-rules">{t('alertRules')}</span>,
            children: (
              <Table<AlertRule>
                rowKey="id"
                size="small"
                columns={ruleColumns}
                dataSource={rules.data?.rules ?? []}
                loading={rules.loading}
                pagination={false}
              />
            ),
          },
          {
            key: 'deliveries',
            label: <span data-testid="alerts-tab-deliveries">{t('alertDeliveries')}</span>,
            children: (
              <Table<AlertDelivery>
                rowKey="id"
                size="small"
                columns={deliveryColumns}
                dataSource={deliveries.data?.deliveries ?? []}
                loading={deliveries.loading}
                pagination={false}
              />
            ),
          },
        ]}
      />
      {(creating === 'channel' || editingChannel) && (
        <ChannelModal
          channel={editingChannel}
          onClose={() => {
            setCreating(undefined);
            setEditingChannel(undefined);
          }}
          onSaved={() => {
            setCreating(undefined);
            setEditingChannel(undefined);
            void channels.reload(true);
          }}
        />
      )}
      {(creating === 'rule' || editingRule) && (
        <RuleModal
          rule={editingRule}
          channels={channels.data?.channels ?? []}
          onClose={() => {
            setCreating(undefined);
            setEditingRule(undefined);
          }}
          onSaved={() => {
            setCreating(undefined);
            setEditingRule(undefined);
            void rules.reload(true);
          }}
        />
      )}
    </Drawer>
  );
}

/** The modal of a channel's or a rule's form, new or edited: OK validates the form, saves it through
 * `save` (a create or an update) and reports the outcome; `onSaved` follows a save that worked. */
function AlertFormModal<Values extends object>({
  form,
  editing,
  title,
  submitTestId,
  save,
  onClose,
  onSaved,
  children,
}: {
  form: FormInstance<Values>;
  editing: boolean;
  title: string;
  submitTestId: string;
  save: (values: Values) => Promise<unknown>;
  onClose: () => void;
  onSaved: () => void;
  children: ReactNode;
}) {
  const { t } = useI18n();
  const act = useAction();
  const [saving, setSaving] = useState(false);
  const submit = async () => {
    let values: Values;
    try {
      values = await form.validateFields();
    } catch {
      return;
    }
    setSaving(true);
    const saved = await act(() => save(values), { success: t('alertSaved'), failure: t('alertSaveFailed') });
    setSaving(false);
    if (saved) onSaved();
  };
  return (
    <Modal
      open
      title={title}
      okText={editing ? t('alertSave') : t('create')}
      cancelText={t('cancel')}
      confirmLoading={saving}
      okButtonProps={testId(submitTestId)}
      onOk={() => void submit()}
      onCancel={onClose}
    >
      {children}
    </Modal>
  );
}

interface ChannelForm {
  name: string;
  type: AlertChannelType;
  config: string;
}

/** A new channel (no `channel`) or an edit of one, starting from its public config. */
function ChannelModal({
  channel,
  onClose,
  onSaved,
}: {
  channel?: AlertChannel;
  onClose: () => void;
  onSaved: () => void;
}) {
  const { t } = useI18n();
  const [form] = Form.useForm<ChannelForm>();
  const save = (values: ChannelForm) => {
    const config = JSON.parse(values.config) as JsonObject;
    const body = { name: values.name.trim(), type: values.type, config };
    return channel ? api.updateAlertChannel(channel.id, body) : api.createAlertChannel(body);
  };
  return (
    <AlertFormModal<ChannelForm>
      form={form}
      editing={channel !== undefined}
      title={channel ? t('alertChannelEdit', { name: channel.name }) : t('alertChannelCreate')}
      submitTestId="alert-channel-submit"
      save={save}
      onClose={onClose}
      onSaved={onSaved}
    >
      <Form<ChannelForm>
        form={form}
        layout="vertical"
        initialValues={
          channel
            ? { name: channel.name, type: channel.type, config: JSON.stringify(channel.config, null, 2) }
            : { name: '', type: 'webhook', config: JSON.stringify(CONFIG_EXAMPLES.webhook, null, 2) }
        }
        onValuesChange={(changed: Partial<ChannelForm>) => {
          if (changed.type)
            form.setFieldValue('config', JSON.stringify(CONFIG_EXAMPLES[changed.type], null, 2));
        }}
      >
        <Form.Item name="name" label={t('alertName')} rules={[{ required: true, whitespace: true }]}>
          <Input data-testid="alert-channel-name" autoComplete="off" />
        </Form.Item>
        <Form.Item name="type" label={t('alertType')}>
          <Select<AlertChannelType>
            options={ALERT_CHANNEL_TYPES.map((type) => ({ value: type, label: type }))}
          />
        </Form.Item>
        <Form.Item
          name="config"
          label={t('alertConfig')}
          rules={[
            {
              validator: async (_, value: string) => {
                const parsed: unknown = JSON.parse(value || 'null');
                if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
                  throw new Error('not an object');
              },
              message: t('alertConfigInvalid'),
            },
          ]}
        >
          <Input.TextArea rows={8} spellCheck={false} className="mono" data-testid="alert-channel-config" />
        </Form.Item>
        {channel && channel.secrets_set.length > 0 && (
          <Typography.Text type="secondary" data-testid="alert-channel-secrets-kept">
            {t('alertSecretsKept', { names: channel.secrets_set.join(', ') })}
          </Typography.Text>
        )}
      </Form>
    </AlertFormModal>
  );
}

interface RuleForm {
  name: string;
  events: AlertEvent[];
  channel_ids: number[];
  task_id?: number | null;
  slow_seconds?: number | null;
  rate_limit_count: number;
  rate_limit_seconds: number;
  enabled: boolean;
}

/** A new rule (no `rule`) or an edit of one: the whole rule is sent again (PUT replaces it). */
function RuleModal({
  rule,
  channels,
  onClose,
  onSaved,
}: {
  rule?: AlertRule;
  channels: AlertChannel[];
  onClose: () => void;
  onSaved: () => void;
}) {
  const { t } = useI18n();
  const [form] = Form.useForm<RuleForm>();
  const save = (values: RuleForm) => {
    const body = {
      ...values,
      name: values.name.trim(),
      task_id: values.task_id ?? 0,
      slow_seconds: values.slow_seconds ?? 0,
    };
    return rule ? api.updateAlertRule(rule.id, body) : api.createAlertRule(body);
  };
  return (
    <AlertFormModal<RuleForm>
      form={form}
      editing={rule !== undefined}
      title={rule ? t('alertRuleEdit', { name: rule.name }) : t('alertRuleCreate')}
      submitTestId="alert-rule-submit"
      save={save}
      onClose={onClose}
      onSaved={onSaved}
    >
      <Form<RuleForm>
        form={form}
        layout="vertical"
        initialValues={
          rule
            ? { ...rule, task_id: rule.task_id || null, slow_seconds: rule.slow_seconds || null }
            : {
                name: '',
                events: ['run_failed'],
                channel_ids: [],
                rate_limit_count: 10,
                rate_limit_seconds: 3600,
                enabled: true,
              }
        }
      >
        <Form.Item name="name" label={t('alertName')} rules={[{ required: true, whitespace: true }]}>
          <Input data-testid="alert-rule-name" autoComplete="off" />
        </Form.Item>
        <Form.Item name="events" label={t('alertEvents')} rules={[{ required: true }]}>
          <Select<AlertEvent[]>
            mode="multiple"
            options={ALERT_EVENTS.map((event) => ({ value: event, label: t(`alertEvent_${event}`) }))}
          />
        </Form.Item>
        <Form.Item name="channel_ids" label={t('alertChannels')} rules={[{ required: true }]}>
          <Select<number[]> mode="multiple" options={channels.map((c) => ({ value: c.id, label: c.name }))} />
        </Form.Item>
        <Form.Item name="task_id" label={t('alertTaskId')}>
          <InputNumber min={1} precision={0} style={{ width: '100%' }} />
        </Form.Item>
        <Space>
          <Form.Item name="slow_seconds" label={t('alertSlowSeconds')}>
            <InputNumber min={0} precision={0} />
          </Form.Item>
          <Form.Item name="rate_limit_count" label={t('alertRateCount')}>
            <InputNumber min={1} max={10000} precision={0} />
          </Form.Item>
          <Form.Item name="rate_limit_seconds" label={t('alertRateSeconds')}>
            <InputNumber min={1} max={604800} precision={0} />
          </Form.Item>
        </Space>
        <Form.Item name="enabled" label={t('alertEnabled')} valuePropName="checked">
          <Switch data-testid="alert-rule-enabled" />
        </Form.Item>
      </Form>
    </AlertFormModal>
  );
}

/** The task form's alerts section (edit mode): this task's own rules, which replace the global
 * ones for it; a rule is added or removed at once, apart from the form's save. */
export function TaskAlertsSection({ taskId, taskName }: { taskId: number; taskName: string }) {
  const { t } = useI18n();
  const act = useAction();
  const rules = useRemote(useCallback(() => api.listAlertRules(taskId), [taskId]));
  const channels = useRemote(useCallback(() => api.listAlertChannels(), []));
  const [events, setEvents] = useState<AlertEvent[]>(['run_failed']);
  const [channelIds, setChannelIds] = useState<number[]>([]);
  const own = rules.data?.rules ?? [];
  const add = async () => {
    const saved = await act(
      () =>
        api.createAlertRule({
          name: `${taskName} #${taskId} ${Date.now().toString(36)}`,
          events,
          channel_ids: channelIds,
          task_id: taskId,
          slow_seconds: 0,
          rate_limit_count: 10,
          rate_limit_seconds: 3600,
          enabled: true,
        }),
      { success: t('alertSaved'), failure: t('alertSaveFailed') },
    );
    if (saved) void rules.reload(true);
  };
  const channelName = (id: number) => channels.data?.channels.find((c) => c.id === id)?.name ?? `#${id}`;
  return (
    <div data-testid="task-alerts">
      <Typography.Text strong>{t('alertTaskSection')}</Typography.Text>
      <div>
        {own.length === 0 && <Typography.Text type="secondary">{t('alertTaskNone')}</Typography.Text>}
        {own.map((rule) => (
          <Tag
            key={rule.id}
            closable
            onClose={async (event) => {
              event.preventDefault();
              await act(() => api.deleteAlertRule(rule.id), {
                success: t('alertDeleted'),
                failure: t('alertDeleteFailed'),
              });
              void rules.reload(true);
            }}
          >
            {rule.events.map((e) => t(`alertEvent_${e}`)).join('/')} →{' '}
            {rule.channel_ids.map(channelName).join(', ')}
          </Tag>
        ))}
      </div>
      <Space.Compact style={{ width: '100%', marginTop: 8 }}>
        <Select<AlertEvent[]>
          mode="multiple"
          style={{ width: '45%' }}
          value={events}
          onChange={setEvents}
          options={ALERT_EVENTS.filter((e) => e !== 'slow').map((e) => ({
            value: e,
            label: t(`alertEvent_${e}`),
          }))}
        />
        <Select<number[]>
          mode="multiple"
          style={{ width: '40%' }}
          value={channelIds}
          placeholder={t('alertChannels')}
          onChange={setChannelIds}
          options={(channels.data?.channels ?? []).map((c) => ({ value: c.id, label: c.name }))}
          data-testid="task-alerts-channels"
        />
        <Button
          icon={<PlusOutlined />}
          disabled={events.length === 0 || channelIds.length === 0}
          onClick={() => void add()}
          data-testid="task-alerts-add"
        >
          {t('alertRuleCreate')}
        </Button>
      </Space.Compact>
    </div>
  );
}

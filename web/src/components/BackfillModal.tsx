// The backfill dialog of one task: a date range (inclusive, in the task's time zone), how many runs
// at once, whether to run again what already succeeded, optional parameters (a JSON object); below,
// the task's backfills with their progress (polled while open), each cancellable as a whole.

import {
  App,
  Button,
  Checkbox,
  DatePicker,
  Form,
  Input,
  InputNumber,
  Modal,
  Progress,
  Space,
  Table,
  Tag,
} from 'antd';
import type { Dayjs } from 'dayjs';
import { useCallback, useState } from 'react';

import { api, errorText } from '../api/client';
import type { Backfill, JsonObject, Task } from '../api/types';
import { usePolling } from '../hooks/usePolling';
import { useRemote } from '../hooks/useRemote';
import { useI18n } from '../i18n';

interface Props {
  task: Task;
  canOperate: boolean;
  onClose: () => void;
}

interface Values {
  range: [Dayjs, Dayjs];
  max_parallel: number;
  rerun_succeeded: boolean;
  params: string;
}

const STATUS_COLORS: Record<Backfill['status'], string> = {
  running: 'processing',
  success: 'success',
  failed: 'error',
  cancelled: 'default',
};

function parseParams(text: string): JsonObject | undefined {
  if (!text.trim()) return undefined;
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
  return value as JsonObject;
}

export function BackfillModal({ task, canOperate, onClose }: Props) {
  const { t } = useI18n();
  const { message } = App.useApp();
  const [form] = Form.useForm<Values>();
  const [saving, setSaving] = useState(false);
  const fetcher = useCallback(() => api.listBackfills(task.id), [task.id]);
  const backfills = useRemote(fetcher);
  const running = (backfills.data?.backfills ?? []).some((b) => b.status === 'running');
  usePolling(() => void backfills.reload(true), 2000, running);

  const submit = async (values: Values) => {
    let params: JsonObject | undefined;
    try {
      params = parseParams(values.params ?? '');
    } catch {
      form.setFields([{ name: 'params', errors: [t('backfillParamsInvalid')] }]);
      return;
    }
    setSaving(true);
    try {
      const created = await api.createBackfill(task.id, {
        start: values.range[0].format('YYYY-MM-DD'),
        end: values.range[1].format('YYYY-MM-DD'),
        max_parallel: values.max_parallel,
        rerun_succeeded: values.rerun_succeeded,
        params,
      });
      void message.success(t('backfillCreated', { total: created.total, skipped: created.skipped }));
      void backfills.reload(true);
    } catch (error) {
      void message.error(errorText(error, t('backfillFailed')));
    } finally {
      setSaving(false);
    }
  };

  const cancel = async (backfill: Backfill) => {
    try {
      await api.cancelBackfill(backfill.id);
      void backfills.reload(true);
    } catch (error) {
      void message.error(errorText(error, t('backfillFailed')));
    }
  };

  return (
    <Modal open width={760} title={t('backfillTitle', { name: task.name })} footer={null} onCancel={onClose}>
      {canOperate && (
        <Form
          form={form}
          layout="inline"
          initialValues={{ max_parallel: 1, rerun_succeeded: false, params: '' }}
          onFinish={(values) => void submit(values)}
          data-testid="backfill-form"
        >
          <Form.Item name="range" label={t('backfillRange')} rules={[{ required: true }]}>
            <DatePicker.RangePicker data-testid="backfill-range" />
          </Form.Item>
          <Form.Item name="max_parallel" label={t('backfillParallel')}>
            <InputNumber min={1} max={100} data-testid="backfill-parallel" />
          </Form.Item>
          <Form.Item name="rerun_succeeded" valuePropName="checked">
            <Checkbox data-testid="backfill-rerun">{t('backfillRerunSucceeded')}</Checkbox>
          </Form.Item>
          <Form.Item name="params" label={t('backfillParams')} style={{ width: '100%', marginTop: 8 }}>
            <Input.TextArea rows={2} placeholder='{"symbol": "600000"}' data-testid="backfill-params" />
          </Form.Item>
          <Form.Item style={{ marginTop: 8 }}>
            <Button type="primary" htmlType="submit" loading={saving} data-testid="backfill-submit">
              {t('backfillStart')}
            </Button>
          </Form.Item>
        </Form>
      )}
      <Table<Backfill>
        style={{ marginTop: 16 }}
        size="small"
        rowKey="id"
        loading={backfills.loading}
        dataSource={backfills.data?.backfills ?? []}
        pagination={false}
        columns={[
          { title: 'ID', dataIndex: 'id', width: 60 },
          { title: t('backfillRange'), render: (_, b) => `${b.start} ~ ${b.end}` },
          {
            title: t('backfillProgress'),
            render: (_, b) => (
              <Space direction="vertical" size={0} style={{ width: 200 }}>
                <Progress
                  size="small"
                  percent={b.total ? Math.floor(((b.succeeded + b.failed) * 100) / b.total) : 100}
                  status={b.failed ? 'exception' : undefined}
                />
                {t('backfillCounts', {
                  succeeded: b.succeeded,
                  failed: b.failed,
                  running: b.running,
                  total: b.total,
                  skipped: b.skipped,
                })}
              </Space>
            ),
          },
          {
            title: t('execStatus'),
            render: (_, b) => <Tag color={STATUS_COLORS[b.status]}>{t(`backfill_${b.status}` as const)}</Tag>,
          },
          {
            title: '',
            render: (_, b) =>
              canOperate && b.status === 'running' ? (
                <Button
                  size="small"
                  danger
                  data-testid={`backfill-cancel-${b.id}`}
                  onClick={() => void cancel(b)}
                >
                  {t('backfillCancel')}
                </Button>
              ) : null,
          },
        ]}
      />
    </Modal>
  );
}
